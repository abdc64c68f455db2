"""Interop with the real grid tools: Globus grid-proxy-init, VOMS voms-proxy-fake and
voms-proxy-info, and OpenSSL's own `verify -allow_proxy_certs`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from gproc.security import pki
from gproc.security.chain import Validator
from gproc.security.errors import ProxyError, Reason, UntrustedCredential
from gproc.security.identity import Fqan, ProxyType
from gproc.security.pki import TestPKI

TOOLS = ("grid-proxy-init", "voms-proxy-fake", "voms-proxy-info", "openssl")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason=f"needs {', '.join(TOOLS)} (Debian voms-clients, globus-proxy-utils; see bin/setup)",
)


def _run(args: list[str], p: TestPKI, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **p.env(), **env}
    return subprocess.run(
        args,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _grid_proxy_init(p: TestPKI, out: Path, *extra: str) -> bytes:
    res = _run(
        ["grid-proxy-init", "-rfc", "-bits", "2048", "-hours", "2", "-out", str(out), *extra],
        p,
        X509_USER_CERT=str(p.user_cert["alice"]),
        X509_USER_KEY=str(p.user_key["alice"]),
    )
    assert res.returncode == 0, res.stderr + res.stdout
    return out.read_bytes()


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        ((), ProxyType.IMPERSONATION),
        (("-limited",), ProxyType.LIMITED),
        (("-independent",), ProxyType.INDEPENDENT),
    ],
)
def test_grid_proxy_init_proxies_are_accepted(
    test_pki: TestPKI,
    pki_validator: Validator,
    tmp_path: Path,
    flags: tuple[str, ...],
    kind: ProxyType,
) -> None:
    ident = pki_validator.validate(_grid_proxy_init(test_pki, tmp_path / "p.pem", *flags))
    assert ident.subject_grid == test_pki.users["alice"].dn
    assert ident.proxy_type is kind and ident.proxy_depth == 1


def test_grid_proxy_init_path_length_is_enforced(
    test_pki: TestPKI, pki_validator: Validator, tmp_path: Path
) -> None:
    # Globus treats -path-length 0 as unlimited, so 1 is the smallest real limit
    pem = _grid_proxy_init(test_pki, tmp_path / "p.pem", "-path-length", "1")
    first = pki.load_credential(tmp_path / "p.pem")
    pki_validator.validate(pem)
    child = pki.make_proxy(first)
    assert pki_validator.validate(child.chain_pem()).proxy_depth == 2
    with pytest.raises(ProxyError) as info:
        pki_validator.validate(pki.make_proxy(child).chain_pem())
    assert info.value.reason is Reason.PROXY_PATH_LENGTH


def _voms_proxy_fake(
    p: TestPKI,
    out: Path,
    fqans: list[str],
    hostcert: Path,
    hostkey: Path,
    *,
    newformat: bool = True,
) -> subprocess.CompletedProcess[str]:
    args = [
        "voms-proxy-fake",
        "-cert",
        str(p.user_cert["alice"]),
        "-key",
        str(p.user_key["alice"]),
        "-hostcert",
        str(hostcert),
        "-hostkey",
        str(hostkey),
        "-certdir",
        str(p.ca_dir),
        "-voms",
        p.vo,
        "-uri",
        p.voms_uri,
        "-hours",
        "2",
        *(["-newformat"] if newformat else []),
        "-rfc",
        "-out",
        str(out),
    ]
    for f in fqans:
        args += ["-fqan", f]
    return _run(args, p)


@pytest.mark.parametrize(
    "fqans",
    [
        ["/testvo/Role=NULL/Capability=NULL", "/testvo/grid/Role=NULL/Capability=NULL"],
        ["/testvo/grid", "/testvo", "/testvo/Role=admin"],
    ],
)
@pytest.mark.parametrize("newformat", [True, False], ids=["newformat", "oldformat"])
def test_voms_proxy_fake_fqans(
    test_pki: TestPKI, pki_validator: Validator, tmp_path: Path, fqans: list[str], newformat: bool
) -> None:
    """Both AC encodings voms-proxy-fake writes: holder named by the certificate's
    issuer (-newformat) or, by default, by its subject; VOMS accepts both."""
    out = tmp_path / "voms.pem"
    res = _voms_proxy_fake(
        test_pki, out, fqans, test_pki.voms_cert, test_pki.voms_key, newformat=newformat
    )
    assert res.returncode == 0, res.stderr
    ident = pki_validator.validate(out.read_bytes())
    assert ident.rejected_acs == ()
    assert ident.fqans == tuple(Fqan.parse(f) for f in fqans)
    assert ident.vo == "testvo" and ident.acs[0].uri == test_pki.voms_uri


def test_voms_proxy_fake_with_untrusted_server(
    test_pki: TestPKI, pki_validator: Validator, tmp_path: Path
) -> None:
    rogue = pki.make_host_cert(test_pki.ca, "rogue.vm")
    rogue.write(tmp_path / "rc.pem", tmp_path / "rk.pem")
    out = tmp_path / "voms.pem"
    res = _voms_proxy_fake(
        test_pki, out, ["/testvo/Role=admin"], tmp_path / "rc.pem", tmp_path / "rk.pem"
    )
    assert res.returncode == 0, res.stderr
    ident = pki_validator.validate(out.read_bytes())
    assert ident.fqans == ()
    assert [r.reason for r in ident.rejected_acs] == [Reason.AC_UNTRUSTED_SIGNER]


def _openssl_verify(p: TestPKI, proxy: Path, ca_dir: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        [
            "openssl",
            "verify",
            "-allow_proxy_certs",
            "-crl_check_all",
            "-CApath",
            str(ca_dir),
            "-untrusted",
            str(proxy),
            str(proxy),
        ],
        p,
    )


@pytest.mark.parametrize(
    "label", ["alice", "alice-voms", "alice-limited", "alice-independent", "bob-voms"]
)
def test_gproc_proxies_pass_openssl_verify(test_pki: TestPKI, label: str) -> None:
    res = _openssl_verify(test_pki, test_pki.proxies[label], test_pki.ca_dir)
    assert res.returncode == 0 and res.stdout.strip().endswith(": OK"), res.stdout + res.stderr


def test_openssl_and_gproc_agree_on_revocation(test_pki: TestPKI, pki_validator: Validator) -> None:
    res = _openssl_verify(test_pki, test_pki.proxies["mallory"], test_pki.ca_dir)
    assert res.returncode != 0 and "revoked" in (res.stdout + res.stderr)
    with pytest.raises(UntrustedCredential) as info:
        pki_validator.validate(test_pki.proxies["mallory"].read_bytes())
    assert info.value.reason is Reason.REVOKED


def test_openssl_uses_old_hash_links(test_pki: TestPKI, tmp_path: Path) -> None:
    old_only = pki.write_ca_dir(tmp_path / "old", [(test_pki.ca, test_pki.crl)], hashes_="old")
    res = _openssl_verify(test_pki, test_pki.proxies["alice"], old_only)
    # OpenSSL 3 looks up new-style hashes only: an old-hash-only directory is not enough for it
    assert res.returncode != 0
    both = pki.write_ca_dir(tmp_path / "both", [(test_pki.ca, test_pki.crl)], hashes_="both")
    assert _openssl_verify(test_pki, test_pki.proxies["alice"], both).returncode == 0


@pytest.mark.parametrize(
    ("label", "fqans"),
    [
        ("alice-voms", ["/testvo", "/testvo/grid"]),
        ("bob-voms", ["/testvo/Role=VO-Admin", "/testvo"]),
    ],
)
def test_gproc_acs_show_in_voms_proxy_info(test_pki: TestPKI, label: str, fqans: list[str]) -> None:
    res = _run(["voms-proxy-info", "--all", "-file", str(test_pki.proxies[label])], test_pki)
    assert res.returncode == 0, res.stderr
    attrs = [
        ln.split(":", 1)[1].strip() for ln in res.stdout.splitlines() if ln.startswith("attribute")
    ]
    assert attrs == fqans
    assert "VO        : testvo" in res.stdout
    assert f"issuer    : {test_pki.voms.dn}" in res.stdout


@pytest.mark.parametrize("old", [False, True])
def test_subject_hash_matches_openssl(test_pki: TestPKI, old: bool) -> None:
    flag = "-subject_hash_old" if old else "-subject_hash"
    ca_file = next(test_pki.ca_dir.glob("*.0"))
    res = _run(["openssl", "x509", "-noout", flag, "-in", str(ca_file)], test_pki)
    cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
    assert res.stdout.strip() == pki.subject_hash(cert, old=old)
