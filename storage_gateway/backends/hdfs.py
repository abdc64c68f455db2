"""HDFS backend over the WebHDFS REST API (``requests``; follows NameNode -> DataNode redirects).

WebHDFS is plain HTTP, so the gateway needs no JVM or native client. Its quirks are
absorbed here: CREATE and MKDIRS silently create missing parents, MKDIRS succeeds on
an existing directory and RENAME answers ``false`` instead of an error -- the backend
checks first so the contract (NotFound / AlreadyExists) holds. Uploads stream with
chunked transfer encoding (CREATE empty, then APPEND) to a hidden sibling, then
RENAME (atomic in the NameNode).
Replacing an existing file is rename-aside, rename-in, delete-old: never a partial
file, but a reader may briefly see no file at all. Auth is WebHDFS "simple"
(``user.name``); Kerberos/SPNEGO is not supported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import quote

import requests

from gproc.storage_gateway import paths
from gproc.storage_gateway.backends.base import (
    CHUNK,
    DEFAULT_WRITE,
    AlreadyExists,
    Backend,
    BackendUnavailable,
    Checksums,
    Conflict,
    Entry,
    Hasher,
    InvalidPath,
    InvalidRange,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageError,
    WriteOptions,
    metered,
    temp_name,
    verify,
)

_EXCEPTIONS: dict[str, type[StorageError]] = {
    "FileNotFoundException": NotFound,
    "FileAlreadyExistsException": AlreadyExists,
    "AccessControlException": PermissionDenied,
    "SecurityException": PermissionDenied,
    "PathIsNotEmptyDirectoryException": Conflict,
    "ParentNotDirectoryException": Conflict,
    "DSQuotaExceededException": QuotaExceeded,
    "NSQuotaExceededException": QuotaExceeded,
    "SafeModeException": BackendUnavailable,
    "RetriableException": BackendUnavailable,
    "StandbyException": BackendUnavailable,
}


class _Recorder:
    """Remembers an exception raised by the upload source, which requests would
    otherwise report as its own ConnectionError."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.chunks
        except BaseException as exc:
            self.error = exc
            raise


