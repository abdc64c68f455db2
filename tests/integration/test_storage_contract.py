"""One contract for every storage backend, run against real servers.

``BackendContract`` states what any backend must do; each subclass only provides a
``backend`` fixture rooted at a fresh directory of its real server (a local
directory, a GlusterFS volume served by glusterd, an HDFS NameNode + DataNode).
"""

from __future__ import annotations

import hashlib
import os
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gproc.storage_gateway.backends.base import (
    AlreadyExists,
    Backend,
    ChecksumMismatch,
    Checksums,
    Conflict,
    InvalidPath,
    InvalidRange,
    NotFound,
    QuotaExceeded,
    WriteOptions,
)
from gproc.storage_gateway.backends.glusterfs import GlusterBackend
from gproc.storage_gateway.backends.hdfs import HdfsBackend
from gproc.storage_gateway.backends.posix import PosixBackend
from tests.fixtures.gluster import GlusterServer
from tests.fixtures.hdfs import HdfsServer

MiB = 1024 * 1024


def payload(size: int, seed: int = 7) -> bytes:
    """Deterministic non-repeating test data."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def expected_sums(data: bytes) -> Checksums:
    return Checksums(f"{zlib.adler32(data) & 0xFFFFFFFF:08x}", hashlib.sha256(data).hexdigest())


def read_all(backend: Backend, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join(backend.open_read(path, offset, length))


class Interrupted(ConnectionResetError):
    """Raised by a test upload source to simulate a client that went away (an OSError,
    which a backend must not mistake for one of its own I/O errors)."""


def broken_source(data: bytes, after: int) -> Iterator[bytes]:
    yield data[:after]
    raise Interrupted("client disconnected")


class BackendContract:
    """Behaviour every backend must show; subclasses provide the ``backend`` fixture."""

    def names(self, backend: Backend, path: str = "/") -> list[str]:
        return [e.name for e in backend.listdir(path)]

    def raw_names(self, backend: Backend) -> list[str]:
        """Everything in the backend root as the server itself lists it (hidden included)."""
        raise NotImplementedError

    def assert_nothing_left(self, backend: Backend, *expected: str) -> None:
        assert self.names(backend) == sorted(expected)
        assert sorted(self.raw_names(backend)) == sorted(expected)  # no hidden upload left

    def test_write_then_read_round_trip(self, backend: Backend) -> None:
        data = payload(3 * MiB + 123)
        sums = backend.write_stream("/a.bin", chunked(data))
        assert sums == expected_sums(data)
        assert read_all(backend, "/a.bin") == data
        entry = backend.stat("/a.bin")
        assert (entry.name, entry.is_dir, entry.size) == ("a.bin", False, len(data))

    def test_checksum_matches_reference_implementations(self, backend: Backend) -> None:
        data = payload(200_000, seed=3)
        backend.write_stream("/c.bin", chunked(data, 7_001))
        assert backend.checksum("/c.bin") == expected_sums(data)

    def test_empty_file(self, backend: Backend) -> None:
        assert backend.write_stream("/empty", iter(())) == expected_sums(b"")
        assert backend.stat("/empty").size == 0
        assert read_all(backend, "/empty") == b""

    def test_ranged_reads(self, backend: Backend) -> None:
        data = payload(1_500_000, seed=5)
        backend.write_stream("/r.bin", chunked(data))
        assert read_all(backend, "/r.bin", 0, 10) == data[:10]
        assert read_all(backend, "/r.bin", 1_048_570, 20) == data[1_048_570:1_048_590]
        assert read_all(backend, "/r.bin", 1_400_000) == data[1_400_000:]
        assert read_all(backend, "/r.bin", 1_499_990, 100) == data[1_499_990:]
        assert read_all(backend, "/r.bin", 10, 0) == b""
        assert read_all(backend, "/r.bin", len(data)) == b""

    def test_negative_range_refused(self, backend: Backend) -> None:
        backend.write_stream("/r.bin", [b"abc"])
        with pytest.raises(InvalidRange):
            backend.open_read("/r.bin", -1)
        with pytest.raises(InvalidRange):
            backend.open_read("/r.bin", 0, -5)

    def test_listdir_and_mkdir(self, backend: Backend) -> None:
        backend.mkdir("/d")
        backend.write_stream("/d/x", [b"12345"])
        backend.mkdir("/d/sub")
        entries = backend.listdir("/d")
        assert [(e.name, e.is_dir) for e in entries] == [("sub", True), ("x", False)]
        assert entries[1].size == 5
        assert backend.stat("/d").is_dir

    def test_mkdir_errors_and_parents(self, backend: Backend) -> None:
        backend.mkdir("/m")
        with pytest.raises(AlreadyExists):
            backend.mkdir("/m")
        with pytest.raises(NotFound):
            backend.mkdir("/nope/child")
        backend.mkdir("/p/q/r", parents=True)
        backend.mkdir("/p/q/r", parents=True)  # idempotent with parents
        assert backend.stat("/p/q/r").is_dir

    def test_unicode_names_round_trip(self, backend: Backend) -> None:
        backend.mkdir("/données")
        backend.write_stream("/données/çà et là.tif", [b"x"])
        assert self.names(backend, "/données") == ["çà et là.tif"]

    def test_missing_paths(self, backend: Backend) -> None:
        with pytest.raises(NotFound):
            backend.stat("/missing")
        with pytest.raises(NotFound):
            backend.open_read("/missing")
        with pytest.raises(NotFound):
            backend.listdir("/missing")
        with pytest.raises(NotFound):
            backend.delete("/missing")
        with pytest.raises(NotFound):
            backend.write_stream("/no/parent/f", [b"x"])

    def test_reading_a_directory_is_a_conflict(self, backend: Backend) -> None:
        backend.mkdir("/dir")
        with pytest.raises(Conflict):
            read_all(backend, "/dir")

    def test_no_overwrite_unless_asked(self, backend: Backend) -> None:
        backend.write_stream("/f", [b"one"])
        with pytest.raises(AlreadyExists):
            backend.write_stream("/f", [b"two"])
        assert read_all(backend, "/f") == b"one"
        backend.write_stream("/f", [b"three"], WriteOptions(overwrite=True))
        assert read_all(backend, "/f") == b"three"
        self.assert_nothing_left(backend, "f")

    def test_interrupted_upload_leaves_nothing(self, backend: Backend) -> None:
        data = payload(2 * MiB)
        with pytest.raises(Interrupted):
            backend.write_stream("/up.bin", broken_source(data, MiB))
        assert not backend.exists("/up.bin")
        self.assert_nothing_left(backend)

    def test_interrupted_overwrite_keeps_old_content(self, backend: Backend) -> None:
        backend.write_stream("/keep", [b"original"])
        with pytest.raises(Interrupted):
            backend.write_stream(
                "/keep", broken_source(b"new" * 1000, 10), WriteOptions(overwrite=True)
            )
        assert read_all(backend, "/keep") == b"original"
        self.assert_nothing_left(backend, "keep")

    def test_checksum_mismatch_refused_and_nothing_kept(self, backend: Backend) -> None:
        data = b"payload" * 100
        good = expected_sums(data)
        backend.write_stream("/ok", [data], WriteOptions(expected=good))
        bad = Checksums("00000001", "")
        with pytest.raises(ChecksumMismatch):
            backend.write_stream("/bad", [data], WriteOptions(expected=bad))
        self.assert_nothing_left(backend, "ok")

    def test_byte_budget_enforced_while_streaming(self, backend: Backend) -> None:
        data = payload(300_000)
        with pytest.raises(QuotaExceeded):
            backend.write_stream("/big", chunked(data, 50_000), WriteOptions(max_bytes=120_000))
        self.assert_nothing_left(backend)
        backend.write_stream("/fits", chunked(data[:120_000]), WriteOptions(max_bytes=120_000))
        assert backend.stat("/fits").size == 120_000

    def test_delete(self, backend: Backend) -> None:
        backend.mkdir("/d")
        backend.write_stream("/d/f", [b"x"])
        with pytest.raises(Conflict):
            backend.delete("/d")
        backend.delete("/d/f")
        backend.delete("/d")
        assert self.names(backend) == []

    def test_rename(self, backend: Backend) -> None:
        backend.write_stream("/a", [b"A"])
        backend.write_stream("/b", [b"B"])
        with pytest.raises(AlreadyExists):
            backend.rename("/a", "/b")
        assert read_all(backend, "/b") == b"B"
        backend.mkdir("/dir")
        backend.rename("/a", "/dir/a2")
        assert read_all(backend, "/dir/a2") == b"A"
        backend.rename("/dir", "/dir2")
        assert self.names(backend) == ["b", "dir2"]
        with pytest.raises(NotFound):
            backend.rename("/missing", "/x")
        with pytest.raises(Conflict):
            backend.rename("/dir2", "/dir2/inside")

    def test_usage_sums_file_sizes(self, backend: Backend) -> None:
        backend.mkdir("/u/v", parents=True)
        backend.write_stream("/u/one", [b"x" * 1000])
        backend.write_stream("/u/v/two", [b"y" * 2345])
        assert backend.usage("/u") == 3345

    def test_set_times_of_files_and_directories(self, backend: Backend) -> None:
        backend.mkdir("/t")
        sums = backend.write_stream("/t/f", [b"timed"])
        backend.set_times("/t/f", 1_600_000_000.5, 1_500_000_000.25)
        backend.set_times("/t", 1_600_000_000.0, 1_400_000_000.0)
        assert backend.stat("/t/f").mtime == pytest.approx(1_500_000_000.25, abs=0.001)
        assert backend.stat("/t").mtime == pytest.approx(1_400_000_000.0, abs=0.001)
        assert backend.checksum("/t/f") == sums == expected_sums(b"timed")
        assert read_all(backend, "/t/f") == b"timed"
        with pytest.raises(NotFound):
            backend.set_times("/t/missing", 0.0, 0.0)

    @pytest.mark.parametrize(
        "bad",
        [
            "/a/../b",
            "a",
            "/a//b",
            "/a/",
            "/./a",
            "/a\x00b",
            "/a\\b",
            "/%2e%2e/x",
            "/\uff0e\uff0e/x",
            "/.gw-upload-1234",
        ],
    )
    def test_invalid_paths_refused(self, backend: Backend, bad: str) -> None:
        with pytest.raises(InvalidPath):
            backend.stat(bad)
        with pytest.raises(InvalidPath):
            backend.write_stream(bad, [b"x"])


@pytest.fixture(scope="session")
def posix_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("posix-backend")


class TestPosix(BackendContract):
    """A local directory, plus the symlink attacks only a POSIX tree allows."""

    @pytest.fixture
    def backend(self, posix_root: Path) -> Backend:
        return PosixBackend(posix_root / uuid.uuid4().hex, create=True)

    @pytest.fixture
    def outside(self, tmp_path: Path) -> Path:
        out = tmp_path / "outside"
        out.mkdir()
        (out / "secret").write_bytes(b"top secret")
        return out

    def root(self, backend: Backend) -> Path:
        assert isinstance(backend, PosixBackend)
        return backend.root

    def raw_names(self, backend: Backend) -> list[str]:
        return os.listdir(self.root(backend))

    def test_checksums_stored_at_upload_are_served(self, backend: Backend) -> None:
        data = payload(300_000)
        sums = backend.write_stream("/kept", chunked(data))
        path = self.root(backend) / "kept"
        assert os.getxattr(path, "user.gproc.sums").split()[3:] == [
            sums.adler32.encode(),
            sums.sha256.encode(),
        ]
        # changed behind the gateway's back but with size and mtime restored: the
        # stored value is served (it is what the upload computed, not a re-read)
        before = path.stat()
        path.write_bytes(b"z" * len(data))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert backend.checksum("/kept") == sums == expected_sums(data)

    def test_other_writes_invalidate_stored_checksums(self, backend: Backend) -> None:
        backend.write_stream("/w", [b"original content"])
        path = self.root(backend) / "w"
        with path.open("r+b") as fh:  # in place, same size, as another program would
            fh.write(b"CHANGED")
        os.utime(path, (1_000_000_000, 1_000_000_000))  # a different mtime for sure
        assert backend.checksum("/w") == expected_sums(b"CHANGEDl content")
        path.write_bytes(b"shorter")  # truncated and rewritten
        assert backend.checksum("/w") == expected_sums(b"shorter")
        # the recomputed value is kept for the next request
        fields = os.getxattr(path, "user.gproc.sums").split()
        assert fields[1] == b"7" and fields[4] == expected_sums(b"shorter").sha256.encode()

    def test_set_times_keeps_stored_checksums_valid(self, backend: Backend) -> None:
        sums = backend.write_stream("/st", [b"abc"])
        backend.set_times("/st", 1_000_000.0, 2_000_000.0)
        fields = os.getxattr(self.root(backend) / "st", "user.gproc.sums").split()
        assert fields[2] == str(2_000_000 * 10**9).encode()
        assert backend.checksum("/st") == sums

    def test_without_fsync_uploads_stay_atomic_and_correct(self, posix_root: Path) -> None:
        from gproc.storage_gateway.namespace import make_backend

        backend = make_backend(
            {
                "type": "posix",
                "root": str(posix_root / uuid.uuid4().hex),
                "create": True,
                "fsync": False,
            }
        )
        assert isinstance(backend, PosixBackend) and backend.fsync is False
        data = payload(2 * MiB + 3)
        assert backend.write_stream("/nf", chunked(data)) == expected_sums(data)
        assert read_all(backend, "/nf") == data and backend.checksum("/nf") == expected_sums(data)
        with pytest.raises(Interrupted):
            backend.write_stream("/nf2", broken_source(data, 1000))
        assert self.raw_names(backend) == ["nf"]

    def test_final_symlink_refused(self, backend: Backend, outside: Path) -> None:
        os.symlink(outside / "secret", self.root(backend) / "link")
        for op in (
            lambda: backend.stat("/link"),
            lambda: read_all(backend, "/link"),
            lambda: backend.checksum("/link"),
            lambda: backend.delete("/link"),
        ):
            with pytest.raises(InvalidPath):
                op()
        with pytest.raises((InvalidPath, AlreadyExists)):
            backend.write_stream("/link", [b"pwned"], WriteOptions(overwrite=True))
        assert (outside / "secret").read_bytes() == b"top secret"
        assert self.names(backend) == []  # links are not listed

    def test_intermediate_symlink_refused(self, backend: Backend, outside: Path) -> None:
        os.symlink(outside, self.root(backend) / "dir")
        with pytest.raises(InvalidPath):
            backend.stat("/dir/secret")
        with pytest.raises(InvalidPath):
            backend.listdir("/dir")
        with pytest.raises(InvalidPath):
            backend.write_stream("/dir/new", [b"x"])
        with pytest.raises(InvalidPath):
            backend.mkdir("/dir/sub/x", parents=True)
        assert sorted(os.listdir(outside)) == ["secret"]

    def test_symlink_swapped_in_during_read(self, backend: Backend, outside: Path) -> None:
        data = payload(3 * MiB)
        backend.write_stream("/f", chunked(data))
        stream = backend.open_read("/f")
        first = next(stream)
        real = self.root(backend) / "f"
        real.rename(self.root(backend) / "moved")
        os.symlink(outside / "secret", real)
        rest = b"".join(stream)
        assert first + rest == data  # still the file that was opened, never the link

    def test_directory_swapped_for_symlink_during_upload(
        self, backend: Backend, outside: Path
    ) -> None:
        backend.mkdir("/d")
        root = self.root(backend)

        def source() -> Iterator[bytes]:
            yield b"first part "
            (root / "d").rename(root / "d-moved")
            os.symlink(outside, root / "d")
            yield b"second part"

        backend.write_stream("/d/up", source())
        assert sorted(os.listdir(outside)) == ["secret"]
        assert (root / "d-moved" / "up").read_bytes() == b"first part second part"

    def test_root_missing_is_unavailable(self, tmp_path: Path) -> None:
        from gproc.storage_gateway.backends.base import BackendUnavailable

        gone = PosixBackend(tmp_path / "not-mounted")
        with pytest.raises(BackendUnavailable):
            gone.stat("/")


class TestHDFS(BackendContract):
    """A real NameNode + DataNode, through WebHDFS."""

    @pytest.fixture
    def backend(self, hdfs_server: HdfsServer) -> Iterator[Backend]:
        root = f"/gproc/{uuid.uuid4().hex}"
        HdfsBackend(hdfs_server.http_url, "/", user=hdfs_server.user).mkdir(root)
        backend = HdfsBackend(hdfs_server.http_url, root, user=hdfs_server.user)
        yield backend
        backend.close()

    def raw_names(self, backend: Backend) -> list[str]:
        assert isinstance(backend, HdfsBackend)
        resp = requests.get(
            backend._endpoint("/" + "/".join(backend.root)),
            params={"op": "LISTSTATUS", "user.name": backend.user},
            timeout=10,
        )
        return [s["pathSuffix"] for s in resp.json()["FileStatuses"]["FileStatus"]]

    def test_hdfs_down_is_unavailable(self) -> None:
        from gproc.storage_gateway.backends.base import BackendUnavailable
        from tests.fixtures.hdfs import _free_ports

        down = HdfsBackend(f"http://127.0.0.1:{_free_ports(1)[0]}", "/gproc")
        with pytest.raises(BackendUnavailable):
            down.stat("/")
        with pytest.raises(BackendUnavailable):
            down.write_stream("/f", [b"x"])


class TestGlusterFS(BackendContract):
    """A real GlusterFS volume served by glusterd, through libgfapi."""

    @pytest.fixture
    def backend(self, gluster_server: GlusterServer) -> Backend:
        root = f"/gproc/{uuid.uuid4().hex}"
        GlusterBackend(gluster_server.host, gluster_server.volume).mkdir(root, parents=True)
        return GlusterBackend(gluster_server.host, gluster_server.volume, root)

    def raw_names(self, backend: Backend) -> list[str]:
        from gproc.storage_gateway.backends.glusterfs import volume

        assert isinstance(backend, GlusterBackend)
        return list(volume(backend.host, backend.volume_name).listdir("/" + "/".join(backend.root)))

    def test_symlinks_in_the_volume_refused(self, backend: Backend) -> None:
        from gproc.storage_gateway.backends.glusterfs import volume

        assert isinstance(backend, GlusterBackend)
        vol = volume(backend.host, backend.volume_name)
        base = "/" + "/".join(backend.root)
        backend.mkdir("/real")
        vol.symlink("/etc", base + "/dirlink")
        vol.symlink("/etc/passwd", base + "/filelink")
        with pytest.raises(InvalidPath):
            backend.stat("/dirlink/passwd")
        with pytest.raises(InvalidPath):
            read_all(backend, "/filelink")
        with pytest.raises(InvalidPath):
            backend.write_stream("/dirlink/x", [b"x"])
        assert self.names(backend) == ["real"]

    def test_missing_volume_is_unavailable(self, gluster_server: GlusterServer) -> None:
        from gproc.storage_gateway.backends.base import BackendUnavailable

        down = GlusterBackend(gluster_server.host, "no-such-volume")
        with pytest.raises(BackendUnavailable):
            down.stat("/")
        with pytest.raises(BackendUnavailable):
            down.write_stream("/f", [b"x"])
