"""gproc's MyProxy client against a real myproxy-server (credentials stored with the
stock myproxy-init and the admin's myproxy-admin-load-credential)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from gproc import errors
from gproc.security.chain import Validator
from gproc.security.credentials import load_credential
from gproc.security.myproxy import MyProxyRefused, MyProxyUnavailable, logon, renew
from gproc.security.pki import make_ca, write_ca_dir
from tests.fixtures.myproxy import MyProxyStack

PASS = "alice-secret-1"


@pytest.fixture(scope="module")
def stored(myproxy: MyProxyStack) -> MyProxyStack:
    myproxy.store("alice", "alice", PASS)
    myproxy.store_renewable("alice", "alice-renew")
    myproxy.admin_load("bob", "bob-admin", "bob-secret-1")
    return myproxy


def _not_after(pem: bytes) -> datetime:
    return x509.load_pem_x509_certificates(pem)[0].not_valid_after_utc


def test_logon_gives_a_proxy_file_gproc_validates(
    stored: MyProxyStack, pki_validator: Validator, tmp_path: Path
) -> None:
    pem = logon(stored.server(), "alice", PASS, 3600)
    path = tmp_path / "proxy.pem"
    path.write_bytes(pem)
    cred = load_credential(path)  # certificate, key, chain: the layout gproc reads
    assert cred.key.public_key().public_numbers() == cred.cert.public_key().public_numbers()
    ident = pki_validator.validate(cred.chain_pem())
    assert ident.subject_grid == stored.pki.users["alice"].dn
    assert ident.proxy_depth >= 1
    left = _not_after(pem) - datetime.now(UTC)
    assert timedelta(minutes=55) < left <= timedelta(hours=1, seconds=5)


def test_logon_of_a_credential_an_admin_loaded(
    stored: MyProxyStack, pki_validator: Validator
) -> None:
    pem = logon(stored.server(), "bob-admin", "bob-secret-1", 600)
    assert pki_validator.validate(pem).subject_grid == stored.pki.users["bob"].dn


def test_wrong_passphrase_is_refused_without_echoing_it(stored: MyProxyStack) -> None:
    with pytest.raises(MyProxyRefused) as err:
        logon(stored.server(), "alice", "not-the-passphrase", 600)
    assert isinstance(err.value, errors.CredentialRefused) and not err.value.retryable
    assert "passphrase" in str(err.value) and "not-the-passphrase" not in str(err.value)


def test_unknown_username_is_refused(stored: MyProxyStack) -> None:
    with pytest.raises(MyProxyRefused, match="nobody"):
        logon(stored.server(), "nobody", PASS, 600)


@pytest.mark.parametrize(
    ("username", "passphrase", "field"),
    [
        ("alice", "short", "passphrase"),
        ("ali\nce", PASS, "username"),
        ("alice", "a\nbcdefg", "passphrase"),
    ],
)
def test_bad_input_is_refused_before_any_request(
    username: str, passphrase: str, field: str
) -> None:
    from gproc.security.myproxy import MyProxyServer

    nowhere = MyProxyServer("127.0.0.1", Path("/nonexistent"), port=1)
    with pytest.raises(MyProxyRefused) as err:
        logon(nowhere, username, passphrase, 600)
    assert err.value.field == field


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_is_unavailable(stored: MyProxyStack) -> None:
    server = stored.server(port=_closed_port())
    with pytest.raises(MyProxyUnavailable, match="cannot connect") as err:
        logon(server, "alice", PASS, 600)
    assert isinstance(err.value, errors.Unavailable) and err.value.retryable


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield int(s.getsockname()[1])


def test_a_server_that_never_answers_times_out(stored: MyProxyStack, silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(MyProxyUnavailable):
        logon(stored.server(port=silent_port, timeout_s=1.0), "alice", PASS, 600)
    assert time.monotonic() - started < 5


def test_another_server_identity_is_refused(stored: MyProxyStack) -> None:
    server = stored.server(server_dn="/C=XX/O=gproc-test/OU=hosts/CN=other")
    with pytest.raises(MyProxyUnavailable, match="not the expected"):
        logon(server, "alice", PASS, 600)
    assert logon(stored.server(server_dn=stored.host_dn), "alice", PASS, 600)


def test_a_server_of_an_untrusted_ca_is_refused(stored: MyProxyStack, tmp_path: Path) -> None:
    other = write_ca_dir(tmp_path / "certificates", [(make_ca("Other CA"), None)])
    server = stored.server()
    with pytest.raises(MyProxyUnavailable, match="not trusted"):
        logon(type(server)(server.host, other, port=server.port), "alice", PASS, 600)


def test_renewal_by_the_service_gives_a_later_proxy_of_the_same_user(
    stored: MyProxyStack, pki_validator: Validator
) -> None:
    pki = stored.pki
    current = logon(stored.server(), "alice", PASS, 300)
    renewed = renew(
        stored.server(),
        current,
        "alice-renew",
        3600,
        client_cert=pki.host_cert,
        client_key=pki.host_key,
    )
    assert _not_after(renewed) > _not_after(current) + timedelta(minutes=50)
    assert pki_validator.validate(renewed).subject_grid == pki.users["alice"].dn


def test_renewal_by_another_service_is_refused(stored: MyProxyStack) -> None:
    pki = stored.pki
    current = logon(stored.server(), "alice", PASS, 300)
    with pytest.raises(MyProxyRefused):
        renew(
            stored.server(),
            current,
            "alice-renew",
            600,
            client_cert=pki.voms_cert,
            client_key=pki.voms_key,
        )


def test_renewal_needs_a_proxy_of_the_credential_owner(stored: MyProxyStack) -> None:
    pki = stored.pki
    bobs = logon(stored.server(), "bob-admin", "bob-secret-1", 300)
    with pytest.raises(MyProxyRefused):
        renew(
            stored.server(),
            bobs,
            "alice-renew",
            600,
            client_cert=pki.host_cert,
            client_key=pki.host_key,
        )