class HdfsBackend(Backend):
    """A directory tree of one HDFS namespace, addressed through WebHDFS."""

    kind = "hdfs"

    def __init__(
        self,
        url: str,
        root: str = "/",
        *,
        user: str = "gproc",
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.root = paths.split(root)
        self.user = user
        self.timeout = (connect_timeout, read_timeout)
        self._http = requests.Session()

    # -- plumbing --------------------------------------------------------------------
    def _full(self, path: str) -> str:
        return paths.join(self.root + paths.split(path))

    def _endpoint(self, full: str) -> str:
        return f"{self.url}/webhdfs/v1{quote(full, safe='/')}"

    def _call(
        self,
        method: str,
        path: str,
        op: str,
        *,
        display: str | None = None,
        raw: str | None = None,
        stream: bool = False,
        redirect: bool = True,
        **params: Any,
    ) -> requests.Response:
        """One WebHDFS request on ``path`` (or the internal HDFS path ``raw``).

        Errors come back as the backend error hierarchy."""
        query = {"op": op, "user.name": self.user, **params}
        full = raw if raw is not None else self._full(path)
        try:
            resp = self._http.request(
                method,
                self._endpoint(full),
                params=query,
                timeout=self.timeout,
                stream=stream,
                allow_redirects=redirect,
            )
        except requests.RequestException as exc:
            raise BackendUnavailable(
                f"HDFS at {self.url} unreachable: {type(exc).__name__}"
            ) from None
        if resp.status_code >= 400:
            raise self._error(resp, display or path)
        return resp

    @staticmethod
    def _error(resp: requests.Response, display: str) -> StorageError:
        try:
            remote = resp.json()["RemoteException"]
            name, message = remote.get("exception", ""), remote.get("message", "")
        except (ValueError, KeyError, TypeError):
            name, message = "", resp.reason or ""
        cls = _EXCEPTIONS.get(name)
        if cls is None and "empty" in message.lower():
            cls = Conflict  # 2.7 reports a non-empty rmdir as a bare IOException
        if cls is None:
            cls = BackendUnavailable if resp.status_code >= 500 and not name else StorageError
        first = message.splitlines()[0] if message else f"HTTP {resp.status_code}"
        return cls(f"{display}: {first}")

    @staticmethod
    def _entry(status: dict[str, Any], name: str, display: str) -> Entry:
        kind = status.get("type")
        if kind not in ("FILE", "DIRECTORY"):
            raise InvalidPath(f"{display}: not a regular file or directory")
        is_dir = kind == "DIRECTORY"
        return Entry(
            name,
            is_dir,
            0 if is_dir else int(status["length"]),
            int(status["modificationTime"]) / 1000.0,
        )

    def _boolean(self, method: str, path: str, op: str, **params: Any) -> bool:
        return bool(self._call(method, path, op, **params).json().get("boolean"))

    def _hidden(self, path: str, kind: str = "upload") -> str:
        """Internal HDFS path of a hidden sibling of ``path`` (not user-addressable)."""
        return (
            self._full(paths.parent(path)).rstrip("/") + "/" + temp_name().replace("upload", kind)
        )

    # -- operations --------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        parts = paths.split(path)
        status = self._call("GET", path, "GETFILESTATUS").json()["FileStatus"]
        return self._entry(status, parts[-1] if parts else "", path)

    def listdir(self, path: str) -> list[Entry]:
        if not self.stat(path).is_dir:
            raise Conflict(f"{path}: not a directory")
        statuses = self._call("GET", path, "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
        out = []
        for status in statuses:
            name = status["pathSuffix"]
            try:
                paths.check_component(name)
                out.append(self._entry(status, name, path))
            except InvalidPath:
                continue  # in-flight uploads, symlinks, names users could not address
        return sorted(out, key=lambda e: e.name)

    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise InvalidRange(f"bad range offset={offset} length={length}")
        entry = self.stat(path)
        if entry.is_dir:
            raise Conflict(f"{path}: not a regular file")
        if offset >= entry.size or length == 0:
            return iter(())
        params: dict[str, Any] = {"offset": offset}
        if length is not None:
            params["length"] = length
        resp = self._call("GET", path, "OPEN", stream=True, **params)
        return self._body(resp)

    @staticmethod
    def _body(resp: requests.Response) -> Iterator[bytes]:
        try:
            for chunk in resp.iter_content(CHUNK):
                if chunk:
                    yield chunk
        except requests.RequestException as exc:
            raise BackendUnavailable(f"HDFS read interrupted: {type(exc).__name__}") from None
        finally:
            resp.close()

    def _check_parent(self, path: str) -> None:
        parent = paths.parent(path)
        if not self.stat(parent).is_dir:
            raise Conflict(f"{parent}: not a directory")

    def _lookup(self, path: str) -> Entry | None:
        try:
            return self.stat(path)
        except NotFound:
            return None

    def write_stream(
        self, path: str, chunks: Iterable[bytes], options: WriteOptions = DEFAULT_WRITE
    ) -> Checksums:
        self._check_parent(path)
        existing = self._lookup(path)
        if existing is not None and not options.overwrite:
            raise AlreadyExists(f"{path}: already exists")
        if existing is not None and existing.is_dir:
            raise Conflict(f"{path}: exists and is not a regular file")
        tmp = self._hidden(path)
        hasher = Hasher()
        try:
            self._upload(tmp, metered(chunks, hasher, options.max_bytes), path)
            sums = verify(hasher, options.expected)
            self._publish(tmp, path, options.overwrite)
        except BaseException:
            self._delete_quietly(tmp)
            raise
        return sums

    def _upload(self, tmp: str, body: Iterator[bytes], display: str) -> None:
        """Create the hidden file empty, then stream the data with APPEND.

        A one-shot CREATE would be simpler, but the DataNode creates the file when it
        gets to the request: if the client went away, a cleanup DELETE can run first
        and the file then reappears. With a completed empty CREATE, a late APPEND on a
        deleted file just fails, so cleanup is final."""
        self._to_datanode("CREATE", tmp, iter(()), display, overwrite="false", permission="644")
        source = _Recorder(body)
        try:
            self._to_datanode("APPEND", tmp, iter(source), display)
        except StorageError:
            if source.error is not None:  # the source failed, not HDFS: re-raise as is
                raise source.error from None
            raise

    def _to_datanode(
        self, op: str, tmp: str, body: Iterator[bytes], display: str, **params: Any
    ) -> None:
        method = "PUT" if op == "CREATE" else "POST"
        first = self._call(method, display, op, raw=tmp, redirect=False, **params)
        location = first.headers.get("Location")
        if first.status_code != 307 or not location:
            raise StorageError(f"{display}: WebHDFS {op} gave no DataNode redirect")
        try:
            resp = self._http.request(method, location, data=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise BackendUnavailable(f"HDFS DataNode write failed: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise self._error(resp, display)

    def _publish(self, tmp: str, path: str, overwrite: bool) -> None:
        final = self._full(path)
        if self._rename_raw(tmp, final, path):
            return
        if not overwrite or self._lookup(path) is None:
            raise AlreadyExists(f"{path}: already exists")
        aside = self._hidden(path, "old")
        if not self._rename_raw(final, aside, path):
            raise Conflict(f"{path}: could not move the old version aside")
        if not self._rename_raw(tmp, final, path):
            self._rename_raw(aside, final, path)
            raise Conflict(f"{path}: replaced concurrently")
        self._delete_quietly(aside)

    def _rename_raw(self, src: str, dst: str, display: str) -> bool:
        """RENAME between internal HDFS paths; False when HDFS refuses (dst exists...)."""
        resp = self._call("PUT", display, "RENAME", raw=src, destination=dst)
        return bool(resp.json().get("boolean"))

    def _delete_quietly(self, raw: str) -> None:
        with suppress(StorageError):
            self._call("DELETE", raw, "DELETE", raw=raw, recursive="false")

    def delete(self, path: str) -> None:
        if not paths.split(path):
            raise InvalidPath("cannot delete the root")
        self.stat(path)
        if not self._boolean("DELETE", path, "DELETE", recursive="false"):
            raise NotFound(f"{path}: no such file or directory")

    def mkdir(self, path: str, parents: bool = False) -> None:
        existing = self._lookup(path)
        if existing is not None:
            if not parents:
                raise AlreadyExists(f"{path}: already exists")
            if not existing.is_dir:
                raise Conflict(f"{path}: exists and is not a directory")
            return
        if not parents:
            self._check_parent(path)
        if not self._boolean("PUT", path, "MKDIRS", permission="755"):
            raise Conflict(f"{path}: could not create directory")

    def rename(self, src: str, dst: str) -> None:
        sp, dp = paths.split(src), paths.split(dst)
        if not sp or not dp:
            raise InvalidPath("cannot rename the root")
        if paths.is_within(dp, sp):
            raise Conflict(f"{dst}: cannot move a directory into itself")
        self.stat(src)
        self._check_parent(dst)
        if self._lookup(dst) is not None or not self._rename_raw(
            self._full(src), self._full(dst), dst
        ):
            raise AlreadyExists(f"{dst}: already exists")

    def set_times(self, path: str, atime: float, mtime: float) -> None:
        self.stat(path)  # NotFound / InvalidPath as for every operation
        self._call(
            "PUT",
            path,
            "SETTIMES",
            modificationtime=int(mtime * 1000),
            accesstime=int(atime * 1000),
        )

    def usage(self, path: str = "/") -> int:
        summary = self._call("GET", path, "GETCONTENTSUMMARY").json()["ContentSummary"]
        return int(summary["length"])

    def close(self) -> None:
        self._http.close()
