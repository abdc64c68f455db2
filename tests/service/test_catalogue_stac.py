"""The STAC API view with the stock pystac-client, over real TLS and proxies; asset
links point at the real gateway HTTPS front, which serves them under its own rules."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from pystac_client import Client
from pystac_client.stac_api_io import StacApiIO
from requests.adapters import HTTPAdapter

from gproc.catalogue.engines.sqlite import SqliteEngine
from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.model import Fields
from gproc.catalogue.service import Catalogue, parse_acquired
from gproc.security.pki import TestPKI
from gproc.security.tls import TLSConfig, make_server
from gproc.services.catalogue.stac import StacApp
from gproc.storage_gateway.access import user_key
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.https_front import GatewayApp
from gproc.storage_gateway.namespace import Namespace
from tests.catalogue_rasters import write_raster
from tests.fixtures.gateway import posix_namespace

PLACES = Path(__file__).parents[1] / "data" / "places-test.geojson"


@pytest.fixture(scope="module")
def stac(test_pki: TestPKI, pki_validator, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("catalogue-stac")
    gw = StorageGateway(Namespace.from_dict(posix_namespace(root)))
    engine = SqliteEngine(f"sqlite:///{root / 'cat.db'}")
    engine.create_schema()
    gaz = Gazetteer(engine)
    gaz.load_geojson(PLACES)
    cat = Catalogue(engine, gw, quicklooks=True)
    alice = pki_validator.validate(
        x509.load_pem_x509_certificates(test_pki.proxies["alice-voms"].read_bytes())
    )
    home = f"/private/{user_key(alice)}"
    gw.mkdir(alice, f"{home}/eo", parents=True)
    for i, name in enumerate(("utm34", "geo", "merc", "stereo70")):
        raster = write_raster(root / f"{name}.tif", name)
        gw.write(alice, f"{home}/eo/{name}.tif", [raster.read_bytes()])
        group = "dem" if name in ("utm34", "stereo70") else "aerial"
        cat.register(
            alice,
            f"{home}/eo/{name}.tif",
            Fields(
                group,
                name,
                "DEM" if group == "dem" else "RASTER/AERIAL",
                "NASA",
                acquired=parse_acquired(f"202{i}-06-01"),
            ),
        )
    tls = TLSConfig(test_pki.host_cert, test_pki.host_key, test_pki.ca_dir)
    front = make_server(GatewayApp(gw), "127.0.0.1", 0, tls, pki_validator, timeout_s=30)
    front.start()
    server = make_server(
        StacApp(cat, gaz, asset_base=front.url), "127.0.0.1", 0, tls, pki_validator, timeout_s=30
    ).start()
    ca_file = root / "ca.pem"
    ca_file.write_bytes(test_pki.ca.cert_pem())
    try:
        yield server.url, ca_file
    finally:
        server.stop()
        front.stop()


class _GridAdapter(HTTPAdapter):
    """TLS with the test CA and a proxy as client certificate (pystac-client sends
    prepared requests, which ignore a session's ``cert``/``verify``)."""

    def __init__(self, ca_file: Path, proxy: Path) -> None:
        self.ctx = ssl.create_default_context(cafile=str(ca_file))
        self.ctx.load_cert_chain(str(proxy))
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):  # noqa: ANN002, ANN003
        kwargs["ssl_context"] = self.ctx
        return super().init_poolmanager(*args, **kwargs)


def client(stac, pki: TestPKI, who: str = "alice-voms") -> Client:
    url, ca_file = stac
    io = StacApiIO(max_retries=0, timeout=30)
    io.session.trust_env = False
    io.session.mount("https://", _GridAdapter(ca_file, pki.proxies[who]))
    return Client.open(url + "/", stac_io=io)


def test_pystac_client_round_trip(stac, test_pki: TestPKI) -> None:
    cat = client(stac, test_pki)
    assert {c.id for c in cat.get_collections()} == {"aerial", "dem"}
    hits = cat.search(bbox=[20.0, 45.0, 22.0, 46.5], collections=["dem"])
    assert [i.id for i in hits.items()] == ["utm34"]
    item = next(iter(hits.items()))
    assert item.properties["proj:code"] == "EPSG:32634"
    assert item.assets["data"].href.endswith("/eo/utm34.tif")
    assert item.geometry["type"] == "Polygon"
    thumb = item.assets["thumbnail"].href
    assert thumb.endswith("/eo/.quicklooks/utm34.tif.png") and not thumb.startswith(stac[0])
    for link in (thumb, item.assets["data"].href):  # both through the gateway's front
        assert link.startswith("https://") and not link.startswith(stac[0])
    got = requests.get(
        thumb, cert=str(test_pki.proxies["alice-voms"]), verify=str(stac[1]), timeout=30
    )
    assert got.status_code == 200 and got.content.startswith(b"\x89PNG")
    # the gateway's access rules: Bob may not read Alice's private area
    refused = requests.get(
        thumb, cert=str(test_pki.proxies["bob-voms"]), verify=str(stac[1]), timeout=30
    )
    assert refused.status_code in (403, 404)
    # the STAC view's own quicklook link reads the same file with the caller's rights
    own = requests.get(
        f"{stac[0]}/collections/dem/items/utm34/quicklook.png",
        cert=str(test_pki.proxies["alice-voms"]),
        verify=str(stac[1]),
        timeout=30,
    )
    assert own.content == got.content
    by_time = cat.search(datetime="2021-01-01/2022-12-31")
    assert sorted(i.id for i in by_time.items()) == ["geo", "merc"]
    paged = cat.search(limit=1, method="GET")
    assert sorted(i.id for i in paged.items()) == ["geo", "merc", "stereo70", "utm34"]
    posted = cat.search(limit=1, method="POST", collections=["aerial"])
    assert sorted(i.id for i in posted.items()) == ["geo", "merc"]
    point = cat.search(intersects={"type": "Point", "coordinates": [21.2257, 45.7537]})
    assert sorted(i.id for i in point.items()) == ["geo", "utm34"]


def test_visibility_and_errors(stac, test_pki: TestPKI) -> None:
    bob = client(stac, test_pki, "bob-voms")
    assert list(bob.get_collections()) == []
    assert list(bob.search(bbox=[-180, -90, 180, 90]).items()) == []
    url, ca_file = stac
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = str(test_pki.proxies["bob-voms"]), str(ca_file)
    assert s.get(url + "/collections/dem/items/utm34", timeout=30).status_code == 404
    s.cert = str(test_pki.proxies["alice-voms"])
    assert s.get(url + "/collections/dem/items/utm34", timeout=30).status_code == 200
    r = s.get(url + "/search", params={"q": "type:DEM OR"}, timeout=30)
    assert r.status_code == 400 and "position 11" in r.json()["description"]
    r = s.get(url + "/search", params={"q": "place:Timisoara type:DEM"}, timeout=30)
    assert [f["id"] for f in r.json()["features"]] == ["utm34"]
    assert s.get(url + "/search", params={"bbox": "1,2,x,4"}, timeout=30).status_code == 400
    assert s.post(url + "/search", data=b"[1]", timeout=30).status_code == 400
