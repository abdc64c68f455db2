"""GridSite-style delegation with the real test PKI and the real chain validator."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gproc.security.chain import Validator
from gproc.security.delegation import (
    DelegationError,
    DelegationReason,
    DelegationStore,
    sign_request,
)
from gproc.security.identity import Identity, ProxyType
from gproc.security.pki import TestPKI, make_ca, make_proxy, make_user_cert
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust


@pytest.fixture(scope="module")
def validator(test_pki: TestPKI) -> Validator:
    return Validator(TrustStore(test_pki.ca_dir), VomsTrust(test_pki.vomsdir))


@pytest.fixture
def store(tmp_path: Path, validator: Validator) -> DelegationStore:
    return DelegationStore(tmp_path / "delegations", validator)


def certs_of(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def who(test_pki: TestPKI, validator: Validator, label: str) -> Identity:
    """The caller identity as the TLS layer would establish it."""
    return validator.validate(certs_of(test_pki.proxies[label].read_bytes()))


def delegate(
    store: DelegationStore, caller: Identity, did: str, signer: Path, **kw: object
) -> Path:
    csr = store.get_request(caller, did)
    chain = sign_request(csr, signer.read_bytes(), **kw)  # type: ignore[arg-type]
    return store.put_proxy(caller, did, chain).path


def expect(reason: DelegationReason) -> pytest.RaisesContext[DelegationError]:
    return pytest.raises(DelegationError, match=reason.value)


def test_round_trip_keeps_identity_and_vomsattributes(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    csr = store.get_request(alice, "job-1")
    assert b"PRIVATE KEY" not in csr
    chain = sign_request(csr, test_pki.proxies["alice-voms"].read_bytes(), timedelta(hours=2))
    assert b"PRIVATE KEY" not in chain
    info = store.put_proxy(alice, "job-1", chain)
    path = store.path_for(alice, "job-1")
    assert path == info.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    data = path.read_bytes()
    delegated = validator.validate(certs_of(data))
    assert delegated.subject_grid == alice.subject_grid
    assert delegated.proxy_depth == 2
    assert [str(f) for f in delegated.fqans] == ["/testvo", "/testvo/grid"]
    key = serialization.load_pem_private_key(data, password=None)
    leaf = certs_of(data)[0]
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    assert leaf.not_valid_after_utc <= datetime.now(UTC) + timedelta(hours=2, seconds=5)
    assert store.path_for(test_pki.users["alice"].dn, "job-1") == path


def test_stored_proxy_works_with_grid_tools(
    store: DelegationStore, test_pki: TestPKI, validator: Validator, tmp_path: Path
) -> None:
    """The file is a usable grid proxy for the real tools, not only for our validator."""
    alice = who(test_pki, validator, "alice-voms")
    path = delegate(store, alice, "ossl", test_pki.proxies["alice-voms"])
    certs = certs_of(path.read_bytes())
    leaf, rest = tmp_path / "leaf.pem", tmp_path / "rest.pem"
    leaf.write_bytes(certs[0].public_bytes(serialization.Encoding.PEM))
    rest.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[1:]))
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-CApath",
            str(test_pki.ca_dir),
            "-allow_proxy_certs",
            "-untrusted",
            str(rest),
            str(leaf),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("OK")
    env = {**os.environ, **test_pki.env()}
    info = subprocess.run(
        ["grid-proxy-info", "-file", str(path)], capture_output=True, text=True, timeout=30, env=env
    )
    assert info.returncode == 0, info.stderr
    assert re.search(rf"^identity\s*: {re.escape(alice.subject_grid)}$", info.stdout, re.M)
    assert "impersonation proxy" in info.stdout
    voms = subprocess.run(
        ["voms-proxy-info", "--all", "-file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert re.findall(r"^attribute\s*: (\S+)$", voms.stdout, re.M) == ["/testvo", "/testvo/grid"]


def test_renewal_replaces_in_place(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    path = delegate(store, alice, "renew-me", test_pki.proxies["alice-voms"])
    first, first_inode = path.read_bytes(), path.stat().st_ino
    csr = store.get_request(alice, "renew-me")  # renewal request
    assert path.read_bytes() == first  # old proxy stays usable until the new one arrives
    signed = sign_request(csr, test_pki.proxies["alice-voms"].read_bytes())
    store.put_proxy(alice, "renew-me", signed)
    assert store.path_for(alice, "renew-me") == path
    assert path.read_bytes() != first
    assert path.stat().st_ino != first_inode  # atomic rename, never rewritten in place
    assert certs_of(path.read_bytes())[0].serial_number != certs_of(first)[0].serial_number
    assert sorted(p.suffix for p in store.root.iterdir()) == [".json", ".pem"]


def test_proxy_of_another_user_is_refused(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    csr = store.get_request(alice, "d")
    bobs = sign_request(csr, test_pki.proxies["bob-voms"].read_bytes())
    with expect(DelegationReason.DN_MISMATCH):
        store.put_proxy(alice, "d", bobs)


def test_key_mismatch_is_refused(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    csr_a = store.get_request(alice, "a")
    store.get_request(alice, "b")
    chain_a = sign_request(csr_a, test_pki.proxies["alice-voms"].read_bytes())
    with expect(DelegationReason.KEY_MISMATCH):
        store.put_proxy(alice, "b", chain_a)
    assert store.put_proxy(alice, "a", chain_a).delegation_id == "a"


def test_expired_proxy_is_refused(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    csr = store.get_request(alice, "old")
    start = datetime.now(UTC) - timedelta(hours=3)
    signer = make_proxy(test_pki.users["alice"], not_before=start - timedelta(hours=1))
    chain = sign_request(csr, signer.proxy_pem(), timedelta(hours=1), start=start)
    assert certs_of(chain)[0].not_valid_after_utc < datetime.now(UTC)
    with expect(DelegationReason.EXPIRED):
        store.put_proxy(alice, "old", chain)


def test_unknown_and_bad_ids(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    chain = sign_request(store.get_request(alice, "x"), test_pki.proxies["alice-voms"].read_bytes())
    with expect(DelegationReason.UNKNOWN_ID):
        store.put_proxy(alice, "never-requested", chain)
    with expect(DelegationReason.UNKNOWN_ID):
        store.path_for(alice, "x")  # requested but never completed
    for bad in ("../x", "", "a/b", "x" * 200, "-x"):
        with expect(DelegationReason.BAD_ID):
            store.get_request(alice, bad)


def test_untrusted_signer_is_refused(
    store: DelegationStore, test_pki: TestPKI, validator: Validator, tmp_path: Path
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    rogue = make_proxy(make_user_cert(make_ca("Rogue CA", "rogue"), "alice"))
    chain = sign_request(store.get_request(alice, "r"), rogue.proxy_pem())
    with expect(DelegationReason.INVALID):
        store.put_proxy(alice, "r", chain)


def test_private_key_on_the_wire_is_refused(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    store.get_request(alice, "k")
    with expect(DelegationReason.MALFORMED):
        store.put_proxy(alice, "k", test_pki.proxies["alice-voms"].read_bytes())


def test_stale_request_is_refused(tmp_path: Path, test_pki: TestPKI, validator: Validator) -> None:
    store = DelegationStore(tmp_path / "d", validator, request_ttl=timedelta(seconds=-1))
    alice = who(test_pki, validator, "alice-voms")
    chain = sign_request(store.get_request(alice, "s"), test_pki.proxies["alice-voms"].read_bytes())
    with expect(DelegationReason.REQUEST_EXPIRED):
        store.put_proxy(alice, "s", chain)


def test_limited_stays_limited(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-limited")
    path = delegate(store, alice, "lim", test_pki.proxies["alice-limited"])
    assert validator.validate(certs_of(path.read_bytes())).proxy_type is ProxyType.LIMITED


def test_sign_with_end_entity_credential(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice")
    user = test_pki.users["alice"]
    csr = store.get_request(alice, "eec")
    chain = sign_request(csr, user.cert_pem() + user.key_pem())
    path = store.put_proxy(alice, "eec", chain).path
    delegated = validator.validate(certs_of(path.read_bytes()))
    assert (delegated.proxy_depth, delegated.proxy_type) == (1, ProxyType.IMPERSONATION)


def test_same_id_for_two_users_is_two_delegations(
    store: DelegationStore, test_pki: TestPKI, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    bob = who(test_pki, validator, "bob-voms")
    pa = delegate(store, alice, "same", test_pki.proxies["alice-voms"])
    pb = delegate(store, bob, "same", test_pki.proxies["bob-voms"])
    assert pa != pb
    assert [i.path for i in store.list_for(alice)] == [pa]
    assert [i.delegation_id for i in store.list_for(bob.subject_grid)] == ["same"]
    assert validator.validate(certs_of(pb.read_bytes())).subject_grid == bob.subject_grid
    assert validator.validate(certs_of(pa.read_bytes())).subject_grid == alice.subject_grid


def test_destroy_and_purge(store: DelegationStore, test_pki: TestPKI, validator: Validator) -> None:
    alice = who(test_pki, validator, "alice-voms")
    delegate(store, alice, "gone", test_pki.proxies["alice-voms"])
    delegate(store, alice, "short", test_pki.proxies["alice-voms"], lifetime=timedelta(hours=1))
    assert store.destroy(alice, "gone")
    assert not store.destroy(alice, "gone")
    with expect(DelegationReason.UNKNOWN_ID):
        store.path_for(alice, "gone")
    assert store.purge_expired(datetime.now(UTC)) == 0
    assert store.purge_expired(datetime.now(UTC) + timedelta(hours=2)) == 1
    with expect(DelegationReason.UNKNOWN_ID):
        store.path_for(alice, "short")


def test_signing_refuses_path_length_zero(
    test_pki: TestPKI, store: DelegationStore, validator: Validator
) -> None:
    alice = who(test_pki, validator, "alice-voms")
    leaf = make_proxy(test_pki.users["alice"], path_length=0)
    with pytest.raises(ValueError, match="path length 0"):
        sign_request(store.get_request(alice, "p0"), leaf.proxy_pem())
