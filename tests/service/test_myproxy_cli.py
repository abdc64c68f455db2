"""``gproc myproxy logon`` and ``gproc myproxy renew`` against the real MyProxy server
and gproc's attribute authority."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gproc.security.chain import Validator
from gproc.security.delegation import DelegationStore, RenewalRequest, sign_request
from gproc.security.myproxy import logon
from gproc.services.cli import main
from gproc.settings import get_settings
from tests.fixtures.myproxy import MyProxyStack
from tests.fixtures.vo import VoStack

VO = "clivo"
PASS = "cli-pass-123"


@pytest.fixture(scope="module")
def clivo(vo_stack: VoStack, myproxy: MyProxyStack) -> VoStack:
    st, admin, pki = vo_stack.store, vo_stack.admin_actor, vo_stack.pki
    st.create_vo(admin, VO)
    st.add_member(admin, VO, pki.users["alice"].dn, pki.ca.dn)
    myproxy.store("alice", "alice-cli", PASS)
    myproxy.store_renewable("alice", "alice-cli-renew")
    return vo_stack


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("GPROC_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _server_args(stack: VoStack, myproxy: MyProxyStack) -> list[str]:
    pki = stack.pki
    return [
        "--host=127.0.0.1",
        f"--port={myproxy.port}",
        f"--ca-dir={pki.ca_dir}",
        f"--vomsdir={pki.vomsdir}",
        f"--vomses={stack.vomses(VO)}",
    ]


def test_logon_writes_a_voms_proxy(
    clivo: VoStack, myproxy: MyProxyStack, env: Path, pki_validator: Validator
) -> None:
    out = env / "proxy.pem"
    args = ["myproxy", "logon", "-l", "alice-cli", "--vo", VO, f"--out={out}", "--stdin"]
    result = CliRunner().invoke(main, [*args, *_server_args(clivo, myproxy)], input=PASS + "\n")
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert [str(f) for f in pki_validator.validate(out.read_bytes()).fqans] == [f"/{VO}"]
    assert PASS not in result.output and "BEGIN" not in result.output


def test_logon_with_a_wrong_passphrase_is_one_error_line(
    clivo: VoStack, myproxy: MyProxyStack, env: Path
) -> None:
    out = env / "proxy.pem"
    args = ["myproxy", "logon", "-l", "alice-cli", "--vo", VO, f"--out={out}", "--stdin"]
    result = CliRunner().invoke(main, [*args, *_server_args(clivo, myproxy)], input="nope-nope\n")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "passphrase" in result.output
    assert "nope-nope" not in result.output and not out.exists()


def test_renew_runs_one_pass_over_the_delegation_store(
    clivo: VoStack, myproxy: MyProxyStack, env: Path, pki_validator: Validator
) -> None:
    pki = clivo.pki
    store = DelegationStore(env / "state" / "delegation", pki_validator)
    user_proxy = logon(myproxy.server(), "alice-cli", PASS, 1800)
    caller = pki_validator.validate(user_proxy)
    chain = sign_request(store.get_request(caller, "cli-job"), user_proxy, timedelta(minutes=2))
    old = store.put_proxy(caller, "cli-job", chain)
    renewal = RenewalRequest("alice-cli-renew", f"127.0.0.1:{myproxy.port}")
    store.ask_renewal(caller, "cli-job", renewal)
    args = ["myproxy", "renew", f"--cert={pki.host_cert}", f"--key={pki.host_key}"]
    result = CliRunner().invoke(main, [*args, *_server_args(clivo, myproxy)])
    assert result.exit_code == 0, result.output
    assert "cli-job" in result.output and "1 of 1 due delegations renewed" in result.output
    assert store.info(caller, "cli-job").not_after > old.not_after
