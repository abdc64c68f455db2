"""The attribute authority against the real VOMS clients (Debian voms-clients 2.1).

``voms-proxy-init`` contacts gproc's VOMS endpoint through a vomses file, verifies
the AC with its LSC file and writes a proxy; ``voms-proxy-info --all`` shows the
FQANs; the project's validator accepts the proxy. Refusals (role not held,
suspended member, untrusted signer) fail the real client with the server's reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from gproc.security.identity import Fqan
from gproc.services.cli import main
from tests.fixtures.vo import MAX_AC_LIFETIME_S, VoStack

VO = "testvo"
pytestmark = pytest.mark.skipif(
    shutil.which("voms-proxy-init") is None,
    reason="voms-clients not installed (bin/setup installs it)",
)


@pytest.fixture(scope="module")
def testvo(vo_stack: VoStack) -> VoStack:
    """testvo with carol (role admin in /testvo) and dave (suspended)."""
    st, admin, ca = vo_stack.store, vo_stack.admin_actor, vo_stack.pki.ca.dn
    if not st.manages(VO):
        st.create_vo(admin, VO)
    if "/testvo/grid" not in st.list_groups(admin, VO):
        st.create_group(admin, VO, "/testvo/grid")
    if "admin" not in st.list_roles(admin, VO):
        st.create_role(admin, VO, "admin")
    for user in ("carol", "dave"):
        if st.lookup(VO, vo_stack.users[user].dn, ca) is None:
            st.add_member(admin, VO, vo_stack.users[user].dn, ca)
    carol = st.get_member(admin, VO, vo_stack.users["carol"].dn)
    if not carol.holds("/testvo", "admin"):
        st.grant(admin, VO, carol.dn, "/testvo", "admin")
    dave = st.get_member(admin, VO, vo_stack.users["dave"].dn)
    if not dave.suspended:
        st.suspend_member(admin, VO, dave.dn, "compromised key")
    return vo_stack


def _env(stack: VoStack, user: str, vomsdir: Path | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "X509_CERT_DIR": str(stack.pki.ca_dir),
        "X509_VOMS_DIR": str(vomsdir or stack.pki.vomsdir),
        "X509_USER_CERT": str(stack.user_cert[user]),
        "X509_USER_KEY": str(stack.user_key[user]),
        "HOME": str(stack.root),
    }


def voms_proxy_init(
    stack: VoStack, user: str, out: Path, *args: str, vomsdir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = ["voms-proxy-init", "-vomses", str(stack.vomses(VO)), "-out", str(out), *args]
    return subprocess.run(
        cmd, env=_env(stack, user, vomsdir), capture_output=True, text=True, timeout=60, check=False
    )


def voms_proxy_info(stack: VoStack, proxy: Path) -> str:
    res = subprocess.run(
        ["voms-proxy-info", "--all", "-file", str(proxy)],
        env=_env(stack, "carol"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def attributes(info: str) -> list[str]:
    return [ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("attribute")]


def test_voms_proxy_init_gets_the_requested_role_first(testvo: VoStack, tmp_path: Path) -> None:
    proxy = tmp_path / "carol.pem"
    res = voms_proxy_init(testvo, "carol", proxy, "-voms", "testvo:/testvo/Role=admin")
    assert res.returncode == 0, res.stdout + res.stderr
    info = voms_proxy_info(testvo, proxy)
    assert attributes(info) == [
        "/testvo/Role=admin/Capability=NULL",
        "/testvo/Role=NULL/Capability=NULL",
    ]
    assert f"issuer    : {testvo.pki.voms.dn}" in info
    ident = testvo.validator.validate(proxy.read_bytes())
    assert not ident.rejected_acs
    assert ident.primary_fqan == Fqan("testvo", (), "admin")


def test_lifetime_is_capped_by_configuration(testvo: VoStack, tmp_path: Path) -> None:
    proxy = tmp_path / "long.pem"
    res = voms_proxy_init(testvo, "carol", proxy, "-voms", VO, "-vomslife", "48:00")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"shortened to {MAX_AC_LIFETIME_S} seconds" in res.stdout + res.stderr
    ident = testvo.validator.validate(proxy.read_bytes())
    ac = ident.acs[0]
    assert (ac.not_after - ac.not_before).total_seconds() <= MAX_AC_LIFETIME_S + 300


def test_role_not_held_is_refused_naming_it(testvo: VoStack, tmp_path: Path) -> None:
    res = voms_proxy_init(testvo, "carol", tmp_path / "x.pem", "-voms", "testvo:/testvo/grid")
    assert res.returncode != 0
    assert "not granted in VO testvo: /testvo/grid" in res.stdout + res.stderr
    assert not (tmp_path / "x.pem").exists()


def test_suspended_member_gets_no_ac(testvo: VoStack, tmp_path: Path) -> None:
    res = voms_proxy_init(testvo, "dave", tmp_path / "d.pem", "-voms", VO)
    assert res.returncode != 0
    assert "suspended from VO testvo: compromised key" in res.stdout + res.stderr


def test_client_checks_the_ac_against_its_lsc_file(testvo: VoStack, tmp_path: Path) -> None:
    """With an LSC naming another signer the real client rejects our AC."""
    vomsdir = tmp_path / "vomsdir"
    shutil.copytree(testvo.pki.vomsdir, vomsdir)
    (vomsdir / VO / "vm.lsc").write_text(
        f"/C=XX/O=gproc-test/OU=hosts/CN=other\n{testvo.pki.ca.dn}\n"
    )
    res = voms_proxy_init(testvo, "carol", tmp_path / "c.pem", "-voms", VO, vomsdir=vomsdir)
    assert res.returncode != 0, res.stdout


def test_gproc_proxy_init(testvo: VoStack, tmp_path: Path) -> None:
    out = tmp_path / "gproc-proxy.pem"
    result = CliRunner().invoke(
        main,
        [
            "proxy-init",
            "--voms",
            "testvo:/testvo/Role=admin",
            "--vomses",
            str(testvo.vomses(VO)),
            "--cert",
            str(testvo.user_cert["carol"]),
            "--key",
            str(testvo.user_key["carol"]),
            "--ca-dir",
            str(testvo.pki.ca_dir),
            "--vomsdir",
            str(testvo.pki.vomsdir),
            "--out",
            str(out),
            "--hours",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert attributes(voms_proxy_info(testvo, out)) == [
        "/testvo/Role=admin/Capability=NULL",
        "/testvo/Role=NULL/Capability=NULL",
    ]


def test_gproc_proxy_init_reports_refusals(testvo: VoStack, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "proxy-init",
            "--voms",
            VO,
            "--vomses",
            str(testvo.vomses(VO)),
            "--cert",
            str(testvo.user_cert["dave"]),
            "--key",
            str(testvo.user_key["dave"]),
            "--ca-dir",
            str(testvo.pki.ca_dir),
            "--vomsdir",
            str(testvo.pki.vomsdir),
            "--out",
            str(tmp_path / "p.pem"),
        ],
    )
    assert result.exit_code != 0
    assert "SuspendedUser" in result.output


def test_legacy_protocol_issues_an_ac(testvo: VoStack) -> None:
    """The XML protocol voms-proxy-init falls back to, spoken by hand."""
    ctx = ssl.create_default_context(capath=str(testvo.pki.ca_dir))
    ctx.load_cert_chain(testvo.user_cert["carol"], testvo.user_key["carol"])
    port = testvo.voms(VO).port
    with (
        socket.create_connection(("localhost", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(
            b'0<?xml version="1.0" encoding="US-ASCII"?><voms><command>B/testvo:admin'
            b"</command><base64>1</base64><version>4</version><lifetime>3600</lifetime>"
            b"</voms>"
        )
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b'<?xml version="1.0" encoding="US-ASCII"?><vomsans>')
    assert b"<ac>" in answer and b"<error>" not in answer


def _gproc_proxy_init(
    stack: VoStack, vomses: Path, out: Path, *extra: str, user: str = "carol"
) -> Result:
    return CliRunner().invoke(
        main,
        [
            "proxy-init",
            "--voms",
            VO,
            "--vomses",
            str(vomses),
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
            *extra,
        ],
    )


def _vomses(stack: VoStack, path: Path, host: str, dn: str, port: int | None = None) -> Path:
    """A standard vomses line: "alias" "host" "port" "server DN" "vo" "version"."""
    path.write_text(f'"{VO}" "{host}" "{port or stack.voms(VO).port}" "{dn}" "{VO}" "24"\n')
    return path


def _one_line_error(result: Result) -> str:
    """The command failed with a single `Error: ...` line, not a traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_gproc_proxy_init_with_a_vomses_line_naming_an_address(
    testvo: VoStack, tmp_path: Path
) -> None:
    """The VOMS server's certificate names vm/localhost only: as VOMS clients do, the
    server is identified by the DN of the vomses line, not by the host name."""
    vomses = _vomses(testvo, tmp_path / "vomses", "127.0.0.1", testvo.pki.voms.dn)
    out = tmp_path / "p.pem"
    result = _gproc_proxy_init(testvo, vomses, out)
    assert result.exit_code == 0, result.output
    assert "attribute : /testvo/Role=NULL/Capability=NULL" in result.output
    assert testvo.validator.validate(out.read_bytes()).vo == VO


