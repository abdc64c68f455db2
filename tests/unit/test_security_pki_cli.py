"""The `pki` command group builds a usable PKI end to end (checked by the validator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gproc.security.chain import Validator
from gproc.security.errors import Reason, UntrustedCredential
from gproc.security.identity import Fqan, ProxyType
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust
from gproc.services.cli_pki import pki_group


def _ok(*args: str) -> Result:
    res = CliRunner().invoke(pki_group, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_cli_workflow(tmp_path: Path) -> None:
    w = str(tmp_path)
    _ok("ca", "create", f"{w}/ca")
    _ok("user", f"{w}/ca", "carol", "--out-cert", f"{w}/c.pem", "--out-key", f"{w}/k.pem")
    _ok("host", f"{w}/ca", "voms.vm", "--out-cert", f"{w}/h.pem", "--out-key", f"{w}/hk.pem")
    _ok(
        "proxy",
        "--cert",
        f"{w}/c.pem",
        "--key",
        f"{w}/k.pem",
        "--out",
        f"{w}/p.pem",
        "--type",
        "limited",
        "--path-length",
        "2",
        "--voms-cert",
        f"{w}/h.pem",
        "--voms-key",
        f"{w}/hk.pem",
        "--vo",
        "testvo",
        "--fqan",
        "/testvo/grid",
        "--fqan",
        "/testvo/Role=admin",
    )
    _ok("proxy", "--cert", f"{w}/p.pem", "--out", f"{w}/p2.pem", "--type", "limited")
    _ok("cadir", f"{w}/ca", f"{w}/certs")
    _ok("vomsdir", f"{w}/vomsdir", "--vo", "testvo", "--voms-cert", f"{w}/h.pem")
    validator = Validator(
        TrustStore(tmp_path / "certs", check_interval=0), VomsTrust(tmp_path / "vomsdir")
    )
    ident = validator.validate((tmp_path / "p2.pem").read_bytes())
    assert ident.subject_grid == "/C=XX/O=gproc-test/OU=users/CN=carol"
    assert ident.proxy_type is ProxyType.LIMITED and ident.proxy_depth == 2
    assert ident.fqans == (Fqan("testvo", ("grid",)), Fqan("testvo", (), "admin"))

    _ok("ca", "revoke", f"{w}/ca", f"{w}/c.pem")
    _ok("cadir", f"{w}/ca", f"{w}/certs")
    with pytest.raises(UntrustedCredential) as info:
        validator.validate((tmp_path / "p2.pem").read_bytes())
    assert info.value.reason is Reason.REVOKED


def test_cli_test_pki(tmp_path: Path) -> None:
    res = _ok("test-pki", str(tmp_path / "pki"))
    assert f"X509_CERT_DIR={tmp_path / 'pki' / 'certificates'}" in res.output
    validator = Validator(
        TrustStore(tmp_path / "pki" / "certificates"), VomsTrust(tmp_path / "pki" / "vomsdir")
    )
    ident = validator.validate((tmp_path / "pki" / "proxies" / "bob-voms.pem").read_bytes())
    assert str(ident.primary_fqan) == "/testvo/Role=VO-Admin"


def test_cli_refuses_unsafe_vo_name(tmp_path: Path) -> None:
    _ok("ca", "create", f"{tmp_path}/ca")
    res = CliRunner().invoke(
        pki_group,
        ["vomsdir", f"{tmp_path}/v", "--vo", "../evil", "--voms-cert", f"{tmp_path}/ca/cacert.pem"],
    )
    assert res.exit_code != 0 and "unsafe" in res.output
    assert not (tmp_path / "evil").exists()
