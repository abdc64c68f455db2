"""Helpers for the WPS tests: raw KVP and XML requests, ExceptionReport checks."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from tests.fixtures.ogc import OgcServer

WPS2 = "http://www.opengis.net/wps/2.0"
WPS1 = "http://www.opengis.net/wps/1.0.0"
OWS2 = "http://www.opengis.net/ows/2.0"
OWS1 = "http://www.opengis.net/ows/1.1"
XLINK = "http://www.w3.org/1999/xlink"
NS = {"wps": WPS2, "ows": OWS2, "wps1": WPS1, "ows1": OWS1, "xlink": XLINK}


def kvp(srv: OgcServer, who: str = "alice-voms", **params: str) -> requests.Response:
    return srv.session(who).get(srv.url + "/wps", params=params, timeout=30)


def post(srv: OgcServer, body: bytes | str, who: str = "alice-voms") -> requests.Response:
    data = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": "application/xml"}
    return srv.session(who).post(srv.url + "/wps", data=data, headers=headers, timeout=60)


def xml(resp: requests.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text[:800]
    assert resp.headers["Content-Type"].startswith("application/xml"), resp.headers
    return etree.fromstring(resp.content)


def report(
    resp: requests.Response, status: int, code: str, version: int = 2, locator: str | None = None
) -> Any:
    """The ExceptionReport of ``resp``, checked: OWS version, HTTP status, code, locator."""
    root = xml(resp, status)
    ows = OWS2 if version == 2 else OWS1
    assert root.tag == f"{{{ows}}}ExceptionReport", resp.text[:500]
    (exc,) = root.findall(f"{{{ows}}}Exception")
    assert exc.get("exceptionCode") == code, resp.text[:500]
    if locator is not None:
        assert exc.get("locator") == locator, resp.text[:500]
    texts = [t.text for t in exc.findall(f"{{{ows}}}ExceptionText")]
    assert texts and resp.headers["X-Request-Id"] in texts[-1]
    return root


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def execute2(
    inputs: str,
    process: str = "ndvi",
    mode: str = "async",
    outputs: str = "",
    response: str = "document",
) -> str:
    return f"""<wps:Execute xmlns:wps="{WPS2}" xmlns:ows="{OWS2}" xmlns:xlink="{XLINK}"
    service="WPS" version="2.0.0" mode="{mode}" response="{response}">
  <ows:Identifier>{process}</ows:Identifier>{inputs}{outputs}
</wps:Execute>"""


def input2_value(name: str, data: bytes) -> str:
    return (
        f'<wps:Input id="{name}"><wps:Data mimeType="image/tiff" encoding="base64">'
        f"{b64(data)}</wps:Data></wps:Input>"
    )


def input2_ref(name: str, href: str) -> str:
    return f'<wps:Input id="{name}"><wps:Reference xlink:href="{href}"/></wps:Input>'


def input2_literal(name: str, value: str) -> str:
    return f'<wps:Input id="{name}"><wps:Data>{value}</wps:Data></wps:Input>'


def ndvi2(red: bytes, nir: bytes, **kw: str) -> str:
    return execute2(input2_value("red", red) + input2_value("nir", nir), **kw)


def job_request(op: str, job: str) -> str:
    return (
        f'<wps:{op} xmlns:wps="{WPS2}" service="WPS" version="2.0.0">'
        f"<wps:JobID>{job}</wps:JobID></wps:{op}>"
    )


def execute1(inputs: str, process: str = "ndvi", form: str = "") -> str:
    return f"""<wps:Execute xmlns:wps="{WPS1}" xmlns:ows="{OWS1}" xmlns:xlink="{XLINK}"
    service="WPS" version="1.0.0">
  <ows:Identifier>{process}</ows:Identifier>
  <wps:DataInputs>{inputs}</wps:DataInputs>{form}
</wps:Execute>"""


def input1_value(name: str, data: bytes) -> str:
    return (
        f"<wps:Input><ows:Identifier>{name}</ows:Identifier><wps:Data>"
        f'<wps:ComplexData mimeType="image/tiff" encoding="base64">{b64(data)}</wps:ComplexData>'
        "</wps:Data></wps:Input>"
    )


def async_form1(output: str = "output", as_reference: bool = True) -> str:
    ref = "true" if as_reference else "false"
    return (
        '<wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true">'
        f'<wps:Output asReference="{ref}"><ows:Identifier>{output}</ows:Identifier></wps:Output>'
        "</wps:ResponseDocument></wps:ResponseForm>"
    )


NODE_DIR = Path(__file__).resolve().parents[1] / "integration" / "node"


def schema_check(docs: dict[str, bytes], tmp: Path) -> dict[str, dict[str, Any]]:
    """Each document checked by ``wps_schema_check.js`` (the OGC schemas' Jsonix
    mappings and JSON schemas from npm ogc-schemas): name -> {"ok", "root", "errors"}."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "ogc-schemas").is_dir():
        pytest.fail(f"node and the npm packages are installed by bin/setup (npm ci in {NODE_DIR})")
    files = {}
    for name, body in docs.items():
        files[name] = tmp / f"{name}.xml"
        files[name].write_bytes(body)
    proc = subprocess.run(
        [node, str(NODE_DIR / "wps_schema_check.js"), *map(str, files.values())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=NODE_DIR,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    by_file = {json.loads(line)["file"]: json.loads(line) for line in proc.stdout.splitlines()}
    return {name: by_file[str(path)] for name, path in files.items()}


def assert_schema_valid(docs: dict[str, bytes], tmp: Path) -> None:
    results = schema_check(docs, tmp)
    bad = {name: r["errors"] for name, r in results.items() if not r["ok"]}
    assert not bad, bad
