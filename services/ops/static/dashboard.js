// gproc operations dashboard: draws GET <summary URL> (the JSON of /ops/summary) as
// SVG charts and tables. No library, no CDN; every text goes in as textContent.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLOURS = {
    registered: "#9aa5b1", submitting: "#c3a6e0", submitted: "#8e7cc3", idle: "#f2b84b",
    running: "#3d8bd9", held: "#e0703a", completed: "#2e9e5b", failed: "#c73636",
    cancelled: "#6b7785", purged: "#c9d1d9", claimed: "#3d8bd9", free: "#2e9e5b", other: "#9aa5b1",
  };
  const EXTRA = ["#17becf", "#bcbd22", "#8c564b", "#e377c2", "#7f7f7f"];
  const $ = (id) => document.getElementById(id);

  function colour(key, i) { return COLOURS[key] || EXTRA[i % EXTRA.length]; }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // The summary URL: <html data-summary-url>, or ?src=<relative path> (never another origin).
  function summaryUrl() {
    const q = new URLSearchParams(location.search).get("src");
    const base = (q && /^[A-Za-z0-9_./?=&-]+$/.test(q) && !q.startsWith("//")) ? q
      : (document.documentElement.dataset.summaryUrl || "summary");
    const url = new URL(base, location.href);
    if (url.origin !== location.origin) throw new Error("the summary URL must be on this site");
    const [windowS, bucketS] = $("window").value.split(":");
    url.searchParams.set("window_s", windowS);
    url.searchParams.set("bucket_s", bucketS);
    return url;
  }

  function legend(keys) {
    const box = el("div", { class: "legend" });
    keys.forEach((k, i) => {
      const item = el("span");
      const sw = svg("svg", { width: 10, height: 10 });
      sw.appendChild(svg("rect", { width: 10, height: 10, rx: 2, fill: colour(k, i) }));
      item.appendChild(sw);
      item.appendChild(document.createTextNode(" " + k));
      box.appendChild(item);
    });
    return box;
  }

  // Horizontal bars: [[label, value]...]
  function barChart(target, pairs) {
    target.replaceChildren();
    const shown = pairs.filter(([, v]) => v > 0);
    if (!shown.length) { target.appendChild(el("p", { class: "muted" }, "none")); return; }
    const max = Math.max(...shown.map(([, v]) => v));
    const rowH = 20, labelW = 110, width = 440;
    const chart = svg("svg", { width, height: shown.length * rowH + 4, role: "img", class: "bars" });
    shown.forEach(([k, v], i) => {
      const y = i * rowH + 2, w = Math.max(2, (width - labelW - 50) * v / max);
      chart.appendChild(svg("text", { x: 0, y: y + 13 }, k));
      chart.appendChild(svg("rect", { x: labelW, y, width: w, height: rowH - 6, fill: colour(k, i), "data-key": k }));
      chart.appendChild(svg("text", { x: labelW + w + 4, y: y + 13 }, v));
    });
    target.appendChild(chart);
  }

  // Stacked columns over time: series = {key: [n per bucket]}.
  function stackedChart(target, buckets, series, { lines = false } = {}) {
    target.replaceChildren();
    const keys = Object.keys(series).filter((k) => series[k].some((n) => n > 0));
    if (!keys.length) { target.appendChild(el("p", { class: "muted" }, "nothing in this window")); return; }
    const width = 440, height = 160, left = 34, bottom = 18;
    const plotW = width - left - 4, plotH = height - bottom - 6;
    const totals = buckets.map((_, i) => lines
      ? Math.max(...keys.map((k) => series[k][i] || 0))
      : keys.reduce((s, k) => s + (series[k][i] || 0), 0));
    const max = Math.max(1, ...totals);
    const colW = plotW / Math.max(1, buckets.length);
    const chart = svg("svg", { width, height, role: "img", class: lines ? "lines" : "stacked" });
    chart.appendChild(svg("line", { x1: left, y1: 6 + plotH, x2: width - 4, y2: 6 + plotH, stroke: "#c9d1d9" }));
    chart.appendChild(svg("text", { x: 0, y: 14 }, max));
    chart.appendChild(svg("text", { x: 0, y: 6 + plotH }, 0));
    const y = (v) => 6 + plotH - plotH * v / max;
    if (lines) {
      keys.forEach((k, ki) => {
        const pts = buckets.map((_, i) => `${left + colW * (i + 0.5)},${y(series[k][i] || 0)}`);
        chart.appendChild(svg("polyline", { points: pts.join(" "), fill: "none", stroke: colour(k, ki), "stroke-width": 2, "data-key": k }));
      });
    } else {
      buckets.forEach((_, i) => {
        let acc = 0;
        keys.forEach((k, ki) => {
          const v = series[k][i] || 0;
          if (!v) return;
          const r = svg("rect", { x: left + colW * i + 1, y: y(acc + v), width: Math.max(1, colW - 2), height: y(acc) - y(acc + v), fill: colour(k, ki), "data-key": k });
          r.appendChild(svg("title", {}, `${buckets[i]} ${k}: ${v}`));
          chart.appendChild(r);
          acc += v;
        });
      });
    }
    const step = Math.max(1, Math.ceil(buckets.length / 5));
    const span = buckets.length > 1 ? Date.parse(buckets[buckets.length - 1]) - Date.parse(buckets[0]) : 0;
    const tick = (b) => span > 2 * 86400000 ? b.slice(5, 13).replace("T", " ") + "h" : b.slice(11, 16);
    buckets.forEach((b, i) => {
      if (i % step) return;
      chart.appendChild(svg("text", { x: left + colW * i, y: height - 4 }, tick(b)));
    });
    target.appendChild(chart);
    target.appendChild(legend(keys));
  }

  function table(target, head, rows, numeric) {
    target.replaceChildren();
    if (!rows.length) { target.appendChild(el("p", { class: "muted" }, "none")); return; }
    const t = el("table");
    const tr = el("tr");
    head.forEach((h, i) => tr.appendChild(el("th", numeric[i] ? { class: "num" } : {}, h)));
    t.appendChild(el("thead")).appendChild(tr);
    const body = t.appendChild(el("tbody"));
    rows.forEach((row) => {
      const r = el("tr");
      row.forEach((cell, i) => {
        if (cell instanceof Node) { const td = el("td"); td.appendChild(cell); r.appendChild(td); }
        else r.appendChild(el("td", numeric[i] ? { class: "num" } : {}, cell === null || cell === undefined ? "–" : cell));
      });
      body.appendChild(r);
    });
    target.appendChild(t);
  }

  function tile(label, value) {
    const t = el("div", { class: "tile" });
    t.appendChild(el("b", {}, value));
    t.appendChild(document.createTextNode(label));
    return t;
  }

  function hours(s) { return s >= 3600 ? (s / 3600).toFixed(1) + " h" : s >= 60 ? (s / 60).toFixed(1) + " min" : s.toFixed(0) + " s"; }

  function drawPool(pool) {
    const tiles = $("pool-tiles");
    tiles.replaceChildren();
    $("pool-note").textContent = pool.available ? `schedd ${pool.schedd || "?"}` : `pool unavailable: ${pool.error || "?"}`;
    if (!pool.available) { $("pool-nodes").replaceChildren(); return; }
    const s = pool.slots, j = pool.jobs, g = pool.gproc_jobs;
    [["slots", s.total], ["claimed", s.claimed], ["free", s.idle], ["jobs idle", j.idle],
      ["running", j.running], ["held", j.held], ["gproc jobs", g.total]].forEach(([k, v]) => tiles.appendChild(tile(k, v)));
    table($("pool-nodes"), ["node", "slots", "claimed", "free", "other", "cpus"],
      pool.nodes.map((n) => [n.node, n.total, n.claimed, n.idle, n.other, n.cpus]), [0, 1, 1, 1, 1, 1]);
  }

  function drawServices(doc) {
    const rows = doc.services.map((s) => [
      s.name, el("span", { class: s.up ? "up" : "down" }, s.up ? "up" : "down"),
      s.status, s.ms === null ? null : s.ms.toFixed(1) + " ms", s.error || s.url,
    ]);
    table($("services-table"), ["service", "state", "HTTP", "latency", "detail"], rows, [0, 0, 1, 1, 0]);
    const t = doc.tracker;
    $("tracker").textContent = t ? `tracker: last cycle ${hours(t.age_s)} ago (${t.cycle_ms.toFixed(0)} ms, ${t.errors} errors)` : "tracker: no cycle recorded";
  }

  function draw(doc) {
    const buckets = doc.window.buckets;
    drawPool(doc.pool);
    drawServices(doc);
    barChart($("tasks-state"), Object.entries(doc.tasks.by_state));
    stackedChart($("tasks-series"), buckets, doc.tasks.over_time);
    stackedChart($("throughput-chart"), buckets, doc.throughput, { lines: true });
    barChart($("workflows-state"), Object.entries(doc.workflows.by_state));
    stackedChart($("workflows-series"), buckets, doc.workflows.over_time);
    table($("failures-table"), ["kind", "reason", "count"], doc.failures.map((f) => [f.kind, f.reason, f.count]), [0, 0, 1]);
    table($("usage-table"), ["VO", "group", "tasks", "completed", "failed", "wall time", "CPU"],
      doc.usage.map((u) => [u.vo, u.group, u.tasks, u.completed, u.failed, hours(u.wall_s), u.cpu_s === null ? "n/a" : hours(u.cpu_s)]),
      [0, 0, 1, 1, 1, 1, 1]);
    $("updated").textContent = "updated " + doc.generated_at;
  }

  async function load() {
    const error = $("error");
    try {
      const resp = await fetch(summaryUrl(), { credentials: "same-origin", headers: { Accept: "application/json" } });
      const doc = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
      if (!resp.ok) throw new Error(doc.error || `HTTP ${resp.status}`);
      draw(doc);
      error.hidden = true;
      $("dashboard").hidden = false;
      document.documentElement.dataset.state = "ready";
    } catch (exc) {
      error.textContent = "Cannot show the dashboard: " + exc.message;
      error.hidden = false;
      document.documentElement.dataset.state = "error";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("refresh").addEventListener("click", load);
    $("window").addEventListener("change", load);
    load();
    setInterval(load, 30000);
  });
})();
