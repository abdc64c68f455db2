"""The catalogue SOAP service on the chassis, with zeep over real TLS and proxies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import zeep
from cryptography import x509
from zeep.transports import Transport

from gproc.catalogue.engines.sqlite import SqliteEngine
from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.service import Catalogue
from gproc.security.pki import TestPKI
from gproc.security.tls import GridServer, TLSConfig
from gproc.services.catalogue.app import make_catalogue_server
from gproc.services.catalogue.types import FAULTS, NS
from gproc.storage_gateway.access import user_key
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from tests.catalogue_rasters import write_raster
from tests.fixtures.gateway import posix_namespace
from tests.service.soap_helpers import zeep_fault

PLACES = Path(__file__).parents[1] / "data" / "places-test.geojson"


@dataclass
class Stack:
    server: GridServer
    pki: TestPKI
    ca_file: Path
    home: str

    def client(self, who: str = "alice-voms") -> zeep.Client:
        s = requests.Session()
        s.trust_env = False
        s.cert = str(self.pki.proxies[who])
        s.verify = str(self.ca_file)
        return zeep.Client(self.server.url + "/?wsdl", transport=Transport(session=s, timeout=30))


@pytest.fixture(scope="module")
def stack(test_pki: TestPKI, pki_validator, tmp_path_factory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("catalogue-soap")
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
    for name in ("utm34", "geo", "merc"):
        raster = write_raster(root / f"{name}.tif", name)
        gw.write(alice, f"{home}/eo/{name}.tif", [raster.read_bytes()])
    tls = TLSConfig(test_pki.host_cert, test_pki.host_key, test_pki.ca_dir)
    server = make_catalogue_server(cat, gaz, pki_validator, tls, port=0).start()
    ca_file = root / "ca.pem"
    ca_file.write_bytes(test_pki.ca.cert_pem())
    try:
        yield Stack(server, test_pki, ca_file, home)
    finally:
        server.stop()


def fault(call) -> tuple[str, dict[str, str]]:
    with pytest.raises(zeep.exceptions.Fault) as err:
        call()
    return zeep_fault(err.value)


def test_wsdl_is_its_own_and_declares_every_fault(stack: Stack) -> None:
    text = requests.get(
        stack.server.url + "/?wsdl",
        verify=str(stack.ca_file),
        cert=str(stack.pki.proxies["alice-voms"]),
        timeout=30,
    ).text
    assert f'targetNamespace="{NS}"' in text
    for op in (
        "SearchDatasets",
        "GetDataset",
        "RegisterDataset",
        "UpdateDataset",
        "RemoveDataset",
        "ScanArea",
        "ListDatagroups",
    ):
        assert f'name="{op}"' in text, op
    for name in FAULTS.types:
        assert f'name="{name}"' in text, name


def test_register_search_get_remove(stack: Stack) -> None:
    alice = stack.client().service
    home = stack.home
    dem = alice.RegisterDataset(
        f"{home}/eo/utm34.tif",
        {
            "datagroup": "srtm",
            "dataset": "banat",
            "type": "dem",
            "vendor": "NASA",
            "properties": [{"key": "cloud", "value": "0"}],
        },
    )
    assert dem.crs == "EPSG:32634" and dem.type == "DEM" and len(dem.bbox) == 4
    scan = alice.ScanArea(f"{home}/eo", {"datagroup": "survey", "type": "RASTER/AERIAL"})
    assert (scan.added, scan.unchanged) == (2, 1)

    found = alice.SearchDatasets(gql="place:Timisoara, Timis, Romania type:DEM vendor:NASA")
    assert [d.id for d in found.datasets] == [dem.id]
    llql = (
        '(select \'(url owner) (ogc:interacts (osm:country "Romania")) (gdis:type "RASTER/AERIAL"))'
    )
    found = alice.SearchDatasets(llql=llql)
    assert [d.url for d in found.datasets] == [f"{home}/eo/geo.tif", f"{home}/eo/merc.tif"]
    found = alice.SearchDatasets(
        criteria={
            "bbox": [16.69, 43.97, 24.8, 48.48],
            "properties": [{"key": "cloud", "value": "0"}],
        }
    )
    assert [d.id for d in found.datasets] == [dem.id]
    page = alice.SearchDatasets(limit=2)
    assert len(page.datasets) == 2 and page.token
    rest = alice.SearchDatasets(limit=2, token=page.token)
    assert len(rest.datasets) == 1 and rest.token is None
    assert {(g.name, g.datasets) for g in alice.ListDatagroups()} == {("srtm", 1), ("survey", 2)}

    assert alice.GetDataset("srtm/banat").sha256 == dem.sha256
    updated = alice.UpdateDataset(
        "srtm/banat", {"datagroup": "srtm", "dataset": "banat", "type": "DEM", "vendor": "ESA"}
    )
    assert updated.vendor == "ESA"

    bob = stack.client("bob-voms").service
    nothing = bob.SearchDatasets()  # zeep reads an empty result element as None
    assert nothing is None or not nothing.datasets
    code, detail = fault(lambda: bob.GetDataset("srtm/banat"))
    assert code == "Client.DatasetNotFound" and detail["field"] == "dataset"
    code, _ = fault(lambda: bob.RegisterDataset(f"{home}/eo/geo.tif", {"datagroup": "x"}))
    assert code == "Client.NotAuthorised"

    assert alice.RemoveDataset("srtm/banat") == dem.id
    code, _ = fault(lambda: alice.GetDataset(dem.id))
    assert code == "Client.DatasetNotFound"


@pytest.mark.parametrize(
    ("call", "code", "field"),
    [
        (lambda s: s.SearchDatasets(gql="type:DEM OR"), "Client.QuerySyntax", "query"),
        (
            lambda s: s.SearchDatasets(llql="(select (gdis:type DEM))"),
            "Client.QuerySyntax",
            "query",
        ),
        (lambda s: s.SearchDatasets(gql="a", llql="(select)"), "Client.InvalidQuery", "query"),
        (lambda s: s.SearchDatasets(token="forged"), "Client.InvalidToken", "token"),
        (lambda s: s.SearchDatasets(criteria={"bbox": [1, 2, 3]}), "Client.InvalidQuery", "bbox"),
        (
            lambda s: s.SearchDatasets(criteria={"geometry": "POINT (500 1)"}),
            "Client.InvalidQuery",
            "geometry",
        ),
        (lambda s: s.GetDataset("no-such"), "Client.InvalidDataset", "dataset"),
        (
            lambda s: s.RegisterDataset("/public/../etc/passwd", {"datagroup": "x"}),
            "Client.InvalidDataset",
            "location",
        ),
        (
            lambda s: s.RegisterDataset("/public/x.tif", {"datagroup": "bad name"}),
            "Client.InvalidDataset",
            "datagroup",
        ),
    ],
)
def test_declared_faults_name_the_field(stack: Stack, call, code: str, field: str) -> None:
    got, detail = fault(lambda: call(stack.client().service))
    assert got == code, detail
    assert detail.get("field") == field
    if code == "Client.QuerySyntax":
        assert "at position" in detail["message"]
