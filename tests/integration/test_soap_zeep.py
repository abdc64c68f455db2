"""A full task round trip through the WSDL with zeep, on the real pool, over HTTPS
with alice's VOMS proxy (the portal example client does the calls)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import zeep

from tests.fixtures.soap import REPO, SoapServer


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_zeep_round_trip_on_the_pool(soap_on_pool: SoapServer, tmp_path: Path) -> None:
    portal = _load("portal_client")
    sample = _load("ndvi_sample")
    sample.make(tmp_path)
    client: zeep.Client = portal.connect(
        soap_on_pool.url, str(soap_on_pool.pki.proxies["alice-voms"]), str(soap_on_pool.ca_file)
    )
    info = client.service.GetServiceInfo()
    assert info.wms_reachable and info.pool_slots >= 1
    result = portal.run_ndvi(
        client,
        (tmp_path / "red.tif").read_bytes(),
        (tmp_path / "nir.tif").read_bytes(),
        request_id="zeep-rt-1",
        timeout=300,
    )
    status = result["status"]
    assert status.state == "completed", (status, result["log"].stderr)
    assert status.exit_code == 0 and status.wms_job_id and status.finished
    events = result["log"].events
    assert events[0].kind == "REGISTERED" and events[-1].state == "completed"
    (out,) = [o for o in result["outputs"] if o.port == "output"]
    assert out.inline and out.size == len(out.content)
    assert hashlib.sha256(out.content).hexdigest() == out.sha256
    saved = portal.save_output(out, tmp_path / "ndvi.tif")
    assert sample.check(tmp_path, saved) == 0  # NDVI matches the NumPy reference
    view = soap_on_pool.gp.core.get(status.task_id)
    row = soap_on_pool.gp.core.registry.get(status.task_id)
    assert view.owner_dn == soap_on_pool.pki.users["alice"].dn
    assert row.accounting_group == "group_testvo"
    assert (
        "accounting_group = group_testvo" in view.job_description
        or "group_testvo" in view.job_description
    )
