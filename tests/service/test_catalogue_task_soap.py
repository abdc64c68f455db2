"""Datasets as task inputs through the SOAP processing service, wired by
``build_context`` with ``[catalogue] tasks``: a real HTTPS server, VOMS proxies,
the real gateway (POSIX areas) and catalogue (SQLite). The WMS points at a pool
that is not there: registration stages inputs, no job runs; the outputs of a
registered task are handed to the wired task data as the tracker hands them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zeep
from cryptography import x509

from gproc.catalogue.model import Fields
from gproc.catalogue.query import Eq, Query
from gproc.catalogue.service import Catalogue
from gproc.domain import OutputFile, task_owner
from gproc.security.identity import Identity
from gproc.security.pki import TestPKI
from gproc.security.tls import TLSConfig
from gproc.security.wsgi_auth import validate_with
from gproc.services.catalogue_tasks import CatalogueOutputs, DatasetInputs
from gproc.services.soap.app import build_context, build_validator, make_soap_server
from gproc.services.soap.service import ServiceContext
from gproc.settings import CatalogueSettings, ServiceSettings, Settings
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.catalogue_rasters import write_raster
from tests.fixtures.gateway import posix_namespace
from tests.fixtures.soap import POLICY, SoapServer
from tests.service.soap_helpers import client, zeep_fault


@dataclass
class Wired:
    srv: SoapServer
    catalogue: Catalogue
    gateway: StorageGateway
    alice: Identity
    dataset_id: str
    raster: bytes


def _identity(pki: TestPKI, validator: object, who: str) -> Identity:
    chain = x509.load_pem_x509_certificates(pki.proxies[who].read_bytes())
    ident = validate_with(validator, chain)  # type: ignore[arg-type]
    assert isinstance(ident, Identity)
    return ident


@pytest.fixture(scope="module")
def wired(test_pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wired]:
    root = tmp_path_factory.mktemp("soap-catalogue")
    settings = Settings(
        state_dir=root / "state",
        service=ServiceSettings(host="127.0.0.1", port=0, policy=POLICY, threads=4),
        catalogue=CatalogueSettings(
            database_url=f"sqlite:///{root / 'cat.db'}",
            tasks=True,
            input_types={"ndvi.red": ["DEM", "MULTISPECTRAL"]},
        ),
    )
    gateway = StorageGateway(Namespace.from_dict(posix_namespace(root)))
    wms = HTCondorWMS(
        instance=f"cat{uuid.uuid4().hex[:8]}", collector="127.0.0.1:1", sandbox_root=root / "sb"
    )
    validator = build_validator(test_pki.ca_dir, test_pki.vomsdir)
    gp: ServiceContext = build_context(settings, validator, wms=wms, gateway=gateway)
    assert isinstance(gp.task_data, CatalogueOutputs)
    assert isinstance(gp.task_data.inner, DatasetInputs)
    catalogue = gp.task_data.catalogue
    alice = _identity(test_pki, validator, "alice-voms")
    home = gateway.home(alice)
    assert home is not None
    raster = write_raster(root / "dem.tif", "utm34").read_bytes()
    gateway.write(alice, f"{home}/dem.tif", [raster])
    ds = catalogue.register(alice, f"{home}/dem.tif", Fields("mine", "dem", "DEM", "NASA"))
    gateway.write(alice, f"{home}/photo.tif", [raster])
    catalogue.register(alice, f"{home}/photo.tif", Fields("mine", "photo", "RASTER/AERIAL"))
    server = make_soap_server(
        gp, validator, TLSConfig(test_pki.host_cert, test_pki.host_key, test_pki.ca_dir)
    ).start()
    ca_file = root / "ca.pem"
    ca_file.write_bytes(test_pki.ca.cert_pem())
    try:
        yield Wired(
            SoapServer(server, gp, test_pki, ca_file, settings.state_dir),
            catalogue,
            gateway,
            alice,
            ds.id,
            raster,
        )
    finally:
        server.stop()
        gp.core.registry.close()


def _spec(red: str) -> dict[str, object]:
    return {
        "tool": "ndvi",
        "inputs": [{"name": "red", "location": red}, {"name": "nir", "content": b"II*\x00nir"}],
        "params": [{"name": "red_band", "value": "1"}],
    }


def test_dataset_input_is_staged_through_register_task(wired: Wired) -> None:
    alice = client(wired.srv)
    for ref in ("dataset:mine/dem", f"dataset:{wired.dataset_id}"):
        (task,) = alice.service.RegisterTask(tasks=[_spec(ref)])
        staged = wired.srv.gp.core.dirs.inputs(task.task_id) / "in_red.tif"
        assert staged.read_bytes() == wired.raster


def test_dataset_the_caller_may_not_read_is_refused_with_a_typed_fault(wired: Wired) -> None:
    bob = client(wired.srv, "bob-voms")
    for ref in ("dataset:mine/dem", f"dataset:{wired.dataset_id}", "dataset:mine/none"):
        with pytest.raises(zeep.exceptions.Fault) as info:
            bob.service.RegisterTask(tasks=[_spec(ref)])
        code, detail = zeep_fault(info.value)
        assert (code, detail["field"]) == ("Client.InvalidRequest", "inputs.red")
        assert ref in detail["message"] and "no dataset" in detail["message"]


def test_dataset_of_a_type_the_port_does_not_accept_is_refused_at_register(wired: Wired) -> None:
    alice = client(wired.srv)
    with pytest.raises(zeep.exceptions.Fault) as info:
        alice.service.RegisterTask(tasks=[_spec("dataset:mine/photo")])
    code, detail = zeep_fault(info.value)
    assert (code, detail["field"]) == ("Client.InvalidRequest", "inputs.red")
    assert "type RASTER/AERIAL" in detail["message"] and "DEM, MULTISPECTRAL" in detail["message"]


def test_completed_task_outputs_are_catalogued_with_provenance(
    wired: Wired, tmp_path: Path
) -> None:
    alice = client(wired.srv)
    (task,) = alice.service.RegisterTask(tasks=[_spec("dataset:mine/dem")])
    row = wired.srv.gp.core.registry.get(task.task_id)
    out = write_raster(tmp_path / "ndvi.tif", "geo")
    # what the tracker does when the job completed
    stored = wired.srv.gp.task_data.store_outputs(
        task_owner(row), [OutputFile("ndvi", "ndvi.tif", 0, "", "", str(out))]
    )
    home = wired.gateway.home(wired.alice)
    assert stored == {"ndvi": f"{home}/tasks/{task.task_id}/ndvi.tif"}
    found = wired.catalogue.search(wired.alice, Query(Eq("dataset", f"{task.task_id}.ndvi")))
    (entry,) = found.items
    assert entry.location == stored["ndvi"] and entry.fields.datagroup == "tasks"
    prov = entry.provenance
    assert prov is not None
    assert (prov.task_id, prov.tool, prov.inputs) == (task.task_id, "ndvi", (wired.dataset_id,))
    assert prov.parameters == {"red_band": "1"}  # the request as given
