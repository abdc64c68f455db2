"""The whole VO story, with real parts only: an administrator builds a VO through the
admin SOAP service, the member gets a VOMS proxy from gproc's attribute authority with
the real ``voms-proxy-init`` and with ``gproc proxy-init``, uses it on the processing
service, is suspended and is refused there although the AC has not expired; a role
change shows in the next AC; a removed member is refused too; the audit log holds it all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from click.testing import CliRunner
from zeep.transports import Transport

from gproc.services.cli import main
from gproc.vo import membership_refusal
from tests.fixtures.gateway import GatewayServer, start_gateway
from tests.fixtures.soap import SoapServer
from tests.fixtures.vo import VoStack
from tests.service.soap_helpers import zeep_fault

VO = "storyvo"
CA = "/C=XX/O=gproc-test/CN=gproc Test CA"
TIF = b"II*\x00fake raster bytes"
pytestmark = pytest.mark.skipif(
    shutil.which("voms-proxy-init") is None,
    reason="voms-clients not installed (bin/setup installs it)",
)


@pytest.fixture
def enforcing(soap_offline: SoapServer, vo_stack: VoStack) -> Iterator[SoapServer]:
    """The processing service with the local VO database checked on every call."""
    soap_offline.gp.vo_store = vo_stack.store
    try:
        yield soap_offline
    finally:
        soap_offline.gp.vo_store = None


def story_namespace(root: Path) -> dict[str, Any]:
    return {
        "backends": {"local": {"type": "posix", "root": str(root / "data"), "create": True}},
        "area": [
            {
                "path": "/public",
                "backend": "local",
                "root": "/public",
                "read": [f"/{VO}/*"],
                "write": [f"/{VO}/Role=admin"],
            }
        ],
    }


def gateway_get(gw: GatewayServer, proxy: Path) -> requests.Response:
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = str(proxy), str(gw.ca_file)
    return s.get(f"{gw.url}/public", timeout=30)


def processing_client(srv: SoapServer, proxy: Path) -> zeep.Client:
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = str(proxy), str(srv.ca_file)
    return zeep.Client(srv.wsdl, transport=Transport(session=s, timeout=30))


def real_voms_proxy_init(
    stack: VoStack, user: str, out: Path, fqan: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **stack.pki.env(),
        "X509_USER_CERT": str(stack.user_cert[user]),
        "X509_USER_KEY": str(stack.user_key[user]),
        "HOME": str(stack.root),
    }
    return subprocess.run(
        [
            "voms-proxy-init",
            "-vomses",
            str(stack.vomses(VO)),
            "-voms",
            f"{VO}:{fqan}",
            "-out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def gproc_proxy_init(stack: VoStack, user: str, out: Path, fqan: str) -> str:
    result = CliRunner().invoke(
        main,
        [
            "proxy-init",
            "--voms",
            f"{VO}:{fqan}",
            "--vomses",
            str(stack.vomses(VO)),
            "--cert",
            str(stack.user_cert[user]),
            "--key",
            str(stack.user_key[user]),
            "--ca-dir",
            str(stack.pki.ca_dir),
            "--vomsdir",
            str(stack.pki.vomsdir),
            "--out",
            str(out),
            "--hours",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    return result.output


def vomsdir_reloaded(c: zeep.Client, timeout_s: float = 10) -> Any:
    """GetServiceInfo once the service has re-read its vomsdir (checked every second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = c.service.GetServiceInfo()
        if info.caller_fqans or time.monotonic() > deadline:
            return info
        time.sleep(0.2)


def refused(call: object, *args: object, **kw: object) -> dict[str, str]:
    with pytest.raises(zeep.exceptions.Fault) as info:
        call(*args, **kw)  # type: ignore[operator]
    code, detail = zeep_fault(info.value)
    assert code == "Client.NotAuthorised", detail
    return detail


def test_vo_story(
    vo_stack: VoStack, enforcing: SoapServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    admin = vo_stack.admin_client("voadmin").service
    carol = vo_stack.users["carol"].dn
    vo_stack.vomses(VO)  # the endpoint; relying parties get vomsdir/storyvo/vm.lsc
    # 1. the administrator builds the VO
    admin.CreateVO(VO, "the story VO")
    admin.CreateGroup(VO, f"/{VO}/eo", None)
    admin.CreateRole(VO, "admin", None)
    admin.AddMember(VO, carol, CA, None)
    assert admin.GrantMembership(VO, carol, f"/{VO}", "admin", None).fqans == [
        f"/{VO}",
        f"/{VO}/Role=admin",
    ]

    # 2. carol's proxies: the real voms-proxy-init and gproc proxy-init
    real = tmp_path / "real.pem"
    res = real_voms_proxy_init(vo_stack, "carol", real, f"/{VO}/Role=admin")
    assert res.returncode == 0, res.stdout + res.stderr
    ours = tmp_path / "ours.pem"
    assert f"attribute : /{VO}/Role=admin/Capability=NULL" in gproc_proxy_init(
        vo_stack, "carol", ours, f"/{VO}/Role=admin"
    )

    # 3. both work on the processing service, with the role as primary FQAN
    for proxy in (real, ours):
        c = processing_client(enforcing, proxy)
        info = vomsdir_reloaded(c)
        assert info.caller_dn == carol
        assert info.caller_fqans == [f"/{VO}/Role=admin", f"/{VO}"]
        task = c.service.RegisterTask(
            tasks=[
                {
                    "tool": "ndvi",
                    "inputs": [{"name": "red", "content": TIF}, {"name": "nir", "content": TIF}],
                }
            ]
        )[0]
        assert task.accounting_group == f"group_{VO}"
        assert c.service.GetTaskStatus(task_ids=[task.task_id])[0].state == "registered"

    # 3b. and on the data gateway, which checks the same VO database
    gateway = start_gateway(
        vo_stack.pki,
        tmp_path / "gw",
        story_namespace(tmp_path / "gw"),
        admit=lambda ident: membership_refusal(
            vo_stack.store, (ac.vo for ac in ident.acs), ident.subject_grid, ident.issuer_grid
        ),
    )
    request.addfinalizer(gateway.server.stop)
    assert gateway_get(gateway, real).status_code == 200

    # 4. a role change shows in the next AC; asking for a role not held is refused
    admin.GrantMembership(VO, carol, f"/{VO}/eo", None, None)
    eo = tmp_path / "eo.pem"
    gproc_proxy_init(vo_stack, "carol", eo, f"/{VO}/eo")
    assert processing_client(enforcing, eo).service.GetServiceInfo().caller_fqans == [
        f"/{VO}/eo",
        f"/{VO}",
    ]
    admin.RevokeMembership(VO, carol, f"/{VO}", "admin", None)
    res = real_voms_proxy_init(vo_stack, "carol", tmp_path / "no.pem", f"/{VO}/Role=admin")
    assert res.returncode != 0 and f"/{VO}/Role=admin" in res.stdout + res.stderr

    # 5. suspended: refused with the unexpired AC, and no new AC
    admin.SuspendMember(VO, carol, "security incident 42", None)
    c = processing_client(enforcing, real)
    detail = refused(c.service.GetServiceInfo)
    assert detail["rule"] == "vo-membership"
    assert "suspended from VO storyvo" in detail["message"]
    assert "security incident 42" in detail["message"]
    refused(
        processing_client(enforcing, ours).service.RegisterTask,
        tasks=[
            {
                "tool": "ndvi",
                "inputs": [{"name": "red", "content": TIF}, {"name": "nir", "content": TIF}],
            }
        ],
    )
    res = real_voms_proxy_init(vo_stack, "carol", tmp_path / "s.pem", f"/{VO}")
    assert res.returncode != 0 and "security incident 42" in res.stdout + res.stderr
    refusal = gateway_get(gateway, real)
    assert refusal.status_code == 403 and "security incident 42" in refusal.json()["message"]

    # 6. restored: accepted again; removed: refused again
    admin.RestoreMember(VO, carol, None)
    assert processing_client(enforcing, real).service.GetServiceInfo().caller_dn == carol
    admin.RemoveMember(VO, carol, None)
    detail = refused(processing_client(enforcing, eo).service.GetServiceInfo)
    assert "no longer" in detail["message"]

    # 7. identities of other VOs and plain proxies are left to the policy
    alice = processing_client(enforcing, enforcing.pki.proxies["alice"])
    assert alice.service.GetServiceInfo().caller_fqans == []

    # 8. the audit log has every change, by the administrator
    log = admin.GetAuditLog(VO, None, None)
    assert [(e.action, e.target) for e in log] == [
        ("create-vo", VO),
        ("create-group", f"/{VO}/eo"),
        ("create-role", "admin"),
        ("add-member", carol),
        ("grant", carol),
        ("grant", carol),
        ("revoke", carol),
        ("suspend-member", carol),
        ("restore-member", carol),
        ("remove-member", carol),
    ]
    assert {e.actor for e in log} == {vo_stack.admin_dn}
