"""gproc's MyProxy client beside the stock one (myproxy-logon), and the stock Globus /
VOMS tools reading the proxies gproc's client and sign-on return."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gproc.security.chain import Validator
from gproc.security.myproxy import logon, renew
from gproc.services.myproxy_login import sign_on
from gproc.settings import MyProxySettings, ServiceSettings, Settings
from tests.fixtures.myproxy import MyProxyStack
from tests.fixtures.vo import VoStack

TOOLS = ("myproxy-logon", "grid-proxy-info", "voms-proxy-info")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason=f"needs {', '.join(TOOLS)} (Debian myproxy, globus-proxy-utils, voms-clients)",
)
VO = "mpvo"
PASS = "interop-pass-1"


@pytest.fixture(scope="module")
def stored(myproxy: MyProxyStack) -> MyProxyStack:
    myproxy.store("alice", "alice-interop", PASS)
    myproxy.store_renewable("alice", "alice-interop-renew")
    return myproxy


def _tool(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_the_stock_client_and_ours_retrieve_the_same_credential(
    stored: MyProxyStack, pki_validator: Validator, tmp_path: Path
) -> None:
    stock = tmp_path / "stock.pem"
    done = stored.stock_logon("alice-interop", passphrase=PASS, out=stock)
    assert done.returncode == 0, done.stderr
    ours = tmp_path / "ours.pem"
    ours.write_bytes(logon(stored.server(), "alice-interop", PASS, 3600))
    ours.chmod(0o600)
    alice = stored.pki.users["alice"].dn
    assert pki_validator.validate(stock.read_bytes()).subject_grid == alice
    assert pki_validator.validate(ours.read_bytes()).subject_grid == alice
    info = _tool(["grid-proxy-info", "-file", str(ours)], stored.env())
    assert info.returncode == 0, info.stderr
    assert f"identity : {alice}" in info.stdout
    assert "RFC 3820 compliant impersonation proxy" in info.stdout
    assert _tool(["grid-proxy-info", "-file", str(ours), "-exists"], stored.env()).returncode == 0


def test_renewal_interoperates_both_ways(
    stored: MyProxyStack, pki_validator: Validator, tmp_path: Path
) -> None:
    """The stock client renews with our proxy; ours renews with the stock one."""
    pki = stored.pki
    ours = tmp_path / "ours.pem"
    ours.write_bytes(logon(stored.server(), "alice-interop", PASS, 600))
    ours.chmod(0o600)
    renewed = tmp_path / "renewed-by-stock.pem"
    env = {**stored.env(), "X509_USER_CERT": str(pki.host_cert), "X509_USER_KEY": str(pki.host_key)}
    argv = ["myproxy-logon", "-l", "alice-interop-renew", "-n", "-a", str(ours)]
    done = _tool([*argv, "-t", "1", "-o", str(renewed)], env)
    assert done.returncode == 0, done.stderr
    stock_pem = renewed.read_bytes()
    again = renew(
        stored.server(),
        stock_pem,
        "alice-interop-renew",
        1800,
        client_cert=pki.host_cert,
        client_key=pki.host_key,
    )
    assert pki_validator.validate(again).subject_grid == pki.users["alice"].dn


@pytest.fixture(scope="module")
def mpvo(vo_stack: VoStack, stored: MyProxyStack) -> VoStack:
    st, admin, pki = vo_stack.store, vo_stack.admin_actor, vo_stack.pki
    st.create_vo(admin, VO)
    st.create_role(admin, VO, "analyst")
    st.add_member(admin, VO, pki.users["alice"].dn, pki.ca.dn)
    st.grant(admin, VO, pki.users["alice"].dn, f"/{VO}", "analyst")
    return vo_stack


def test_voms_proxy_info_reads_the_sign_on_proxy(
    mpvo: VoStack, stored: MyProxyStack, tmp_path: Path
) -> None:
    pki = mpvo.pki
    settings = Settings(
        state_dir=tmp_path,
        service=ServiceSettings(ca_dir=pki.ca_dir, vomsdir=pki.vomsdir),
        myproxy=MyProxySettings(host="127.0.0.1", port=stored.port, vomses=mpvo.vomses(VO)),
    )
    path = tmp_path / "signon.pem"
    path.write_bytes(sign_on(settings, "alice-interop", PASS, VO, "analyst"))
    path.chmod(0o600)
    env = {**os.environ, **pki.env()}
    info = _tool(["voms-proxy-info", "--all", "-file", str(path)], env)
    assert info.returncode == 0, info.stderr
    assert f"attribute : /{VO}/Role=analyst" in info.stdout
    assert f"VO        : {VO}" in info.stdout
    assert f"identity  : {pki.users['alice'].dn}" in info.stdout
