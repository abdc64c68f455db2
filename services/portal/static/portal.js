/* gproc portal: the map, selections, live task/workflow pages.
 * Every user-supplied string reaches the page through textContent or DOM nodes,
 * never as HTML. No inline script (the pages' CSP allows scripts from here only). */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    });
    (children || []).forEach((c) => node.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return node;
  }

  function showMessage(text) {
    const box = document.getElementById("message");
    if (!box) return;
    box.textContent = text || "";
    box.hidden = !text;
  }

  async function getJSON(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await resp.json().catch(() => ({ error: "the portal answered " + resp.status }));
    if (!resp.ok) throw new Error(body.error || "the portal answered " + resp.status);
    return body;
  }

  function makeMap(node) {
    const map = L.map(node, { center: [45.75, 21.23], zoom: 6, worldCopyJump: true });
    const url = node.dataset.baseUrl;
    if (url) {
      L.tileLayer(url, { attribution: node.dataset.baseAttribution || "", maxZoom: 19 }).addTo(map);
    } else {
      node.classList.add("plain-base"); // no tiles: footprints and quicklooks on a plain background
    }
    return map;
  }

  function quicklookLayer(feature, cls) {
    const outline = L.geoJSON(feature);
    const bounds = outline.getBounds();
    const image = L.imageOverlay(feature.properties.quicklook, bounds, {
      className: cls, opacity: 0.9, alt: feature.properties.ref,
    });
    return { outline: outline, image: image, bounds: bounds };
  }

  /* ---- the map page ---------------------------------------------------------------- */
  const SELECTED = "gproc.selected";

  function loadSelection() {
    try { return JSON.parse(sessionStorage.getItem(SELECTED) || "[]"); } catch (e) { return []; }
  }

  function saveSelection(refs) { sessionStorage.setItem(SELECTED, JSON.stringify(refs)); }

  function mapPage() {
    const map = makeMap(document.getElementById("map"));
    const results = document.getElementById("results");
    const selectedList = document.getElementById("selected");
    const form = document.getElementById("search");
    const bboxField = document.getElementById("bbox");
    const boxLabel = document.getElementById("box-label");
    let layer = L.layerGroup().addTo(map);
    let box = null;
    let selection = loadSelection();

    function renderSelection() {
      selectedList.replaceChildren(...selection.map((r) => el("li", { text: r, "data-ref": r })));
      const q = selection.map((r) => "dataset=" + encodeURIComponent(r)).join("&");
      document.getElementById("use-figure7").href = "/workflows" + (q ? "?" + q : "");
      const nd = selection.slice(0, 2).map((r) => "input=" + encodeURIComponent("dataset:" + r)).join("&");
      document.getElementById("use-ndvi").href = "/tools/ndvi" + (nd ? "?" + nd : "");
      saveSelection(selection);
    }

    function toggle(ref) {
      selection = selection.includes(ref) ? selection.filter((r) => r !== ref) : selection.concat([ref]);
      renderSelection();
      document.querySelectorAll("#results input[type=checkbox]").forEach((c) => {
        c.checked = selection.includes(c.value);
      });
    }

    function popup(p) {
      return el("div", { class: "popup" }, [
        el("strong", { text: p.ref }),
        el("div", { text: p.title || "" }),
        el("div", { class: "muted", text: (p.type || "") + " " + (p.vendor || "") }),
        el("img", { src: p.quicklook, alt: "quicklook", class: "popup-quicklook" }),
        el("a", { href: p.details, text: "details" }),
      ]);
    }

    async function search() {
      showMessage("");
      const params = new URLSearchParams({ gql: document.getElementById("gql").value, bbox: bboxField.value });
      let data;
      try {
        data = await getJSON("/api/datasets?" + params.toString());
      } catch (err) {
        showMessage(err.message);
        return;
      }
      map.removeLayer(layer);
      layer = L.layerGroup().addTo(map);
      const items = [];
      let all = null;
      data.features.forEach((f) => {
        const ql = quicklookLayer(f, "quicklook-layer");
        ql.image.addTo(layer);
        ql.outline.setStyle({ color: "#c0392b", weight: 2, fillOpacity: 0.05 });
        ql.outline.bindPopup(() => popup(f.properties));
        ql.outline.on("click", () => toggle(f.properties.ref));
        ql.outline.addTo(layer);
        all = all ? all.extend(ql.bounds) : L.latLngBounds(ql.bounds.getSouthWest(), ql.bounds.getNorthEast());
        const check = el("input", { type: "checkbox", value: f.properties.ref });
        check.checked = selection.includes(f.properties.ref);
        check.addEventListener("change", () => toggle(f.properties.ref));
        items.push(el("li", { class: "result", "data-ref": f.properties.ref }, [
          el("label", {}, [check, " ", el("span", { class: "ref", text: f.properties.ref })]),
          " ",
          el("a", { href: f.properties.details, text: "details" }),
          el("div", { class: "muted title", text: f.properties.title || "" }),
        ]));
      });
      results.replaceChildren(...items);
      document.getElementById("count").textContent = "(" + data.features.length + ")";
      if (all && !box) map.fitBounds(all.pad(0.2));
      document.getElementById("map").dataset.features = String(data.features.length);
    }

    function drawBox() {
      map.dragging.disable();
      document.getElementById("map").classList.add("drawing");
      let start = null;
      function down(e) { start = e.latlng; if (box) map.removeLayer(box); box = L.rectangle([start, start], { color: "#2c3e50", dashArray: "4" }).addTo(map); }
      function move(e) { if (start && box) box.setBounds(L.latLngBounds(start, e.latlng)); }
      function up(e) {
        if (!start) return;
        const b = L.latLngBounds(start, e.latlng);
        start = null;
        map.off("mousedown", down).off("mousemove", move).off("mouseup", up);
        map.dragging.enable();
        document.getElementById("map").classList.remove("drawing");
        const v = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((x) => x.toFixed(5));
        bboxField.value = v.join(",");
        boxLabel.textContent = "box " + bboxField.value;
        search();
      }
      map.on("mousedown", down).on("mousemove", move).on("mouseup", up);
    }

    form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
    document.getElementById("draw-box").addEventListener("click", drawBox);
    document.getElementById("clear-box").addEventListener("click", () => {
      if (box) map.removeLayer(box);
      box = null; bboxField.value = ""; boxLabel.textContent = ""; search();
    });
    renderSelection();
    search();
  }

  /* ---- task and workflow pages: live state by polling ----------------------------- */
  function row(cells) { return el("tr", {}, cells.map((c) => el("td", { text: c == null ? "" : String(c) }))); }

  function fillTable(id, header, rows) {
    const table = document.getElementById(id);
    if (!table) return;
    const head = table.querySelector("tr");
    table.replaceChildren(head, ...rows.map(row));
  }

  function livePage(kind) {
    const stateNode = document.getElementById("state");
    const map = makeMap(document.getElementById("map"));
    let shown = false;
    async function poll() {
      let data;
      try {
        data = await getJSON(stateNode.dataset.api);
      } catch (err) {
        document.getElementById("reason").textContent = err.message;
        setTimeout(poll, 4000);
        return;
      }
      stateNode.textContent = data.state;
      stateNode.className = "state-" + data.state;
      document.getElementById("reason").textContent = data.reason || data.hold_reason || "";
      fillTable("events", null, data.events.map((e) => [e.time, e.kind, e.state, e.detail]));
      if (kind === "task") {
        document.getElementById("stdout").textContent = data.stdout;
        document.getElementById("stderr").textContent = data.stderr;
      } else {
        fillTable("nodes", null, data.nodes.map((n) => [n.name, n.tool, n.branch, n.state, n.job_id, n.exit_code, n.runs, n.detail]));
        document.getElementById("logs").replaceChildren(...data.logs.map((f) =>
          el("details", {}, [el("summary", { text: f.name }), el("pre", { text: f.text })])));
      }
      if (data.outputs.length) {
        document.getElementById("outputs").replaceChildren(...data.outputs.map((o) =>
          el("li", {}, [el("a", { href: o.href, text: o.name, class: "download" }), " (" + o.size + " bytes)"])));
      }
      if (data.layers.length && !shown) {
        shown = true;
        let all = null;
        const overlays = {};
        const pictures = [];
        // inputs first: a result with the same footprint is drawn over its input, and the
        // layer control and the pictures beside the map show both
        const ordered = data.layers.filter((f) => f.properties.kind !== "result")
          .concat(data.layers.filter((f) => f.properties.kind === "result"));
        ordered.forEach((f) => {
          const isResult = f.properties.kind === "result";
          const kindClass = isResult ? "result-layer" : "input-layer";
          const ql = quicklookLayer(f, kindClass);
          ql.outline.setStyle({ color: isResult ? "#27ae60" : "#c0392b", weight: 2, fillOpacity: 0 });
          const group = L.layerGroup([ql.image, ql.outline]).addTo(map);
          const label = (isResult ? "result " + f.properties.output : "input " + f.properties.ref);
          overlays[label] = group;
          all = all ? all.extend(ql.bounds) : L.latLngBounds(ql.bounds.getSouthWest(), ql.bounds.getNorthEast());
          pictures.push(el("figure", { class: kindClass + "-picture" }, [
            el("img", { src: f.properties.quicklook, alt: label }),
            el("figcaption", { text: label }),
          ]));
        });
        L.control.layers(null, overlays, { collapsed: false }).addTo(map);
        document.getElementById("pictures").replaceChildren(...pictures);
        if (all) map.fitBounds(all.pad(0.3));
        document.getElementById("map").dataset.layers = String(data.layers.length);
      }
      document.body.dataset.terminal = String(data.terminal);
      if (!data.terminal || (data.state === "completed" && !shown)) setTimeout(poll, 2000);
    }
    poll();
  }

  /* ---- forms ---------------------------------------------------------------------- */
  function workflowsPage() {
    const add = document.getElementById("add-step");
    if (add) {
      add.addEventListener("click", () => {
        const steps = document.getElementById("steps");
        const copy = steps.querySelector("li.step").cloneNode(true);
        copy.querySelector("input").value = "";
        steps.appendChild(copy);
      });
    }
    const picked = loadSelection();
    document.querySelectorAll("textarea.datasets").forEach((t) => {
      if (!t.value.trim() && picked.length) t.value = picked.join("\n");
    });
  }

  function toolPage() {
    const button = document.querySelector(".pick-gateway");
    const list = document.getElementById("gateway-list");
    if (!button) return;
    async function show(path) {
      let data;
      try {
        data = await getJSON("/api/gateway" + (path ? "?path=" + encodeURIComponent(path) : ""));
      } catch (err) {
        list.replaceChildren(el("li", { class: "error", text: err.message }));
        return;
      }
      const base = data.path || path || "";
      const entries = (data.entries || []).map((e) => {
        const full = base.replace(/\/$/, "") + "/" + e.name;
        const link = el("a", { href: "#", text: e.name + (e.type === "directory" ? "/" : "") });
        link.addEventListener("click", (ev) => {
          ev.preventDefault();
          if (e.type === "directory") { show(full); return; }
          const empty = Array.from(document.querySelectorAll("[id^=input-]")).find((i) => !i.value.trim());
          (empty || document.querySelector("[id^=input-]")).value = full;
        });
        return el("li", {}, [link]);
      });
      list.replaceChildren(el("li", { class: "muted", text: base }), ...entries);
    }
    button.addEventListener("click", () => show(""));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    if (page === "map") mapPage();
    else if (page === "task") livePage("task");
    else if (page === "workflow") livePage("workflow");
    else if (page === "workflows") workflowsPage();
    else if (page === "tool") toolPage();
  });
})();
