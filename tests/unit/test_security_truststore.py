"""Trust store: CA directory loading, signing policies/namespaces, change detection."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gproc.security import pki
from gproc.security.chain import Validator
from gproc.security.errors import Reason, TrustStoreError, UntrustedCredential
from gproc.security.pki import TestPKI
from gproc.security.truststore import TrustStore, parse_namespaces, parse_signing_policy

CA = "/C=XX/O=gproc-test/CN=gproc Test CA"
SIGNING_POLICY = f"""# EACL
access_id_CA      X509         '{CA}'
pos_rights        globus        CA:sign
cond_subjects     globus       '"/C=XX/O=gproc-test/*" "/DC=org/DC=test/*"'
"""
NAMESPACES = f"""TO Issuer "{CA}" \\
  PERMIT Subject "/C=XX/O=gproc-test/.*"
TO Issuer "{CA}" \\
  DENY Subject "/C=XX/O=gproc-test/OU=banned/.*"
"""


def test_parse_signing_policy() -> None:
    rules = next(iter(parse_signing_policy(SIGNING_POLICY).values()))
    assert [r.permit for r in rules] == [True, True]
    assert rules[0].pattern.match("/C=XX/O=gproc-test/OU=users/CN=alice")
    assert rules[1].pattern.match("/DC=org/DC=test/CN=x")
    assert not any(r.pattern.match("/C=XX/O=other/CN=x") for r in rules)


def test_parse_namespaces_with_deny() -> None:
    rules = next(iter(parse_namespaces(NAMESPACES, None).values()))
    assert [r.permit for r in rules] == [True, False]


def test_namespaces_file_overrides_signing_policy(test_pki: TestPKI, tmp_path: Path) -> None:
    ca_dir = shutil.copytree(test_pki.ca_dir, tmp_path / "certs", symlinks=True)
    (ca_dir / f"{pki.subject_hash(test_pki.ca.cert)}.namespaces").write_text(NAMESPACES)
    validator = Validator(TrustStore(ca_dir))
    banned = pki.issue_cert(
        test_pki.ca, pki.name(("C", "XX"), ("O", "gproc-test"), ("OU", "banned"), ("CN", "x"))
    )
    with pytest.raises(UntrustedCredential) as info:
        validator.validate(banned.chain_pem())
    assert info.value.reason is Reason.NAMESPACE_VIOLATION
    assert validator.validate(test_pki.users["alice"].chain_pem()).subject_grid


def test_reload_on_change_only(test_pki: TestPKI, tmp_path: Path) -> None:
    ca_dir = shutil.copytree(test_pki.ca_dir, tmp_path / "certs", symlinks=True)
    store = TrustStore(ca_dir, check_interval=0)
    gen = store.generation
    assert store.generation == gen  # nothing changed: no reload
    other = pki.make_ca("Second CA")
    pki.write_ca_dir(ca_dir, [(other, pki.make_crl(other))])
    assert store.generation == gen + 1
    assert len(store.snapshot().cas) == 2


def test_rate_limited_change_check(test_pki: TestPKI, tmp_path: Path) -> None:
    ca_dir = shutil.copytree(test_pki.ca_dir, tmp_path / "certs", symlinks=True)
    store = TrustStore(ca_dir, check_interval=3600)
    gen = store.generation
    for f in ca_dir.iterdir():
        if f.name.endswith(".r0") and not f.is_symlink():
            f.unlink()
    assert store.generation == gen  # not re-checked yet
    assert store.refresh() and store.snapshot().crls == ()


def test_bad_files_are_skipped_and_reported(test_pki: TestPKI, tmp_path: Path) -> None:
    ca_dir = shutil.copytree(test_pki.ca_dir, tmp_path / "certs", symlinks=True)
    (ca_dir / "deadbeef.0").write_text("garbage")
    store = TrustStore(ca_dir)
    assert len(store.snapshot().cas) == 1
    assert any("deadbeef.0" in p for p in store.problems)


def test_x509_cert_dir_convention(test_pki: TestPKI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X509_CERT_DIR", str(test_pki.ca_dir))
    assert TrustStore().path == test_pki.ca_dir


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrustStoreError, match="unreadable"):
        TrustStore(tmp_path / "nope")


def test_unreadable_policy_does_not_hide_cas(test_pki: TestPKI, tmp_path: Path) -> None:
    ca_dir = shutil.copytree(test_pki.ca_dir, tmp_path / "certs", symlinks=True)
    (ca_dir / "0badc0de.signing_policy").write_text("access_id_CA X509 'not-a-dn'\n")
    store = TrustStore(ca_dir)
    assert len(store.snapshot().cas) == 1 and store.problems
    assert os.path.exists(ca_dir / "0badc0de.signing_policy")
