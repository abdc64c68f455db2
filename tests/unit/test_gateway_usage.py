"""Quota usage as a running count: one walk per area, moved by the gateway's writes
and deletes, recounted in the background to catch changes made outside it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gproc.security.chain import Validator
from gproc.security.identity import Identity
from gproc.security.pki import TestPKI
from gproc.storage_gateway.backends.base import QuotaExceeded
from gproc.storage_gateway.backends.posix import PosixBackend
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from gproc.storage_gateway.usage import UsageMeter


class WalkCountingBackend(PosixBackend):
    """A real POSIX backend that counts its full usage walks."""

    walks = 0

    def usage(self, path: str = "/") -> int:
        type(self).walks += 1
        return super().usage(path)


@pytest.fixture
def setup(
    tmp_path: Path, test_pki: TestPKI, pki_validator: Validator
) -> tuple[StorageGateway, Identity, Path]:
    WalkCountingBackend.walks = 0
    backend = WalkCountingBackend(tmp_path / "store", create=True)
    ns = Namespace.from_dict(
        {
            "backends": {"local": {"type": "posix", "root": str(tmp_path / "store")}},
            "area": [
                {
                    "path": "/groups/grid",
                    "backend": "local",
                    "root": "/grid",
                    "read": ["/testvo/grid/*"],
                    "write": ["/testvo/grid/*"],
                    "quota": 10_000,
                }
            ],
        },
        factory=lambda conf: backend,
    )
    alice = pki_validator.validate(test_pki.proxies["alice-voms"].read_bytes())
    return StorageGateway(ns, UsageMeter(reconcile_s=0.5)), alice, tmp_path / "store" / "grid"


def test_one_walk_then_a_running_count(setup: tuple[StorageGateway, Identity, Path]) -> None:
    gw, alice, _root = setup
    for i in range(20):
        gw.write(alice, f"/groups/grid/f{i}", [b"x" * 100])
    gw.check_write(alice, "/groups/grid/next")
    assert WalkCountingBackend.walks == 1  # not one per upload (nor two per SFTP upload)
    assert gw.usage.used(("local", "/grid"), gw.namespace.backends["local"], "/grid") == 2000


def test_writes_overwrites_and_deletes_move_the_count(
    setup: tuple[StorageGateway, Identity, Path],
) -> None:
    gw, alice, _root = setup
    gw.write(alice, "/groups/grid/a", [b"a" * 6000])
    with pytest.raises(QuotaExceeded):
        gw.write(alice, "/groups/grid/b", [b"b" * 5000])
    gw.write(alice, "/groups/grid/a", [b"a" * 1000], overwrite=True)  # frees 5000
    gw.write(alice, "/groups/grid/b", [b"b" * 5000])
    with pytest.raises(QuotaExceeded):
        gw.write(alice, "/groups/grid/c", [b"c" * 5000])
    gw.delete(alice, "/groups/grid/b")
    gw.write(alice, "/groups/grid/c", [b"c" * 5000])  # room again after the delete
    assert WalkCountingBackend.walks == 1


def test_changes_made_outside_are_reconciled_in_the_background(
    setup: tuple[StorageGateway, Identity, Path],
) -> None:
    gw, alice, root = setup
    gw.write(alice, "/groups/grid/a", [b"a" * 1000])
    (root / "outside.bin").write_bytes(b"o" * 8500)  # another program fills the area
    gw.write(alice, "/groups/grid/b", [b"b" * 100])  # the running count does not know yet
    time.sleep(0.6)
    gw.check_write(alice, "/groups/grid/c")  # due: starts a recount in the background
    deadline = time.monotonic() + 10
    count = gw.usage._counts[("local", "/grid")]
    while time.monotonic() < deadline and (WalkCountingBackend.walks < 2 or count.recounting):
        time.sleep(0.05)
    with pytest.raises(QuotaExceeded):
        gw.write(alice, "/groups/grid/c", [b"c" * 1000])
    assert not [p for p in root.iterdir() if p.name == "c" or p.name.startswith(".gw-")]
