"""The SOAP service through its WSDL with zeep, on a real HTTPS server with VOMS
proxies. The core is real; its WMS points at a pool that is not there, so tasks
register and stay ``submitting`` (jobs run in tests/integration)."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
import zeep
from lxml import etree

from gproc.security.delegation import sign_request
from gproc.services.soap.faults import ALL_FAULTS
from gproc.services.soap.service import OPERATIONS
from gproc.states import TaskState
from tests.fixtures.soap import SoapServer
from tests.service.soap_helpers import client, zeep_fault

TIF = b"II*\x00fake raster bytes"


def ndvi_spec(**extra: object) -> dict[str, object]:
    return {
        "tool": "ndvi",
        "inputs": [{"name": "red", "content": TIF}, {"name": "nir", "content": TIF}],
        **extra,
    }


def register(c: zeep.Client, *specs: dict[str, object]) -> list[str]:
    return [t.task_id for t in c.service.RegisterTask(tasks=list(specs))]


def fault(call: object, *args: object, **kw: object) -> tuple[str, dict[str, str]]:
    with pytest.raises(zeep.exceptions.Fault) as info:
        call(*args, **kw)  # type: ignore[operator]
    return zeep_fault(info.value)


@pytest.fixture(scope="module")
def alice(soap_offline: SoapServer) -> zeep.Client:
    return client(soap_offline)


@pytest.fixture(scope="module")
def bob(soap_offline: SoapServer) -> zeep.Client:
    return client(soap_offline, "bob-voms")


def test_wsdl_declares_every_operation_and_fault(soap_offline: SoapServer) -> None:
    resp = soap_offline.session().get(soap_offline.wsdl, timeout=30)
    assert resp.status_code == 200
    root = etree.fromstring(resp.content)
    wsdl = "http://schemas.xmlsoap.org/wsdl/"
    ops = {o.get("name") for o in root.iter(f"{{{wsdl}}}operation")}
    assert set(OPERATIONS) <= ops
    declared = {f.get("name") for f in root.iter(f"{{{wsdl}}}fault")}
    assert {f.get_type_name() for f in ALL_FAULTS} <= declared
    assert f'location="{soap_offline.server.url}/"'.encode() in resp.content


def test_tools_and_parameters(alice: zeep.Client) -> None:
    names = [t.name for t in alice.service.ListTools()]
    assert {"ndvi", "canny", "clip"} <= set(names)
    canny = alice.service.DescribeTool("canny")
    params = {p.name: p for p in canny.params}
    assert params["aperture_size"].choices == ["3", "5", "7"]
    assert params["canny1"].type == "float" and params["canny1"].maximum == 10000
    assert canny.gisheo_prototype.startswith("outIMG_1 canny(inIMG_1#")
    code, detail = fault(alice.service.DescribeTool, "nope")
    assert (code, detail["field"]) == ("Client.InvalidRequest", "tool")


def test_register_records_owner_and_accounting_group(
    soap_offline: SoapServer, alice: zeep.Client
) -> None:
    task = alice.service.RegisterTask(tasks=[ndvi_spec()])[0]
    assert task.state == "registered" and task.accounting_group == "group_testvo"
    assert (
        'accounting_group = "group_testvo"' in task.job_description
        or "group_testvo" in task.job_description
    )
    view = soap_offline.gp.core.get(task.task_id)
    assert view.owner_dn == soap_offline.pki.users["alice"].dn and view.owner_vo == "testvo"
    row = soap_offline.gp.core.registry.get(task.task_id)
    assert row.owner_fqans == '["/testvo", "/testvo/grid"]'
    staged = soap_offline.gp.core.dirs.inputs(task.task_id) / "in_red.tif"
    assert staged.read_bytes() == TIF


def test_register_gisheo_notation_and_batch(alice: zeep.Client) -> None:
    gisheo = {
        "processing": "outIMG_1 canny(inIMG_1#canny1#aperture_size#canny2)",
        "argument_list": "<canny2=120>#<aperture_size=5>",
        "inputs": [{"name": "inIMG_1", "content": TIF}],
    }
    tasks = alice.service.RegisterTask(tasks=[gisheo, ndvi_spec()])
    assert [t.tool for t in tasks] == ["canny", "ndvi"]
    assert "--aperture_size=5" in tasks[0].job_description
    assert "--canny2=120.0" in tasks[0].job_description


def test_register_is_idempotent_per_client_request_id(alice: zeep.Client, bob: zeep.Client) -> None:
    first = register(alice, ndvi_spec(client_request_id="portal-7"))
    again = register(alice, ndvi_spec(client_request_id="portal-7"))
    other = register(bob, ndvi_spec(client_request_id="portal-7"))
    assert first == again and other != first


def test_invalid_requests_name_the_field(alice: zeep.Client) -> None:
    bad_param = ndvi_spec(params=[{"name": "red_band", "value": "zero"}])
    code, detail = fault(alice.service.RegisterTask, tasks=[bad_param])
    assert (code, detail["field"]) == ("Client.InvalidRequest", "params.red_band")
    code, detail = fault(
        alice.service.RegisterTask,
        tasks=[{"tool": "ndvi", "inputs": [{"name": "red", "content": TIF}]}],
    )
    assert detail["field"] == "inputs.nir"
    both = {"tool": "ndvi", "inputs": [{"name": "red", "content": TIF, "location": "file:///x"}]}
    assert fault(alice.service.RegisterTask, tasks=[both])[1]["field"] == "inputs.red"


def test_server_files_are_not_inputs_unless_allowed(
    soap_offline: SoapServer, alice: zeep.Client
) -> None:
    def spec(path: Path) -> dict[str, object]:
        loc = path.as_uri()
        return {
            "tool": "ndvi",
            "inputs": [{"name": "red", "location": loc}, {"name": "nir", "location": loc}],
        }

    code, detail = fault(alice.service.RegisterTask, tasks=[spec(Path("/etc/passwd"))])
    assert code == "Client.InvalidRequest" and detail["field"] == "inputs"
    allowed = soap_offline.gp.settings.service.allowed_input_dirs[0] / "b.tif"
    allowed.write_bytes(TIF)
    assert register(alice, spec(allowed))
    sneaky = allowed.parent / ".." / ".." / "etc" / "passwd"
    assert fault(alice.service.RegisterTask, tasks=[spec(sneaky)])[0] == "Client.InvalidRequest"


def test_submit_status_list_and_log(soap_offline: SoapServer, alice: zeep.Client) -> None:
    tid = register(alice, ndvi_spec())[0]
    submitted = alice.service.SubmitTask(task_ids=[tid])
    assert submitted[0].state == "submitting"  # the pool is unreachable: kept, not lost
    status = alice.service.GetTaskStatus(task_ids=[tid])[0]
    assert (status.state, status.attempt, status.wms_job_id) == ("submitting", 1, None)
    page = alice.service.ListTasks(states=["submitting"], tool="ndvi", limit=1000, with_total=True)
    assert tid in [t.task_id for t in page.tasks] and page.total >= 1
    log = alice.service.GetTaskLog(task_id=tid)
    assert [e.kind for e in log.events][:2] == ["REGISTERED", "SUBMITTING"]
    code, _ = fault(alice.service.ListTasks, states=["sleeping"])
    assert code == "Client.InvalidRequest"


def test_unknown_task(alice: zeep.Client) -> None:
    code, detail = fault(alice.service.GetTaskStatus, task_ids=["ab" * 16])
    assert (code, detail["task_id"]) == ("Client.UnknownTask", "ab" * 16)
    assert len(detail["request_id"]) == 16


def test_users_see_only_their_tasks_and_vo_admins_see_the_vo(
    soap_offline: SoapServer, alice: zeep.Client, bob: zeep.Client
) -> None:
    bobs = register(bob, ndvi_spec())[0]
    alices = register(alice, ndvi_spec())[0]
    code, detail = fault(alice.service.GetTaskStatus, task_ids=[bobs])
    assert (code, detail["rule"]) == ("Client.NotAuthorised", "ownership")
    assert fault(alice.service.CancelTask, task_ids=[alices, bobs])[0] == "Client.NotAuthorised"
    assert alice.service.GetTaskStatus(task_ids=[alices])[0].state == "registered"  # untouched
    alice_sees = {t.task_id for t in alice.service.ListTasks(limit=1000).tasks}
    bob_sees = {t.task_id for t in bob.service.ListTasks(limit=1000).tasks}
    assert alices in alice_sees and bobs not in alice_sees
    assert {alices, bobs} <= bob_sees  # bob holds /testvo/Role=VO-Admin
    assert bob.service.GetTaskStatus(task_ids=[alices])[0].task_id == alices


def test_policy_refusals_name_the_rule(soap_offline: SoapServer) -> None:
    plain = client(soap_offline, "alice")  # no VOMS attributes
    code, detail = fault(plain.service.RegisterTask, tasks=[ndvi_spec()])
    assert (code, detail["rule"]) == ("Client.NotAuthorised", "default")
    limited = client(soap_offline, "alice-limited")
    code, detail = fault(limited.service.RegisterTask, tasks=[ndvi_spec()])
    assert (code, detail["rule"]) == ("Client.NotAuthorised", "limited-proxy")


def test_control_operations_and_state_conflicts(
    soap_offline: SoapServer, alice: zeep.Client
) -> None:
    a, b = register(alice, ndvi_spec(), ndvi_spec())
    assert fault(alice.service.ReleaseTask, task_ids=[a])[0] == "Client.StateConflict"
    assert fault(alice.service.RetrieveTaskOutput, task_id=a)[0] == "Client.NotReady"
    cancelled = alice.service.CancelTask(task_ids=[a, b], reason="not needed")
    assert [t.state for t in cancelled] == ["cancelled", "cancelled"]
    assert alice.service.ResubmitTask(task_ids=[a])[0].state == "submitting"
    assert alice.service.PurgeTask(task_ids=[b])[0].state == "purged"
    code, detail = fault(alice.service.HoldTask, task_ids=[b], reason="bad\nreason")
    assert (code, detail["field"]) == ("Client.InvalidRequest", "reason")


def test_wms_unavailable_is_a_server_fault(soap_offline: SoapServer, alice: zeep.Client) -> None:
    tid = register(alice, ndvi_spec())[0]
    alice.service.SubmitTask(task_ids=[tid])
    reg = soap_offline.gp.core.registry  # as if the schedd had answered, then went away
    reg.transition(tid, TaskState.SUBMITTING, TaskState.SUBMITTED, job_id="vm#1.0#1")
    code, _ = fault(alice.service.HoldTask, task_ids=[tid])
    assert code == "Server.WmsUnavailable"
    info = alice.service.GetServiceInfo()
    assert info.wms_reachable is False and info.limits.max_batch == 50


def test_outputs_inline_below_the_cap_and_checksums(
    soap_offline: SoapServer, alice: zeep.Client
) -> None:
    from gproc.staging import checksums

    tid = register(alice, ndvi_spec())[0]
    core = soap_offline.gp.core
    out = core.dirs.outputs(tid)
    out.mkdir(parents=True)
    small, big = out / "out.tif", out / "big.tif"
    small.write_bytes(b"s" * 10)
    big.write_bytes(b"b" * 100)  # above the fixture's 64-byte inline cap
    files = []
    for port, path in (("output", small), ("extra", big)):
        size, adler, sha = checksums(path)
        files.append(
            {
                "port": port,
                "name": path.name,
                "size": size,
                "adler32": adler,
                "sha256": sha,
                "path": str(path),
            }
        )
    import json

    core.registry.transition(
        tid, TaskState.REGISTERED, TaskState.CANCELLED, outputs_json=json.dumps(files)
    )
    result = alice.service.RetrieveTaskOutput(task_id=tid)
    by_port = {o.port: o for o in result.outputs}
    assert by_port["output"].inline and by_port["output"].content == b"s" * 10
    assert by_port["output"].sha256 == files[0]["sha256"]
    assert not by_port["extra"].inline and by_port["extra"].content is None
    assert by_port["extra"].size == 100


def test_delegation_round_trip(soap_offline: SoapServer, alice: zeep.Client) -> None:
    req = alice.service.DelegateProxy(action="get-request", delegation_id="portal-1")
    assert "CERTIFICATE REQUEST" in req.certificate_request
    proxy = soap_offline.pki.proxies["alice-voms"].read_bytes()
    signed = sign_request(req.certificate_request.encode(), proxy).decode()
    done = alice.service.DelegateProxy(action="put-proxy", delegation_id="portal-1", proxy=signed)
    assert done.expires is not None and done.dn == soap_offline.pki.users["alice"].dn
    renew = alice.service.DelegateProxy(action="renew", delegation_id="portal-1")
    assert "CERTIFICATE REQUEST" in renew.certificate_request
    code, _ = fault(alice.service.DelegateProxy, action="renew", delegation_id="nope")
    assert code == "Client.CredentialRefused"
    code, _ = fault(
        alice.service.DelegateProxy,
        action="put-proxy",
        delegation_id="portal-1",
        proxy="-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
    )
    assert code == "Client.CredentialRefused"


def test_a_task_can_carry_the_callers_delegated_proxy(
    soap_offline: SoapServer, alice: zeep.Client, bob: zeep.Client
) -> None:
    req = alice.service.DelegateProxy(action="get-request", delegation_id="jobs")
    proxy = soap_offline.pki.proxies["alice-voms"].read_bytes()
    alice.service.DelegateProxy(
        action="put-proxy",
        delegation_id="jobs",
        proxy=sign_request(req.certificate_request.encode(), proxy).decode(),
    )
    task = alice.service.RegisterTask(tasks=[ndvi_spec(delegation_id="jobs")])[0]
    assert "x509userproxy = " in task.job_description
    stored = soap_offline.gp.delegations.path_for(soap_offline.pki.users["alice"].dn, "jobs")
    assert str(stored) in task.job_description
    # bob cannot use alice's delegation, nor name one that does not exist
    code, detail = fault(bob.service.RegisterTask, tasks=[ndvi_spec(delegation_id="jobs")])
    assert code == "Client.InvalidRequest" and detail.get("field") == "delegation_id"
    code, _ = fault(alice.service.RegisterTask, tasks=[ndvi_spec(delegation_id="none")])
    assert code == "Client.InvalidRequest"


def test_many_clients_at_once(soap_offline: SoapServer) -> None:
    errors: list[BaseException] = []
    done: list[str] = []

    def worker(n: int) -> None:
        try:
            c = client(soap_offline, "alice-voms" if n % 2 else "bob-voms")
            for _ in range(3):
                tid = register(c, ndvi_spec())[0]
                assert c.service.GetTaskStatus(task_ids=[tid])[0].state == "registered"
                done.append(tid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(set(done)) == 48


def test_inline_input_over_the_cap(soap_offline: SoapServer, alice: zeep.Client) -> None:
    soap_offline.gp.core.max_inline = 8
    try:
        code, _ = fault(alice.service.RegisterTask, tasks=[ndvi_spec()])
    finally:
        soap_offline.gp.core.max_inline = 16 << 20
    assert code == "Client.LimitExceeded"
    assert base64  # inline content travels base64-encoded (xs:base64Binary)
