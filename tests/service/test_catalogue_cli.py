"""``gproc catalogue`` as a user runs it: a real proxy validated with the test PKI,
a POSIX gateway namespace, the SQLite catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from gproc.security.pki import TestPKI
from gproc.storage_gateway.access import user_key
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from tests.catalogue_rasters import write_raster

GPROC = [sys.executable, "-m", "gproc.services.cli"]
PLACES = Path(__file__).parents[1] / "data" / "places-test.geojson"
NAMESPACE = """
[backends.local]
type = "posix"
root = "{root}"
create = true

[[area]]
path = "/public"
backend = "local"
root = "/public"
read = ["/testvo/*"]
write = ["/testvo/Role=datamanager"]

[[area]]
path = "/private"
type = "private"
backend = "local"
root = "/private"
members = ["/testvo/*"]
"""


@pytest.fixture
def env(tmp_path: Path, test_pki: TestPKI, pki_validator) -> dict:
    (tmp_path / "ns.toml").write_text(NAMESPACE.format(root=tmp_path / "data"))
    (tmp_path / "gproc.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[gateway]\nnamespace = "{tmp_path / "ns.toml"}"\n'
        f'[service]\nca_dir = "{test_pki.ca_dir}"\nvomsdir = "{test_pki.vomsdir}"\n'
        f'[catalogue]\ndatabase_url = "sqlite:///{tmp_path / "cat.db"}"\n'
    )
    chain = x509.load_pem_x509_certificates(test_pki.proxies["alice-voms"].read_bytes())
    alice = pki_validator.validate(chain)
    gw = StorageGateway(Namespace.load(tmp_path / "ns.toml"))
    home = f"/private/{user_key(alice)}"
    gw.mkdir(alice, f"{home}/in", parents=True)
    for name in ("utm34", "geo"):
        raster = write_raster(tmp_path / f"{name}.tif", name)
        gw.write(alice, f"{home}/in/{name}.tif", [raster.read_bytes()])
    gw.write(alice, f"{home}/in/notes.tif", [b"text"])
    return {
        **os.environ,
        "GPROC_CONFIG": str(tmp_path / "gproc.toml"),
        "X509_USER_PROXY": str(test_pki.proxies["alice-voms"]),
        "COLUMNS": "200",
        "home": home,
    }


def gproc(env: dict, *args: str, who: str | None = None, pki: TestPKI | None = None):
    run_env = {k: v for k, v in env.items() if k != "home"}
    if who and pki:
        run_env["X509_USER_PROXY"] = str(pki.proxies[who])
    return subprocess.run(
        [*GPROC, "catalogue", *args],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_catalogue_cli_story(env: dict, test_pki: TestPKI) -> None:
    home = env["home"]
    r = gproc(env, "places", "load", str(PLACES))
    assert r.returncode == 0 and "loaded 5 places" in r.stdout, r.stderr

    r = gproc(
        env,
        "add",
        f"{home}/in/utm34.tif",
        "-g",
        "srtm",
        "-d",
        "banat",
        "-t",
        "dem",
        "--vendor",
        "NASA",
        "--acquired",
        "2021-05-01",
        "-p",
        "cloud=0",
    )
    assert r.returncode == 0, r.stderr
    assert "EPSG:32634" in r.stdout

    r = gproc(env, "scan", f"{home}/in", "-g", "mine", "-t", "RASTER/AERIAL", "--vendor", "ESA")
    assert r.returncode == 0, r.stderr
    assert "added 1, updated 0, unchanged 1" in r.stdout and "notes.tif" in r.stdout

    r = gproc(env, "--json", "search", "place:Timisoara, Timis, Romania type:DEM vendor:NASA")
    assert r.returncode == 0, r.stderr
    assert [i["name"] for i in json.loads(r.stdout)["items"]] == ["srtm/banat"]

    llql = (
        '(select \'(url owner) (ogc:interacts (osm:country "Romania")) '
        '(ogc:interacts (ogc:bbox 16.69 43.97 24.8 48.48)) (gdis:type "RASTER/AERIAL"))'
    )
    r = gproc(env, "--json", "search", "--llql", llql)
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)["items"]
    assert items == [{"url": f"{home}/in/geo.tif", "owner": items[0]["owner"]}]
    assert items[0]["owner"].endswith("CN=alice")

    page = json.loads(gproc(env, "--json", "search", "--limit", "1").stdout)
    assert len(page["items"]) == 1 and page["token"]
    rest = json.loads(
        gproc(env, "--json", "search", "--limit", "1", "--token", page["token"]).stdout
    )
    assert rest["token"] is None and rest["items"][0]["name"] != page["items"][0]["name"]

    shown = json.loads(gproc(env, "--json", "show", "srtm/banat").stdout)
    assert shown["properties"] == {"cloud": "0"} and shown["acquired"].startswith("2021-05-01")

    # bob may not see alice's private datasets
    r = gproc(env, "--json", "search", who="bob-voms", pki=test_pki)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["items"] == []
    r = gproc(env, "show", "srtm/banat", who="bob-voms", pki=test_pki)
    assert r.returncode == 1 and "Client.DatasetNotFound" in r.stderr

    r = gproc(env, "search", "type:DEM OR")
    assert r.returncode == 1 and "at position 11" in r.stderr and "key:value" in r.stderr

    assert gproc(env, "rm", "srtm/banat").returncode == 0
    assert gproc(env, "show", "srtm/banat").returncode == 1


def test_catalogue_serve_answers_soap_and_stac(env: dict, test_pki: TestPKI, tmp_path) -> None:
    import signal
    import socket
    import time

    import requests

    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    cfg = Path(env["GPROC_CONFIG"])
    text = cfg.read_text().replace(
        "[service]\n",
        f'[service]\ncert = "{test_pki.host_cert}"\nkey = "{test_pki.host_key}"\n',
    )
    cfg.write_text(text + f"port = {ports[0]}\nstac_port = {ports[1]}\n")
    run_env = {k: v for k, v in env.items() if k != "home"}
    proc = subprocess.Popen(
        [*GPROC, "catalogue", "serve"],
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        banner = proc.stdout.readline() if proc.stdout else ""
        assert "SOAP https://" in banner and "STAC https://" in banner, proc.stderr
        ca = tmp_path / "ca.pem"
        ca.write_bytes(test_pki.ca.cert_pem())
        s = requests.Session()
        s.trust_env = False
        s.cert, s.verify = str(test_pki.proxies["alice-voms"]), str(ca)
        deadline = time.monotonic() + 30
        while True:
            try:
                wsdl = s.get(f"https://127.0.0.1:{ports[0]}/?wsdl", timeout=10)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert "urn:gproc:catalogue:1" in wsdl.text
        landing = s.get(f"https://127.0.0.1:{ports[1]}/", timeout=10).json()
        assert landing["type"] == "Catalog"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
