"""The portal over HTTPS in front of the real services (no pool: tasks are registered,
never run): sessions and cookies, CSRF, fixation, escaping, ownership, bad input,
proxies never leaving the server. A ``requests`` session plays the browser."""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from markupsafe import escape
from sqlalchemy import text

from gproc.security.pki import make_proxy
from gproc.security.tls import TLSConfig
from gproc.services.portal.app import Portal
from gproc.services.portal.server import make_portal_server
from gproc.services.portal.sessions import session_key
from tests.fixtures.portal import EVIL, SSO, PortalStack, Sso, csrf_of, sso_sign_on

SEEN: list[requests.Response] = []  # every portal response of this module (proxy check)


@pytest.fixture(autouse=True)
def _record(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = requests.Session.request

    def keep(self: requests.Session, *args: object, **kwargs: object) -> requests.Response:
        resp = real(self, *args, **kwargs)  # type: ignore[arg-type]
        SEEN.append(resp)
        return resp

    monkeypatch.setattr(requests.Session, "request", keep)
    yield


def _tasks(stack: PortalStack, s: requests.Session) -> int:
    page = s.get(stack.url + "/tasks", timeout=30).text
    return len(re.findall(r'href="/tasks/[0-9a-f]{32}"', page))


def _cookie_header(resp: requests.Response, name: str) -> str:
    for value in resp.raw.headers.getlist("Set-Cookie"):
        if value.startswith(name + "="):
            return value
    raise AssertionError(f"no {name} cookie in {resp.raw.headers.getlist('Set-Cookie')}")


def test_login_cookie_is_secure_httponly_strict(portal_offline: PortalStack) -> None:
    s = portal_offline.browser_session()
    token = csrf_of(s.get(portal_offline.url + "/login", timeout=30).text)
    with open(portal_offline.pki.proxies["alice-voms"], "rb") as fh:
        resp = s.post(
            portal_offline.url + "/login/proxy",
            data={"csrf": token},
            files={"proxy": ("x509up", fh.read())},
            allow_redirects=False,
            timeout=30,
        )
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/map")
    cookie = _cookie_header(resp, "__Host-gproc").lower()
    for flag in ("secure", "httponly", "samesite=strict", "path=/"):
        assert flag in cookie, cookie
    assert "domain=" not in cookie
    page = s.get(portal_offline.url + "/map", timeout=30)
    assert page.status_code == 200 and "alice" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_session_fixation_is_impossible(portal_offline: PortalStack) -> None:
    s = portal_offline.browser_session()
    planted = "attacker-chosen-session-id"
    s.cookies.set("__Host-gproc", planted, domain="127.0.0.1", path="/")
    portal_offline.login(s=s)
    mine = s.cookies.get("__Host-gproc")
    assert mine and mine != planted
    first = mine
    portal_offline.login(s=s)  # signing in again: a new id, and the old session ends
    second = s.cookies.get("__Host-gproc")
    assert second and second != first
    other = portal_offline.browser_session()
    other.cookies.set("__Host-gproc", first, domain="127.0.0.1", path="/")
    resp = other.get(portal_offline.url + "/map", allow_redirects=False, timeout=30)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")


def test_csrf_is_refused_and_nothing_happens(portal_offline: PortalStack) -> None:
    stack = portal_offline
    s = stack.login()
    before = _tasks(stack, s)
    form = {"input.red": "dataset:eo/red", "input.nir": "dataset:eo/nir"}
    for token in (None, "forged-token"):
        data = dict(form, **({"csrf": token} if token else {}))
        resp = s.post(stack.url + "/tools/ndvi", data=data, allow_redirects=False, timeout=30)
        assert resp.status_code == 403 and "CSRF" in resp.text
    assert _tasks(stack, s) == before
    # logging out needs the token too: the session survives a forged logout
    resp = s.post(stack.url + "/logout", data={"csrf": "x"}, allow_redirects=False, timeout=30)
    assert resp.status_code == 403
    assert s.get(stack.url + "/map", allow_redirects=False, timeout=30).status_code == 200
    # and the login forms need theirs (login CSRF)
    fresh = stack.browser_session()
    with open(stack.pki.proxies["alice-voms"], "rb") as fh:
        resp = fresh.post(stack.url + "/login/proxy", files={"proxy": ("p", fh.read())}, timeout=30)
    assert resp.status_code == 403 and "__Host-gproc" not in fresh.cookies


def test_task_submitted_through_the_processing_service(portal_offline: PortalStack) -> None:
    stack = portal_offline
    s = stack.login()
    page = s.get(stack.url + "/tools/ndvi?input=dataset:eo/red&input=dataset:eo/nir", timeout=30)
    token = csrf_of(page.text)
    assert 'value="dataset:eo/red"' in page.text and 'name="red_band"' in page.text
    resp = s.post(
        stack.url + "/tools/ndvi",
        data={"csrf": token, "input.red": "dataset:eo/red", "input.nir": "dataset:eo/nir"},
        timeout=30,
    )
    assert resp.status_code == 200 and re.search(r"/tasks/[0-9a-f]{32}$", resp.url), resp.text
    status = s.get(stack.url + "/api" + resp.url[len(stack.url) :], timeout=30).json()
    assert status["tool"] == "ndvi" and status["state"] in ("submitting", "registered", "submitted")
    assert status["events"][0]["kind"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("canny1", "20000", "canny1: must be at most 10000"),
        ("canny1", "-1", "canny1: must be at least 0"),
        ("aperture_size", "4", "aperture_size: must be one of 3, 5, 7"),
        ("band", "two", "band: must be a whole number"),
        ("canny1", EVIL, "canny1: must be a number"),
        ("input.image", "/etc/../passwd", "image: pick a dataset on the map"),
        ("input.image", "", "image: pick an input"),
    ],
)
def test_bad_input_is_shown_and_nothing_is_submitted(
    portal_offline: PortalStack, field: str, value: str, message: str
) -> None:
    stack = portal_offline
    s = stack.login()
    before = _tasks(stack, s)
    token = csrf_of(s.get(stack.url + "/tools/canny", timeout=30).text)
    data = {"csrf": token, "input.image": "dataset:eo/roads", field: value}
    resp = s.post(stack.url + "/tools/canny", data=data, timeout=30)
    assert resp.status_code == 400
    assert "Nothing was submitted" in resp.text
    assert str(escape(message)) in resp.text, resp.text
    assert EVIL not in resp.text  # the page echoes the value escaped
    if value == EVIL:
        assert str(escape(EVIL)) in resp.text
    assert _tasks(stack, s) == before


