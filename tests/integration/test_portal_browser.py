"""The portal in a real headless Chromium, in front of real services on the pool:
sign in through MyProxy, search the map (GQL and a drawn box), run Figure 7 on a catalogue image
and see the Hough result on the map, run a single NDVI. Screenshots are saved as
artefacts and checked (the layers exist and their images are not empty)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.fixtures.portal import SSO, Browser, PortalStack

# a layer's image, drawn to a canvas: how many pixels are not black or transparent
LIT_PIXELS = """
const img = arguments[0];
if (!img.complete || !img.naturalWidth) return -1;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d'); g.drawImage(img, 0, 0);
const d = g.getImageData(0, 0, c.width, c.height).data;
let lit = 0;
for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] + d[i + 1] + d[i + 2]) > 30) lit++;
return lit;
"""


def wait(driver: WebDriver, what: Callable[[WebDriver], Any], timeout: float, why: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = what(driver)
            if got:
                return got
        except Exception:  # noqa: BLE001 - the page is still changing
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{why}: not after {timeout:.0f} s ({driver.current_url})")
        time.sleep(0.3)


def screenshot_is_not_blank(path: Path) -> None:
    with rasterio.open(path) as png:
        pixels = png.read()
    assert pixels.shape[1] > 200 and pixels.shape[2] > 200
    assert len(np.unique(pixels.reshape(pixels.shape[0], -1), axis=1).T) > 50, path


def sign_in(browser: Browser, stack: PortalStack, user: str = "alice", role: str = "") -> None:
    """Through the MyProxy form (the credential was stored with the stock myproxy-init)."""
    d = browser.driver
    d.get(stack.url + "/login")
    username, passphrase = SSO[user]
    d.find_element(By.ID, "username").send_keys(username)
    d.find_element(By.ID, "passphrase").send_keys(passphrase)
    d.find_element(By.ID, "role").send_keys(role)
    d.find_element(By.ID, "signin").click()
    wait(d, lambda d: d.current_url.endswith("/map"), 60, "signed in")
    assert f"CN={user}" in d.find_element(By.ID, "whoami").text


def results(d: WebDriver) -> list[str]:
    return [e.get_attribute("data-ref") for e in d.find_elements(By.CSS_SELECTOR, "#results li")]


@pytest.fixture(scope="module")
def signed_in(portal_on_pool: PortalStack, portal_browser: Browser) -> Browser:
    sign_in(portal_browser, portal_on_pool)
    return portal_browser


def test_map_search_by_gql_and_box(signed_in: Browser, portal_on_pool: PortalStack) -> None:
    d = signed_in.driver
    d.get(portal_on_pool.url + "/map")
    assert "alice" in d.find_element(By.ID, "whoami").text
    found = wait(d, lambda d: sorted(results(d)) if len(results(d)) == 4 else None, 30, "all")
    assert found == ["eo/evil", "eo/nir", "eo/red", "eo/roads"]
    # the HTML in a dataset title is shown as text
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#results .title")]
    assert any("<script>" in t for t in titles)
    assert not d.find_elements(By.CSS_SELECTOR, "#results script, #results img")
    quicklooks = wait(
        d, lambda d: d.find_elements(By.CSS_SELECTOR, "img.quicklook-layer"), 20, "ql"
    )
    assert len(quicklooks) == 4
    for img in quicklooks:
        wait(d, lambda d, img=img: d.execute_script(LIT_PIXELS, img) > 0, 20, "quicklook drawn")
    screenshot_is_not_blank(signed_in.shot("map-all"))

    box = d.find_element(By.ID, "gql")
    box.clear()
    box.send_keys("dataset:roads")
    d.find_element(By.ID, "search-button").click()
    assert wait(d, lambda d: results(d) if results(d) == ["eo/roads"] else None, 20, "gql")

    box.clear()
    d.find_element(By.ID, "search-button").click()
    wait(d, lambda d: len(results(d)) == 4, 20, "all again")
    # draw a box around the footprint of eo/evil (the south-east scene) only
    evil = d.find_element(By.CSS_SELECTOR, "img.quicklook-layer[alt='eo/evil']")
    rect = evil.rect
    d.find_element(By.ID, "draw-box").click()
    chain = ActionChains(d)
    map_el = d.find_element(By.ID, "map")
    origin = map_el.rect
    x0 = rect["x"] + rect["width"] * 0.4 - origin["x"] - origin["width"] / 2
    y0 = rect["y"] + rect["height"] * 0.4 - origin["y"] - origin["height"] / 2
    chain.move_to_element_with_offset(map_el, int(x0), int(y0)).click_and_hold()
    chain.move_by_offset(int(rect["width"] * 0.3), int(rect["height"] * 0.3)).release().perform()
    wait(d, lambda d: d.find_element(By.ID, "bbox").get_attribute("value"), 10, "box drawn")
    assert wait(d, lambda d: results(d) if results(d) == ["eo/evil"] else None, 20, "box search")
    signed_in.shot("map-box")


def _completed(d: WebDriver, timeout: float, what: str) -> str:
    state = wait(
        d,
        lambda d: (s := d.find_element(By.ID, "state").text) in ("completed", "failed") and s,
        timeout,
        what,
    )
    assert state == "completed", d.find_element(By.ID, "reason").text
    return str(state)


def _result_layer(browser: Browser, name: str) -> None:
    d = browser.driver
    layer = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "img.result-layer"), 60, "result")
    lit = wait(d, lambda d: d.execute_script(LIT_PIXELS, layer[0]) > 0 and d, 30, "drawn")
    assert lit
    assert d.find_elements(By.CSS_SELECTOR, "img.input-layer"), "the input beside the result"
    for kind in ("input", "result"):  # both pictures beside the map, both drawn
        pic = d.find_element(By.CSS_SELECTOR, f"figure.{kind}-layer-picture img")
        wait(d, lambda d, pic=pic: d.execute_script(LIT_PIXELS, pic) > 0, 20, f"{kind} picture")
    screenshot_is_not_blank(browser.shot(name))


def test_figure7_on_a_catalogue_image(signed_in: Browser, portal_on_pool: PortalStack) -> None:
    d = signed_in.driver
    d.get(portal_on_pool.url + "/map")
    wait(d, lambda d: "eo/roads" in results(d), 30, "results")
    d.execute_script("sessionStorage.clear()")
    d.find_element(By.CSS_SELECTOR, "#results li[data-ref='eo/roads'] input").click()
    d.find_element(By.ID, "use-figure7").click()
    wait(d, lambda d: "eo/roads" in d.find_element(By.ID, "picked-label").text, 20, "picked")
    d.find_element(By.ID, "run-figure7").click()
    wait(d, lambda d: "/workflows/" in d.current_url and d.find_elements(By.ID, "nodes"), 30, "wf")
    _completed(d, 300, "figure 7")
    rows = wait(
        d,
        lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, "#nodes tr")][1:],
        20,
        "node table",
    )
    assert len(rows) == 3 and all(" done " in f" {r} " for r in rows), rows
    assert [r.split()[1] for r in rows] == ["grayscale", "canny", "hough"]
    outputs = [a.text for a in d.find_elements(By.CSS_SELECTOR, "#outputs a.download")]
    assert "n2_output.tif" in outputs and "n2_lines.json" in outputs
    _result_layer(signed_in, "figure7-result")


def test_single_ndvi(signed_in: Browser, portal_on_pool: PortalStack) -> None:
    d = signed_in.driver
    d.get(portal_on_pool.url + "/tools/ndvi?input=dataset:eo/red&input=dataset:eo/nir")
    assert d.find_element(By.ID, "input-red").get_attribute("value") == "dataset:eo/red"
    d.find_element(By.ID, "submit-task").click()
    wait(d, lambda d: "/tasks/" in d.current_url and d.find_elements(By.ID, "state"), 30, "task")
    _completed(d, 240, "ndvi")
    _result_layer(signed_in, "ndvi-result")
    link = d.find_element(By.CSS_SELECTOR, "#outputs a.download")
    assert link.text.endswith(".tif")
    # the download streams from the gateway with the user's rights, for the session only
    cookie = d.get_cookie("__Host-gproc")
    assert cookie and cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    s = portal_on_pool.browser_session()
    s.cookies.set(cookie["name"], cookie["value"], domain="127.0.0.1", path="/")
    got = s.get(link.get_attribute("href"), timeout=60)
    assert got.status_code == 200 and got.content[:4] == b"II*\x00"
    assert "attachment" in got.headers["Content-Disposition"]
    assert (
        portal_on_pool.browser_session()
        .get(link.get_attribute("href"), timeout=30)
        .url.endswith("/login")
    )


def test_cancel_and_retry_a_task(signed_in: Browser, portal_on_pool: PortalStack) -> None:
    d = signed_in.driver
    d.get(portal_on_pool.url + "/tools/canny?input=dataset:eo/roads")
    d.find_element(By.ID, "submit-task").click()
    wait(d, lambda d: "/tasks/" in d.current_url and d.find_elements(By.ID, "cancel"), 30, "task")
    page = d.current_url
    d.find_element(By.ID, "cancel").click()
    wait(d, lambda d: d.find_element(By.ID, "state").text == "cancelled", 60, "cancelled")
    d.find_element(By.ID, "retry").click()
    wait(d, lambda d: d.current_url == page, 20, "back on the task page")
    again = wait(
        d,
        lambda d: (t := d.find_element(By.ID, "state").text) not in ("", "cancelled") and t,
        30,
        "resubmitted",
    )
    wait(
        d,
        lambda d: any("CANCEL" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#events tr")),
        20,
        "the cancellation in the event table",
    )
    assert again in ("submitting", "submitted", "idle", "running", "staging_out", "completed")
    if again != "completed":  # leave nothing in the shared pool
        d.find_element(By.ID, "cancel").click()
        wait(d, lambda d: d.find_element(By.ID, "state").text == "cancelled", 60, "cleaned up")


def test_cancel_and_retry_a_workflow(signed_in: Browser, portal_on_pool: PortalStack) -> None:
    d = signed_in.driver
    d.get(portal_on_pool.url + "/workflows?dataset=eo/roads")
    d.find_element(By.ID, "run-figure7").click()
    wait(d, lambda d: "/workflows/" in d.current_url and d.find_elements(By.ID, "cancel"), 30, "wf")
    page = d.current_url
    d.find_element(By.ID, "cancel").click()
    wait(d, lambda d: d.find_element(By.ID, "state").text == "cancelled", 60, "cancelled")
    d.find_element(By.ID, "retry").click()
    wait(d, lambda d: d.current_url == page, 20, "back on the workflow page")
    state = wait(
        d,
        lambda d: (t := d.find_element(By.ID, "state").text) not in ("", "cancelled") and t,
        30,
        "resubmitted",
    )
    assert state in ("submitting", "submitted", "running", "completed"), state
    if state != "completed":  # leave nothing in the shared pool
        d.find_element(By.ID, "cancel").click()
        wait(d, lambda d: d.find_element(By.ID, "state").text == "cancelled", 60, "cleaned up")


def test_dashboard_as_admin_and_refused_to_a_member(
    portal_browser: Browser, portal_on_pool: PortalStack, request: pytest.FixtureRequest
) -> None:
    """Last: signs alice out, bob in with the VO admin role, then alice again."""
    d = portal_browser.driver
    ran_tasks = any("ndvi" in item.name for item in request.session.items)
    d.get(portal_on_pool.url + "/map")
    d.find_element(By.ID, "logout").click()
    wait(d, lambda d: d.current_url.endswith("/login"), 20, "signed out")
    sign_in(portal_browser, portal_on_pool, "bob", role="VO-Admin")
    d.get(portal_on_pool.url + "/admin/")
    wait(d, lambda d: d.find_element(By.ID, "dashboard").is_displayed(), 30, "dashboard drawn")
    assert not d.find_element(By.ID, "error").is_displayed()
    tiles = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#pool-tiles > *"), 20, "pool")
    assert tiles and any(t.text.strip() for t in tiles)  # slots and jobs of the real pool
    series = d.find_element(By.ID, "tasks-series")
    drawn = wait(
        d,
        lambda d: (
            series.find_elements(By.TAG_NAME, "svg") or "nothing in this window" in series.text
        ),
        20,
        "tasks over time",
    )
    if ran_tasks:  # the NDVI and cancelled tasks above are in the chart
        assert drawn is not True and series.find_elements(By.CSS_SELECTOR, "svg rect")
    screenshot_is_not_blank(portal_browser.shot("dashboard-admin"))
    d.get(portal_on_pool.url + "/map")
    d.find_element(By.ID, "logout").click()
    wait(d, lambda d: d.current_url.endswith("/login"), 20, "signed out")
    sign_in(portal_browser, portal_on_pool, "alice")
    d.get(portal_on_pool.url + "/admin/")
    message = d.find_element(By.ID, "error").text
    assert "for grid administrators" in message and "CN=alice" in message
    portal_browser.shot("dashboard-member-refused")