def test_gproc_proxy_init_checks_the_server_dn(testvo: VoStack, tmp_path: Path) -> None:
    wrong = "/C=XX/O=gproc-test/OU=hosts/CN=impostor"
    vomses = _vomses(testvo, tmp_path / "vomses", "localhost", wrong)
    out = tmp_path / "p.pem"
    line = _one_line_error(_gproc_proxy_init(testvo, vomses, out))
    assert wrong in line and testvo.pki.voms.dn in line
    assert not out.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("case", ["nobody listens", "bad vomses line", "unreadable key"])
def test_gproc_proxy_init_failures_are_one_line(testvo: VoStack, tmp_path: Path, case: str) -> None:
    vomses = _vomses(testvo, tmp_path / "vomses", "127.0.0.1", testvo.pki.voms.dn)
    extra: list[str] = []
    if case == "nobody listens":
        vomses = _vomses(testvo, tmp_path / "vomses", "127.0.0.1", testvo.pki.voms.dn, _free_port())
    elif case == "bad vomses line":
        vomses.write_text(f'"{VO}" "localhost" "port" "dn"\n')
    else:
        extra = ["--key", str(tmp_path / "missing.pem")]
    line = _one_line_error(_gproc_proxy_init(testvo, vomses, tmp_path / "p.pem", *extra))
    assert {"nobody listens": "127.0.0.1", "bad vomses line": "vomses", "unreadable key": "key"}[
        case
    ] in line


def test_gproc_proxy_init_lifetime_counts_from_now(testvo: VoStack, tmp_path: Path) -> None:
    """A 3-minute proxy is valid for 3 minutes, and its AC does not outlive it."""
    vomses = _vomses(testvo, tmp_path / "vomses", "localhost", testvo.pki.voms.dn)
    out = tmp_path / "p.pem"
    before = datetime.now(UTC).replace(microsecond=0)
    result = _gproc_proxy_init(testvo, vomses, out, "--hours", "0.05")
    assert result.exit_code == 0, result.output
    proxy = x509.load_pem_x509_certificates(out.read_bytes())[0]
    assert before + timedelta(minutes=3) <= proxy.not_valid_after_utc
    assert proxy.not_valid_after_utc <= datetime.now(UTC) + timedelta(minutes=3)
    ident = testvo.validator.validate(out.read_bytes())
    assert ident.acs[0].not_after <= proxy.not_valid_after_utc + timedelta(seconds=5)
