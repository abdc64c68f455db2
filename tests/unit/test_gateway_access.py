"""Access rules, private areas, quotas and bad input through the gateway facade.

Identities are real: proxies with VOMS ACs from the session test PKI, validated by
the project's validator. Storage is a real local directory (POSIX backend); one
area sits on an HDFS URL where nothing listens, to show a down backend only fails
its own area.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gproc.security import pki
from gproc.security.chain import Validator
from gproc.security.identity import Identity
from gproc.security.pki import TestPKI
from gproc.storage_gateway.access import KEY_RE, user_key
from gproc.storage_gateway.backends.base import (
    AlreadyExists,
    BackendUnavailable,
    Conflict,
    InvalidPath,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace


def _identity(test_pki: TestPKI, validator: Validator, cn: str, fqans: list[str]) -> Identity:
    user = test_pki.users.get(cn) or pki.make_user_cert(test_pki.ca, cn)
    acs = [pki.make_voms_ac(user.cert, test_pki.voms, "testvo", fqans)] if fqans else []
    return validator.validate(pki.make_proxy(user, acs=acs).chain_pem())


@pytest.fixture(scope="module")
def ids(test_pki: TestPKI, pki_validator: Validator) -> dict[str, Identity]:
    """alice (/testvo, /testvo/grid), bob (/testvo), dora (datamanager), ann and anna
    (/testvo), plain (a valid proxy without VOMS attributes)."""
    return {
        "alice": pki_validator.validate(test_pki.proxies["alice-voms"].read_bytes()),
        "bob": _identity(test_pki, pki_validator, "bob", ["/testvo"]),
        "dora": _identity(test_pki, pki_validator, "dora", ["/testvo/Role=datamanager"]),
        "ann": _identity(test_pki, pki_validator, "ann", ["/testvo"]),
        "anna": _identity(test_pki, pki_validator, "anna", ["/testvo"]),
        "plain": pki_validator.validate(test_pki.proxies["alice"].read_bytes()),
    }


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


@pytest.fixture
def gw(store: Path) -> Iterator[StorageGateway]:
    ns = Namespace.from_dict(
        {
            "version": 1,
            "backends": {
                "local": {"type": "posix", "root": str(store)},
                "down": {"type": "hdfs", "url": f"http://127.0.0.1:{_closed_port()}"},
            },
            "area": [
                {
                    "path": "/public",
                    "backend": "local",
                    "root": "/public",
                    "read": ["/testvo/*"],
                    "write": ["/testvo/Role=datamanager"],
                    "quota": 1000,
                },
                {
                    "path": "/private",
                    "type": "private",
                    "backend": "local",
                    "root": "/home",
                    "members": ["/testvo/*"],
                    "quota": 500,
                },
                {
                    "path": "/groups/grid",
                    "backend": "local",
                    "root": "/grid",
                    "read": ["/testvo/grid/*"],
                    "write": ["/testvo/grid/*"],
                },
                {"path": "/archive", "backend": "down", "root": "/a", "read": ["/testvo/*"]},
            ],
        }
    )
    yield StorageGateway(ns)


def names(gw: StorageGateway, who: Identity, path: str) -> list[str]:
    return [e.name for e in gw.listdir(who, path)]


def test_public_read_for_members_write_for_datamanager(
    gw: StorageGateway, ids: dict[str, Identity]
) -> None:
    gw.write(ids["dora"], "/public/ref.txt", [b"reference"])
    assert b"".join(gw.open_read(ids["bob"], "/public/ref.txt")) == b"reference"
    with pytest.raises(PermissionDenied, match="Role=datamanager"):
        gw.write(ids["bob"], "/public/mine.txt", [b"x"])
    for op in (
        lambda: gw.delete(ids["alice"], "/public/ref.txt"),
        lambda: gw.mkdir(ids["alice"], "/public/d"),
        lambda: gw.rename(ids["alice"], "/public/ref.txt", "/public/r2"),
    ):
        with pytest.raises(PermissionDenied):
            op()
    assert names(gw, ids["alice"], "/public") == ["ref.txt"]


def test_identity_without_vo_sees_nothing(gw: StorageGateway, ids: dict[str, Identity]) -> None:
    with pytest.raises(PermissionDenied):
        gw.listdir(ids["plain"], "/public")
    assert names(gw, ids["plain"], "/") == []
    assert gw.home(ids["plain"]) is None


def test_private_area_created_on_first_use_and_invisible(
    gw: StorageGateway, store: Path, ids: dict[str, Identity]
) -> None:
    home = gw.home(ids["alice"])
    assert home == f"/private/{user_key(ids['alice'])}"
    assert names(gw, ids["alice"], "/private") == [user_key(ids["alice"])]
    assert gw.listdir(ids["alice"], home) == []  # created on first use
    assert (store / "home" / user_key(ids["alice"])).is_dir()
    gw.write(ids["alice"], f"{home}/notes.txt", [b"mine"])
    assert names(gw, ids["bob"], "/private") == [user_key(ids["bob"])]
    for op in (
        lambda: gw.listdir(ids["bob"], home),
        lambda: gw.stat(ids["bob"], f"{home}/notes.txt"),
        lambda: gw.open_read(ids["bob"], f"{home}/notes.txt"),
        lambda: gw.write(ids["bob"], f"{home}/evil.txt", [b"x"]),
        lambda: gw.delete(ids["bob"], f"{home}/notes.txt"),
    ):
        with pytest.raises(NotFound):
            op()
    assert names(gw, ids["alice"], home) == ["notes.txt"]


def test_sibling_prefix_users(gw: StorageGateway, ids: dict[str, Identity]) -> None:
    ann, anna = user_key(ids["ann"]), user_key(ids["anna"])
    assert ann.startswith("ann-") and anna.startswith("anna-")
    gw.write(ids["anna"], f"/private/{anna}/f", [b"anna's"])
    # ann addressing anna's area (and names sharing her prefix) gets nothing
    for path in (f"/private/{anna}/f", f"/private/{ann}a/f", f"/private/{ann[:-1]}"):
        with pytest.raises(NotFound):
            gw.stat(ids["ann"], path)
    gw.write(ids["ann"], f"/private/{ann}/f", [b"ann's"])
    assert b"".join(gw.open_read(ids["anna"], f"/private/{anna}/f")) == b"anna's"


def test_user_key_shape_and_uniqueness(ids: dict[str, Identity]) -> None:
    keys = {name: user_key(who) for name, who in ids.items()}
    assert all(KEY_RE.match(k) for k in keys.values())
    assert keys["alice"] == keys["plain"]  # same DN, VOMS or not
    assert len({keys[n] for n in ("alice", "bob", "dora", "ann", "anna")}) == 5


def test_group_area_by_fqan_group(gw: StorageGateway, ids: dict[str, Identity]) -> None:
    gw.write(ids["alice"], "/groups/grid/shared.txt", [b"grid data"])
    assert names(gw, ids["alice"], "/groups") == ["grid"]
    assert names(gw, ids["bob"], "/groups") == []  # not in /testvo/grid
    with pytest.raises(PermissionDenied):
        gw.open_read(ids["bob"], "/groups/grid/shared.txt")
    assert sorted(names(gw, ids["alice"], "/")) == ["archive", "groups", "private", "public"]
    assert sorted(names(gw, ids["bob"], "/")) == ["archive", "private", "public"]


def test_virtual_directories_are_read_only(gw: StorageGateway, ids: dict[str, Identity]) -> None:
    for path in ("/newtop", "/groups/new", "/public", "/groups/grid"):
        with pytest.raises(PermissionDenied):
            gw.mkdir(ids["dora"], path)
    with pytest.raises(NotFound):
        gw.listdir(ids["alice"], "/nothing")
    assert gw.stat(ids["alice"], "/groups").is_dir


def test_quota_per_area_and_per_user(gw: StorageGateway, ids: dict[str, Identity]) -> None:
    gw.write(ids["dora"], "/public/a", [b"x" * 600])
    with pytest.raises(QuotaExceeded):
        gw.write(ids["dora"], "/public/b", [b"y" * 300, b"y" * 300])
    assert names(gw, ids["dora"], "/public") == ["a"]
    gw.write(ids["dora"], "/public/b", [b"y" * 400])  # exactly fills the quota
    with pytest.raises(QuotaExceeded):
        gw.write(ids["dora"], "/public/c", [b"z"])
    gw.write(ids["dora"], "/public/a", [b"x" * 500], overwrite=True)  # replacing counts the old
    home = {w: gw.home(ids[w]) for w in ("ann", "anna")}
    gw.write(ids["ann"], f"{home['ann']}/f", [b"1" * 500])
    gw.write(ids["anna"], f"{home['anna']}/f", [b"2" * 500])  # separate per-user quota
    with pytest.raises(QuotaExceeded):
        gw.write(ids["ann"], f"{home['ann']}/g", [b"1"])


def test_down_backend_fails_only_its_area(gw: StorageGateway, ids: dict[str, Identity]) -> None:
    with pytest.raises(BackendUnavailable):
        gw.listdir(ids["alice"], "/archive")
    gw.write(ids["alice"], "/groups/grid/still-works", [b"ok"])
    assert names(gw, ids["alice"], "/groups/grid") == ["still-works"]
    assert "archive" in names(gw, ids["alice"], "/")


def test_interrupted_upload_through_gateway(
    gw: StorageGateway, store: Path, ids: dict[str, Identity]
) -> None:
    def source() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        gw.write(ids["alice"], "/groups/grid/up.bin", source())
    assert names(gw, ids["alice"], "/groups/grid") == []
    assert list((store / "grid").iterdir()) == []


@pytest.mark.parametrize(
    "bad",
    [
        "/public/../private/x",
        "/groups/grid/../../public/x",
        "/public/%2e%2e/x",
        "/groups/grid/a\x00b",
        "/groups/grid/\uff0e\uff0e/x",
        "groups/grid/x",
        "//groups/grid/x",
        "/groups/grid/.gw-upload-0000000000000000",
    ],
)
def test_traversal_refused_nothing_written(
    gw: StorageGateway, store: Path, bad: str, ids: dict[str, Identity]
) -> None:
    with pytest.raises(InvalidPath):
        gw.write(ids["alice"], bad, [b"x"])
    with pytest.raises(InvalidPath):
        gw.stat(ids["alice"], bad)
    written = [p for p in store.rglob("*") if p.is_file()]
    assert written == []


def test_symlink_out_of_area_refused(
    gw: StorageGateway, store: Path, tmp_path: Path, ids: dict[str, Identity]
) -> None:
    gw.mkdir(ids["alice"], "/groups/grid/d")
    outside = tmp_path / "outside"
    outside.mkdir()
    (store / "grid" / "d" / "esc").symlink_to(outside)
    (store / "grid" / "ln").symlink_to(store / "public")
    with pytest.raises(InvalidPath):
        gw.write(ids["alice"], "/groups/grid/d/esc/x", [b"x"])
    with pytest.raises(InvalidPath):
        gw.listdir(ids["alice"], "/groups/grid/ln")
    assert list(outside.iterdir()) == []


def test_rename_stays_inside_one_area(gw: StorageGateway, ids: dict[str, Identity]) -> None:
    home = gw.home(ids["alice"])
    gw.write(ids["alice"], f"{home}/f", [b"x"])
    with pytest.raises(Conflict):
        gw.rename(ids["alice"], f"{home}/f", "/groups/grid/f")
    gw.write(ids["alice"], "/groups/grid/a", [b"a"])
    gw.write(ids["alice"], "/groups/grid/b", [b"b"])
    with pytest.raises(AlreadyExists):
        gw.rename(ids["alice"], "/groups/grid/a", "/groups/grid/b")
    gw.rename(ids["alice"], "/groups/grid/a", "/groups/grid/c")
    assert names(gw, ids["alice"], "/groups/grid") == ["b", "c"]
    with pytest.raises(PermissionDenied):
        gw.delete(ids["alice"], "/groups/grid")  # the area root itself
