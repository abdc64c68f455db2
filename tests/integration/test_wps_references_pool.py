"""WPS inputs by reference on the real pool: catalogue datasets (``dataset:``) through
WPS 2.0 and gateway locations (``gateway://`` and the gateway's HTTPS URL) through
WPS 1.0.0, both staged with the caller's rights; NDVI results checked against NumPy;
another user's dataset or area is refused before anything is registered.
Input references are checked (and datasets resolved) with the caller's rights
before the task is registered, as on the SOAP front."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from lxml import etree

from gproc.app import build_tracker
from gproc.catalogue.model import Fields
from gproc.security.pki import TestPKI
from gproc.security.tls import TLSConfig
from gproc.services.catalogue_tasks import build_catalogue
from gproc.services.ogc.api_processes import make_ogc_server
from gproc.services.soap.app import build_context, build_validator
from gproc.settings import (
    CatalogueSettings,
    OgcSettings,
    ServiceSettings,
    Settings,
    TrackerSettings,
)
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.soap import POLICY, _forget_jobs
from tests.integration.test_gateway_tasks import _load
from tests.service.wps_helpers import (
    NS,
    XLINK,
    async_form1,
    execute1,
    execute2,
    input2_ref,
    job_request,
    post,
    report,
    xml,
)

TIMEOUT_S = 300
Data = tuple["Front", Path, str]


class Front:
    """The OGC front over a processing context with the gateway and a catalogue."""

    def __init__(self, url: str, gw: GatewayServer) -> None:
        self.url, self.gw = url, gw

    def session(self, who: str = "alice-voms") -> Any:
        return self.gw.session(who)


@pytest.fixture(scope="module")
def wps_with_data(
    pool: object,
    test_pki: TestPKI,
    gateway_posix: GatewayServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Data]:
    root = tmp_path_factory.mktemp("wps-refs")
    catalogue = CatalogueSettings(database_url=f"sqlite:///{root / 'catalogue.db'}", tasks=True)
    settings = Settings(
        state_dir=root / "state",
        service=ServiceSettings(
            host="127.0.0.1", port=0, policy=POLICY, threads=8, output_url_base=gateway_posix.url
        ),
        tracker=TrackerSettings(interval_s=1.0, reconcile_every=3),
        catalogue=catalogue,
    )
    wms = HTCondorWMS(
        instance=f"wpsref{uuid.uuid4().hex[:8]}",
        event_log=getattr(pool, "event_log", None),
        sandbox_root=root / "sb",
    )
    validator = build_validator(test_pki.ca_dir, test_pki.vomsdir)
    gateway = gateway_posix.parts.gateway
    gp = build_context(settings, validator, wms=wms, gateway=gateway)
    sample = root / "sample"
    _load("ndvi_sample").make(sample)
    alice = validator.validate(
        x509.load_pem_x509_certificates(test_pki.proxies["alice-voms"].read_bytes())
    )
    folder = f"{gateway_posix.home('alice-voms')}/wps-{uuid.uuid4().hex[:8]}"
    gateway.mkdir(alice, folder, parents=True)
    cat = build_catalogue(settings, gateway)
    for band in ("red", "nir"):
        gateway.write(alice, f"{folder}/{band}.tif", [(sample / f"{band}.tif").read_bytes()])
        cat.register(alice, f"{folder}/{band}.tif", Fields("wpsref", band, "MULTISPECTRAL"))
    tls = TLSConfig(test_pki.host_cert, test_pki.host_key, test_pki.ca_dir)
    ogc = OgcSettings(host="127.0.0.1", port=0, sync_wait_s=1.0)  # type: ignore[arg-type]
    server = make_ogc_server(gp, ogc, validator, tls).start()
    tracker = build_tracker(gp.core, settings)
    tracker.start()
    try:
        yield Front(server.url, gateway_posix), sample, folder
    finally:
        server.stop()
        tracker.stop()
        _forget_jobs(wms)
        gp.core.registry.close()


def _status2(front: Front, jid: str) -> str:
    resp = front.session().get(
        front.url + "/wps",
        params={"service": "WPS", "version": "2.0.0", "request": "GetStatus", "jobId": jid},
        timeout=30,
    )
    return str(xml(resp).findtext("wps:Status", namespaces=NS))


def _check(front: Front, sample: Path, href: str, tmp: Path) -> None:
    got = front.session().get(href, timeout=60)
    assert got.status_code == 200, got.text[:300]
    result = tmp / f"{uuid.uuid4().hex[:6]}.tif"
    result.write_bytes(got.content)
    assert _load("ndvi_sample").check(sample, result) == 0  # NDVI matches NumPy


def _poll2(front: Front, jid: str) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while (status := _status2(front, jid)) not in ("Succeeded", "Failed", "Dismissed"):
        assert time.monotonic() < deadline, status
        time.sleep(1.0)
    return status


def _input1(name: str, href: str) -> str:
    return (
        f"<wps:Input><ows:Identifier>{name}</ows:Identifier>"
        f'<wps:Reference xlink:href="{href}"/></wps:Input>'
    )


def test_wps_inputs_by_reference(wps_with_data: Data, tmp_path: Path) -> None:
    front, sample, folder = wps_with_data
    # WPS 2.0: both bands as catalogue datasets, the output by reference
    v2 = execute2(
        input2_ref("red", "dataset:wpsref/red") + input2_ref("nir", "dataset:wpsref/nir"),
        outputs='<wps:Output id="output" transmission="reference"/>',
    )
    jid2 = str(xml(post(front, v2)).findtext("wps:JobID", namespaces=NS))  # type: ignore[arg-type]
    # WPS 1.0.0 at the same time: gateway:// and the gateway's HTTPS URL, stored
    v1 = execute1(
        _input1("red", f"gateway://{folder}/red.tif")
        + _input1("nir", f"{front.gw.url}{folder}/nir.tif"),
        form=async_form1(),
    )
    location = xml(post(front, v1)).get("statusLocation")  # type: ignore[arg-type]
    assert _poll2(front, jid2) == "Succeeded"
    result = xml(post(front, job_request("GetResult", jid2)))  # type: ignore[arg-type]
    ref = result.find("wps:Output[@id='output']/wps:Reference", NS)
    _check(front, sample, ref.get(f"{{{XLINK}}}href"), tmp_path)
    deadline = time.monotonic() + TIMEOUT_S
    while (doc := xml(front.session().get(location, timeout=30))).find(
        "wps1:Status/wps1:ProcessSucceeded", NS
    ) is None:
        assert doc.find("wps1:Status/wps1:ProcessFailed", NS) is None, doc
        assert time.monotonic() < deadline
        time.sleep(1.0)
    href = doc.find("wps1:ProcessOutputs/wps1:Output/wps1:Reference", NS).get("href")
    _check(front, sample, href, tmp_path)


def _jobs_seen_by(front: Front, who: str) -> int:
    listed = front.gw.session(who).get(front.url + "/jobs", timeout=30).json()
    return int(listed["numberMatched"])


@pytest.mark.parametrize(
    ("red", "nir", "words"),
    [
        ("dataset:wpsref/red", "dataset:wpsref/nir", "no dataset 'dataset:wpsref/red'"),
        # alice's private file does not exist for bob (its existence is not told)
        ("gateway://{folder}/red.tif", "gateway://{folder}/nir.tif", "no such file"),
    ],
)
def test_others_data_is_refused_before_registration(
    wps_with_data: Data, red: str, nir: str, words: str
) -> None:
    """bob may not read alice's datasets or area: an ExceptionReport naming the input,
    and no job registered (bob, a VO admin, sees every job of the VO)."""
    front, _, folder = wps_with_data
    before = _jobs_seen_by(front, "bob-voms")
    body = execute2(
        input2_ref("red", red.format(folder=folder)) + input2_ref("nir", nir.format(folder=folder))
    )
    resp = front.gw.session("bob-voms").post(front.url + "/wps", data=body.encode(), timeout=60)
    root = report(resp, 400, "InvalidParameterValue", version=2)
    assert words in etree.tostring(root).decode()
    assert _jobs_seen_by(front, "bob-voms") == before