def test_service_refusal_is_shown_and_nothing_is_submitted(portal_offline: PortalStack) -> None:
    """A reference the processing service refuses (bob's dataset) is its fault, shown."""
    stack = portal_offline
    s = stack.login()
    before = _tasks(stack, s)
    token = csrf_of(s.get(stack.url + "/tools/canny", timeout=30).text)
    resp = s.post(
        stack.url + "/tools/canny",
        data={"csrf": token, "input.image": "dataset:bobs/scene"},
        timeout=30,
    )
    assert resp.status_code == 400 and 'id="service-error"' in resp.text
    assert "bobs/scene" in resp.text
    assert _tasks(stack, s) == before


def test_dataset_title_with_html_is_escaped(portal_offline: PortalStack) -> None:
    s = portal_offline.login()
    page = s.get(portal_offline.url + "/datasets/eo/evil", timeout=30)
    assert page.status_code == 200
    assert EVIL not in page.text and "<script>alert" not in page.text
    assert str(escape(EVIL)) in page.text
    ql = s.get(portal_offline.url + "/quicklook/eo/evil.png", timeout=30)
    assert ql.status_code == 200 and ql.content.startswith(b"\x89PNG")


def test_search_by_gql_and_box(portal_offline: PortalStack) -> None:
    s = portal_offline.login()
    api = portal_offline.url + "/api/datasets"
    everything = s.get(api, timeout=30).json()
    assert {f["properties"]["ref"] for f in everything["features"]} == {
        "eo/roads",
        "eo/red",
        "eo/nir",
        "eo/evil",
    }  # alice never sees bob's dataset
    by_name = s.get(api, params={"gql": "dataset:roads"}, timeout=30).json()
    assert [f["properties"]["ref"] for f in by_name["features"]] == ["eo/roads"]
    box = s.get(api, params={"bbox": "21.42,45.55,21.60,45.65"}, timeout=30).json()
    assert [f["properties"]["ref"] for f in box["features"]] == ["eo/evil"]
    bad = s.get(api, params={"gql": "type:DEM OR"}, timeout=30)
    assert bad.status_code == 400 and "at position" in bad.json()["error"]
    bad = s.get(api, params={"bbox": "1,2,3"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["field"] == "bbox"


def test_another_users_task_and_dataset_are_404(portal_offline: PortalStack) -> None:
    stack = portal_offline
    alice = stack.login()
    token = csrf_of(alice.get(stack.url + "/tools/canny", timeout=30).text)
    resp = alice.post(
        stack.url + "/tools/canny",
        data={"csrf": token, "input.image": "dataset:eo/roads"},
        timeout=30,
    )
    tid = resp.url.rsplit("/", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{32}", tid)
    bob = stack.login("bob-member")
    for path in (f"/tasks/{tid}", f"/tasks/{tid}/outputs/output.tif", "/datasets/eo/roads"):
        got = bob.get(stack.url + path, timeout=30)
        assert got.status_code == 404, (path, got.text[:300])
        assert tid not in got.text or path.startswith("/tasks/")
    assert bob.get(stack.url + f"/api/tasks/{tid}", timeout=30).status_code == 404
    token = csrf_of(bob.get(stack.url + "/tasks", timeout=30).text)
    cancel = bob.post(stack.url + f"/tasks/{tid}/cancel", data={"csrf": token}, timeout=30)
    assert cancel.status_code == 404
    assert alice.get(stack.url + f"/api/tasks/{tid}", timeout=30).json()["state"] != "cancelled"
    assert bob.get(stack.url + "/tasks/" + "0" * 32, timeout=30).status_code == 404


def test_inputs_from_the_gateway_area(portal_offline: PortalStack) -> None:
    stack = portal_offline
    s = stack.login()
    home = stack.homes["alice"]
    listing = s.get(stack.url + "/api/gateway", timeout=30).json()  # default: her area
    assert listing["path"] == home and {e["name"] for e in listing["entries"]} >= {"eo"}
    eo = s.get(stack.url + "/api/gateway", params={"path": f"{home}/eo"}, timeout=30).json()
    assert {e["name"] for e in eo["entries"]} >= {"roads.tif", "red.tif"}
    assert (
        s.get(
            stack.url + "/api/gateway", params={"path": stack.homes["bob"]}, timeout=30
        ).status_code
        == 404
    )
    token = csrf_of(s.get(stack.url + "/tools/canny", timeout=30).text)
    resp = s.post(
        stack.url + "/tools/canny",
        data={"csrf": token, "input.image": f"{home}/eo/roads.tif"},
        timeout=30,
    )
    assert re.search(r"/tasks/[0-9a-f]{32}$", resp.url), resp.text[:500]


def test_chain_and_silk_upload_register_workflows(portal_offline: PortalStack) -> None:
    stack = portal_offline
    s = stack.login()
    token = csrf_of(s.get(stack.url + "/workflows?dataset=eo/roads", timeout=30).text)
    chain = s.post(
        stack.url + "/workflows/chain",
        data={
            "csrf": token,
            "datasets": "eo/roads\neo/red",
            "step_tool": ["grayscale", "canny"],
            "step_params": ["", "canny2=120, aperture_size=5"],
        },
        timeout=60,
    )
    assert re.search(r"/workflows/[0-9a-f]{32}$", chain.url), chain.text[:800]
    status = s.get(stack.url + "/api" + chain.url[len(stack.url) :], timeout=30).json()
    assert sorted(n["tool"] for n in status["nodes"]) == [
        "canny",
        "canny",
        "grayscale",
        "grayscale",
    ]
    assert {n["branch"] for n in status["nodes"]} == {0, 1}
    silk = (Path(__file__).parents[2] / "examples" / "workflows" / "figure7.silk").read_bytes()
    upload = s.post(
        stack.url + "/workflows/upload",
        data={"csrf": token, "datasets": "eo/roads", "source": "A0"},
        files={"document": ("figure7.silk", silk)},
        timeout=60,
    )
    assert re.search(r"/workflows/[0-9a-f]{32}$", upload.url), upload.text[:800]
    status = s.get(stack.url + "/api" + upload.url[len(stack.url) :], timeout=30).json()
    assert [n["tool"] for n in status["nodes"]] == ["grayscale", "canny", "hough"]
    assert status["name"] == "figure7"


def test_workflow_bad_input_is_shown_and_nothing_is_submitted(portal_offline: PortalStack) -> None:
    stack = portal_offline
    s = stack.login()
    page = s.get(stack.url + "/workflows", timeout=30).text
    token = csrf_of(page)
    before = len(re.findall(r'href="/workflows/[0-9a-f]{32}"', page))
    cases = [
        ("/workflows/figure7", {"datasets": ""}, "select at least one image"),
        ("/workflows/figure7", {"datasets": "bobs/scene"}, "bobs/scene"),
        (
            "/workflows/chain",
            {"datasets": "eo/roads", "step_tool": "ndvi", "step_params": ""},
            "ndvi takes 2 inputs",
        ),
        (
            "/workflows/chain",
            {"datasets": "eo/roads", "step_tool": "canny", "step_params": "canny1=99999"},
            "canny1: must be at most 10000",
        ),
    ]
    for path, form, words in cases:
        resp = s.post(stack.url + path, data={"csrf": token, **form}, timeout=30)
        assert resp.status_code == 400 and "Nothing was submitted" in resp.text, resp.text[:300]
        assert words in resp.text, (words, resp.text[:2000])
    bad_silk = s.post(
        stack.url + "/workflows/upload",
        data={"csrf": token, "datasets": "eo/roads", "source": "A0"},
        files={"document": ("bad.silk", b"A0:= [o1:output;\n")},
        timeout=30,
    )
    assert bad_silk.status_code == 400 and "line" in bad_silk.text
    page = s.get(stack.url + "/workflows", timeout=30).text
    assert len(re.findall(r'href="/workflows/[0-9a-f]{32}"', page)) == before


def test_uploaded_proxies_are_validated(portal_offline: PortalStack, tmp_path: Path) -> None:
    stack = portal_offline
    pki = stack.pki
    certs = re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n",
        pki.proxies["alice-voms"].read_bytes(),
        re.S,
    )
    chain_only = b"".join(certs)
    other = make_proxy(pki.users["bob"]).write_proxy(tmp_path / "bob.pem").read_bytes()
    alice = pki.proxies["alice-voms"].read_bytes()
    key = re.search(
        rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", other, re.S
    )
    assert key is not None and b"PRIVATE KEY" in alice
    mismatched = chain_only + key.group(0) + b"\n"
    cases = {
        b"not a certificate": "The proxy was refused",
        chain_only: "holds no private key",
        pki.proxies["mallory"].read_bytes(): "The proxy was refused",
        mismatched: "does not belong",
    }
    for data, words in cases.items():
        s = stack.browser_session()
        token = csrf_of(s.get(stack.url + "/login", timeout=30).text)
        resp = s.post(
            stack.url + "/login/proxy",
            data={"csrf": token},
            files={"proxy": ("x509up", data)},
            timeout=30,
        )
        assert resp.status_code == 401 and words in resp.text, resp.text[:500]
        assert "__Host-gproc" not in s.cookies


def test_logout_destroys_the_session_and_its_proxy(portal_offline: PortalStack) -> None:
    stack = portal_offline
    s = stack.login()
    cookie = s.cookies.get("__Host-gproc")
    assert cookie
    count = stack.portal.store.count()
    assert s.get(stack.url + "/api/datasets", timeout=30).status_code == 200
    assert session_key(cookie) in stack.portal.cache  # its clients, kept between requests
    token = csrf_of(s.get(stack.url + "/map", timeout=30).text)
    resp = s.post(stack.url + "/logout", data={"csrf": token}, timeout=30)
    assert resp.url.endswith("/login")
    assert stack.portal.store.count() == count - 1
    assert session_key(cookie) not in stack.portal.cache  # and the proxy in them gone too
    replay = stack.browser_session()
    replay.cookies.set("__Host-gproc", cookie, domain="127.0.0.1", path="/")
    assert replay.get(stack.url + "/api/datasets", timeout=30).status_code == 401


def _myproxy_login(
    url: str, s: requests.Session, username: str, passphrase: str, role: str = ""
) -> requests.Response:
    page = s.get(url + "/login", timeout=30)
    token = csrf_of(page.text.split('id="myproxy-form"', 1)[1])
    form = {"csrf": token, "username": username, "passphrase": passphrase, "vo": "testvo"}
    return s.post(url + "/login", data={**form, "role": role}, timeout=60)


def test_myproxy_sign_on(portal_offline: PortalStack) -> None:
    """Stored with the stock myproxy-init; the portal logs on and adds the VO's attributes."""
    s = portal_offline.browser_session()
    username, passphrase = SSO["alice"]
    resp = _myproxy_login(portal_offline.url, s, username, passphrase)
    assert resp.status_code == 200 and resp.url.endswith("/map"), resp.text[:800]
    assert "CN=alice" in resp.text and "(testvo)" in resp.text
    assert s.get(portal_offline.url + "/api/datasets", timeout=30).json()["features"]
    admin = portal_offline.browser_session()
    username, passphrase = SSO["bob"]
    resp = _myproxy_login(portal_offline.url, admin, username, passphrase, "VO-Admin")
    assert resp.url.endswith("/map") and "/testvo/Role=VO-Admin" in resp.text


@pytest.mark.parametrize(
    ("username", "passphrase", "role", "status", "words"),
    [
        ("alice-portal", "not-the-passphrase", "", 401, "refused the username or passphrase"),
        ("nobody-here", "whatever-pass", "", 401, "refused the username or passphrase"),
        ("alice-portal", "alice-portal-pass", "VO-Admin", 400, "VO-Admin"),
        ("alice-portal", "", "", 400, "passphrase: required"),
    ],
)
def test_myproxy_refusals_are_clear(
    portal_offline: PortalStack, username: str, passphrase: str, role: str, status: int, words: str
) -> None:
    s = portal_offline.browser_session()
    resp = _myproxy_login(portal_offline.url, s, username, passphrase, role)
    assert resp.status_code == status and words in resp.text, resp.text[:1500]
    assert 'id="error"' in resp.text and "__Host-gproc" not in s.cookies
    if passphrase:
        assert passphrase not in resp.text
        assert all(passphrase not in line for line in portal_offline.records)


@pytest.fixture
def myproxy_down(portal_offline: PortalStack, portal_sso: Sso) -> Iterator[str]:
    """The same portal, its MyProxy server address pointing where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp = portal_sso.settings.myproxy.model_copy(update={"port": port})
    settings = portal_sso.settings.model_copy(update={"myproxy": mp})
    stack = portal_offline
    portal = Portal(
        stack.portal.store,
        stack.portal.clients,
        stack.portal.validator,
        stack.portal.config,
        sign_on=sso_sign_on(settings),
    )
    pki = stack.pki
    tls = TLSConfig(pki.host_cert, pki.host_key, pki.ca_dir, client_cert="optional")
    server = make_portal_server(portal, stack.portal.validator, tls, port=0).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_myproxy_outage_is_a_clear_message(portal_offline: PortalStack, myproxy_down: str) -> None:
    s = portal_offline.browser_session()
    username, passphrase = SSO["alice"]
    resp = _myproxy_login(myproxy_down, s, username, passphrase)
    assert resp.status_code == 503
    assert "MyProxy credential store cannot be reached" in resp.text
    assert "__Host-gproc" not in s.cookies and passphrase not in resp.text


def test_dashboard_for_admins_only(portal_offline: PortalStack) -> None:
    """The processing service decides: bob holds the VO admin role, alice does not."""
    stack = portal_offline
    bob = stack.login("bob-voms")
    page = bob.get(stack.url + "/admin/", timeout=30)
    assert page.status_code == 200 and 'data-summary-url="/admin/summary"' in page.text
    assert bob.get(stack.url + "/admin/dashboard.js", timeout=30).status_code == 200
    doc = bob.get(stack.url + "/admin/summary?window_s=3600&bucket_s=600", timeout=30).json()
    assert doc["version"] == 1 and len(doc["window"]["buckets"]) == 6
    assert doc["tasks"]["by_state"]  # the tasks the portal registered in this session
    for who in ("alice-voms", "bob-member"):
        member = stack.login(who)
        page = member.get(stack.url + "/admin/", timeout=30)
        assert page.status_code == 403 and "for grid administrators" in page.text
        data = member.get(stack.url + "/admin/summary", timeout=30)
        assert data.status_code == 403 and "not a grid administrator" in data.json()["error"]
    assert bob.get(stack.url + "/admin/summary?window_s=x", timeout=30).status_code == 400


def test_no_proxy_in_any_response_log_or_database_row(portal_offline: PortalStack) -> None:
    """Runs last in this module: every response seen so far, the portal's logs and the
    session table, searched for the proxies' private keys and certificate bodies."""
    stack = portal_offline
    s = stack.login("bob-voms")
    s.get(stack.url + "/tasks/" + "f" * 32, timeout=30)
    s.get(stack.url + "/api/datasets?gql=((", timeout=30)
    secrets: list[bytes] = [b"PRIVATE KEY", *(p.encode() for _, p in SSO.values())]
    for who in ("alice-voms", "bob-voms", "bob-member"):
        pem = stack.proxy(who).read_bytes()
        blocks = re.findall(rb"-----BEGIN [A-Z ]+-----\n(.+?)\n-----END", pem, re.S)
        secrets += [b.split(b"\n")[1] for b in blocks]  # a line from inside each block
        secrets.append(base64.b64encode(pem)[:60])
    assert len(SEEN) > 20
    for resp in SEEN:
        if not resp.url.startswith(stack.url):
            continue  # the portal's own calls to the services (made in this process)
        blob = resp.content + str(resp.headers).encode()
        for secret in secrets:
            assert secret not in blob, (resp.url, secret[:20])
    logs = "\n".join(stack.records).encode()
    assert logs  # the access log did write lines
    for secret in secrets:
        assert secret not in logs
    with stack.portal.store.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM portal_sessions")).all()
    assert rows
    dump = repr(rows).encode()
    for secret in secrets:
        assert secret not in dump
