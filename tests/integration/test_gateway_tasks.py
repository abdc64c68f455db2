"""Task data through the gateway on the real pool: inputs named by gateway path are
staged with the owner's rights, outputs land in the owner's private area, and a
second task chains on the first one's output location (no data through the client).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import zeep

from gproc.app import build_tracker
from gproc.security.pki import TestPKI
from gproc.security.tls import TLSConfig
from gproc.services.soap.app import build_context, build_validator, make_soap_server
from gproc.settings import ServiceSettings, Settings, TrackerSettings
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.soap import POLICY, REPO, _forget_jobs

FINAL = {"completed", "failed", "cancelled"}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def soap_with_gateway(
    pool: object,
    test_pki: TestPKI,
    gateway_posix: GatewayServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """The SOAP service on the pool, sharing the gateway's namespace, handing out the
    gateway's HTTPS URLs as output locations."""
    root = tmp_path_factory.mktemp("soap-gw")
    settings = Settings(
        state_dir=root / "state",
        service=ServiceSettings(
            host="127.0.0.1", port=0, policy=POLICY, threads=8, output_url_base=gateway_posix.url
        ),
        tracker=TrackerSettings(interval_s=1.0, reconcile_every=3),
    )
    wms = HTCondorWMS(
        instance=f"gw{uuid.uuid4().hex[:8]}",
        event_log=getattr(pool, "event_log", None),
        sandbox_root=root / "sb",
    )
    validator = build_validator(test_pki.ca_dir, test_pki.vomsdir)
    gp = build_context(settings, validator, wms=wms, gateway=gateway_posix.parts.gateway)
    server = make_soap_server(
        gp, validator, TLSConfig(test_pki.host_cert, test_pki.host_key, test_pki.ca_dir)
    ).start()
    tracker = build_tracker(gp.core, settings)
    tracker.start()
    try:
        yield server, gp
    finally:
        server.stop()
        tracker.stop()
        _forget_jobs(wms)
        gp.core.registry.close()


def _client(gw: GatewayServer, url: str, who: str) -> zeep.Client:
    portal = _load("portal_client")
    return portal.connect(url, str(gw.proxy(who)), str(gw.ca_file))


def _run(client: zeep.Client, spec: dict[str, Any], timeout: float = 300) -> Any:
    task = client.service.RegisterTask(tasks=[spec])[0]
    client.service.SubmitTask(task_ids=[task.task_id])
    deadline = time.monotonic() + timeout
    while True:
        status = client.service.GetTaskStatus(task_ids=[task.task_id])[0]
        if status.state in FINAL:
            return status
        assert time.monotonic() < deadline, f"task still {status.state}"
        time.sleep(1.5)


def test_inputs_and_outputs_flow_through_the_gateway(
    soap_with_gateway: Any, gateway_posix: GatewayServer, tmp_path: Path
) -> None:
    server, gp = soap_with_gateway
    gw = gateway_posix
    sample = _load("ndvi_sample")
    sample.make(tmp_path)
    home = gw.home("alice-voms")
    http = gw.session("alice-voms")
    folder = f"{home}/in-{uuid.uuid4().hex[:8]}"
    assert http.request("MKCOL", gw.url + folder).status_code == 201
    for band in ("red", "nir"):
        r = http.put(f"{gw.url}{folder}/{band}.tif", data=(tmp_path / f"{band}.tif").read_bytes())
        assert r.status_code == 201, r.text
    client = _client(gw, server.url + "/", "alice-voms")

    # 1. inputs by gateway path (both spellings), outputs to alice's area
    status = _run(
        client,
        {
            "tool": "ndvi",
            "inputs": [
                {"name": "red", "location": f"gateway://{folder}/red.tif"},
                {"name": "nir", "location": f"{gw.url}{folder}/nir.tif"},
            ],
        },
    )
    assert status.state == "completed", client.service.GetTaskLog(task_id=status.task_id)
    (out,) = client.service.RetrieveTaskOutput(task_id=status.task_id).outputs
    stored = f"{home}/tasks/{status.task_id}/{out.name}"
    assert out.location == gw.url + stored
    fetched = http.get(out.location)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == out.sha256
    (tmp_path / "ndvi.tif").write_bytes(fetched.content)
    assert sample.check(tmp_path, tmp_path / "ndvi.tif") == 0  # NDVI matches NumPy

    # 2. a second task chains on the first one's output location
    status2 = _run(
        client,
        {
            "tool": "threshold",
            "inputs": [{"name": "image", "location": out.location}],
            "params": [{"name": "method", "value": "otsu"}],
        },
    )
    assert status2.state == "completed", client.service.GetTaskLog(task_id=status2.task_id)
    (out2,) = client.service.RetrieveTaskOutput(task_id=status2.task_id).outputs
    assert out2.location == f"{gw.url}{home}/tasks/{status2.task_id}/{out2.name}"
    got = http.get(out2.location)
    assert hashlib.sha256(got.content).hexdigest() == out2.sha256
    listing = http.get(f"{gw.url}{home}/tasks").json()["entries"]
    assert {status.task_id, status2.task_id} <= {e["name"] for e in listing}


def test_inputs_are_read_with_the_owners_rights(
    soap_with_gateway: Any, gateway_posix: GatewayServer
) -> None:
    server, _gp = soap_with_gateway
    gw = gateway_posix
    home = gw.home("alice-voms")
    gw.session("alice-voms").put(f"{gw.url}{home}/private-input.tif", data=b"not for bob")
    bob = _client(gw, server.url + "/", "bob-voms")
    for ref in (
        f"gateway://{home}/private-input.tif",
        f"{gw.url}{home}/private-input.tif",
        "gateway:///groups/grid/../../etc/passwd",
        "gateway:///groups/grid/%2e%2e/x",
        "gateway://evil.example/public/x",
    ):
        with pytest.raises(zeep.exceptions.Fault) as err:
            bob.service.RegisterTask(
                tasks=[{"tool": "canny", "inputs": [{"name": "image", "location": ref}]}]
            )
        assert err.value.code.endswith("InvalidRequest"), (ref, err.value.message)
        assert "not for bob" not in err.value.message
