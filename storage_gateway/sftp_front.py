"""The gateway's SFTP front (paramiko) for people and tools that speak SSH.

Authentication is by public key only: the key must have been registered through the
HTTPS front (``POST /sshkeys`` with the user's proxy). When a session authenticates,
the registration's stored credential is validated again and the VO membership it
asserted is rechecked (the rule is in :mod:`storage_gateway.sshkeys`); the session
then acts as that grid identity, through the same :class:`StorageGateway` rules as
HTTPS. The SSH user name is not used: the key decides who you are.

Paths are logical gateway paths; the initial directory is the caller's private area.
``realpath`` folds ``..`` lexically (so ``cd ..`` works in clients), and every
operation then validates its path strictly, like the HTTPS front.

Uploads are atomic: an opened file streams into the gateway's atomic upload and is
committed only by the client's CLOSE; a session that ends without it (client killed,
network gone) aborts the upload and nothing becomes visible. Writes must be
sequential (whole-file uploads); other write patterns are refused.

Attributes (SETSTAT, FSETSTAT): access is checked as for a write; modification
and access times are kept (``put -p``, ``scp -p``); a mode equal to the one the
gateway reports (0644 files, 0755 directories: access follows the area rules, not
modes) and a size equal to the current size are accepted as already true; any
other mode, owner or size change is refused with "Operation unsupported" and
nothing is changed.

Bounded resources: at most ``max_sessions`` concurrent sessions (extra connections
are closed at once) and ``MAX_UPLOADS`` open uploads per session. When a session
ends, the channel reports exit status 0 (``scp -s`` checks it).
"""

from __future__ import annotations

import logging
import os
import posixpath
import queue
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import paramiko
from paramiko import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
    SFTPAttributes,
    SFTPHandle,
    SFTPServerInterface,
)
from paramiko.sftp import CMD_CLOSE

from gproc.security.identity import Identity
from gproc.storage_gateway import paths
from gproc.storage_gateway.backends.base import (
    AlreadyExists,
    Conflict,
    Entry,
    InvalidPath,
    NotFound,
    NotSupported,
    PermissionDenied,
    StorageError,
)
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.sshkeys import SessionRefused, SshKeyStore

log = logging.getLogger("gproc.gateway.sftp")
MAX_UPLOADS = 8
UPLOAD_BUFFER = 1 << 20
_DONE = object()
_CODES: dict[type[StorageError], int] = {
    NotFound: SFTP_NO_SUCH_FILE,
    PermissionDenied: SFTP_PERMISSION_DENIED,
    InvalidPath: SFTP_PERMISSION_DENIED,
    AlreadyExists: SFTP_FAILURE,
    Conflict: SFTP_FAILURE,
    NotSupported: SFTP_OP_UNSUPPORTED,
}
FILE_MODE, DIR_MODE = 0o644, 0o755
Times = tuple[float, float]


def sftp_code(exc: StorageError) -> int:
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return SFTP_FAILURE


def plan_setstat(attr: SFTPAttributes, entry: Entry) -> tuple[int, Times | None]:
    """(status, times to set) of a SETSTAT on ``entry``: OK only when everything asked
    is either already true or a time change (nothing is done otherwise)."""
    flags = attr._flags
    if flags & (SFTPAttributes.FLAG_UIDGID | SFTPAttributes.FLAG_EXTENDED):
        return SFTP_OP_UNSUPPORTED, None
    mode = DIR_MODE if entry.is_dir else FILE_MODE
    if flags & SFTPAttributes.FLAG_PERMISSIONS and (attr.st_mode or 0) & 0o7777 != mode:
        return SFTP_OP_UNSUPPORTED, None
    if flags & SFTPAttributes.FLAG_SIZE and (entry.is_dir or attr.st_size != entry.size):
        return SFTP_OP_UNSUPPORTED, None  # no truncation: uploads are whole files
    if flags & SFTPAttributes.FLAG_AMTIME:
        return SFTP_OK, (float(attr.st_atime or 0), float(attr.st_mtime or 0))
    return SFTP_OK, None


def _attrs(entry: Entry) -> SFTPAttributes:
    a = SFTPAttributes()
    a.filename = entry.name
    a.st_size = entry.size
    a.st_mode = (stat.S_IFDIR | DIR_MODE) if entry.is_dir else (stat.S_IFREG | FILE_MODE)
    a.st_mtime = a.st_atime = int(entry.mtime)
    a.st_uid = a.st_gid = 0
    return a


class _Auth(paramiko.ServerInterface):
    """Public-key authentication against the key store; one instance per connection."""

    def __init__(
        self, keys: SshKeyStore, admit: Callable[[Identity], str | None] | None = None
    ) -> None:
        self.keys = keys
        self.admit = admit
        self.identity: Identity | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        record = self.keys.lookup(key.get_name(), key.asbytes())
        if record is None:
            return paramiko.AUTH_FAILED
        try:
            self.identity = self.keys.session_identity(record)
        except SessionRefused as exc:
            log.info("sftp session refused for %s: %s", record.dn, exc)
            self.identity = None
            return paramiko.AUTH_FAILED
        refusal = self.admit(self.identity) if self.admit else None
        if refusal is not None:  # e.g. suspended in the VO since the AC was issued
            log.info("sftp session refused for %s: %s", record.dn, refusal)
            self.identity = None
            return paramiko.AUTH_FAILED
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _ReadHandle(SFTPHandle):
    """Sequential reads stream from one backend read; a seek reopens at the offset."""

    def __init__(self, gateway: StorageGateway, identity: Identity, path: str) -> None:
        super().__init__()
        self.gateway, self.identity, self.path = gateway, identity, path
        self._stream: Iterator[bytes] | None = None
        self._pos = 0
        self._buf = b""

    def read(self, offset: int, length: int) -> bytes | int:
        try:
            if self._stream is None or offset != self._pos:
                self._reopen(offset)
            while len(self._buf) < length:
                chunk = next(self._stream, b"")  # type: ignore[arg-type]
                if not chunk:
                    break
                self._buf += chunk
        except StorageError as exc:
            return sftp_code(exc)
        out, self._buf = self._buf[:length], self._buf[length:]
        self._pos += len(out)
        return out

    def _reopen(self, offset: int) -> None:
        self._close_stream()
        self._stream = self.gateway.open_read(self.identity, self.path, offset)
        self._pos, self._buf = offset, b""

    def _close_stream(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()
        self._stream = None

    def stat(self) -> SFTPAttributes | int:
        try:
            return _attrs(self.gateway.stat(self.identity, self.path))
        except StorageError as exc:
            return sftp_code(exc)

    def close(self) -> None:
        self._close_stream()


class _UploadHandle(SFTPHandle):
    """Feeds an atomic upload; committed only by :meth:`commit`.

    A file that fits in ``UPLOAD_BUFFER`` is written in one call at CLOSE (small
    files cost no thread); a bigger one streams into a background upload started
    when the buffer first fills."""

    def __init__(
        self, gateway: StorageGateway, identity: Identity, path: str, overwrite: bool
    ) -> None:
        super().__init__()
        self.gateway, self.identity, self.path = gateway, identity, path
        self._overwrite = overwrite
        self._times: Times | None = None  # from FSETSTAT, set once committed
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._pending = bytearray()
        self._offset = 0
        self._error: BaseException | None = None
        self._aborted = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self, chunks: Iterable[bytes]) -> None:
        try:
            self.gateway.write(self.identity, self.path, chunks, overwrite=self._overwrite)
        except BaseException as exc:  # noqa: BLE001 - reported at write/close
            self._error = exc

    def _chunks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if item is None or self._aborted.is_set():
                raise ConnectionAbortedError("SFTP upload abandoned before CLOSE")
            yield item

    def _put(self, item: Any) -> bool:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="sftp-upload", daemon=True, args=(self._chunks(),)
            )
            self._thread.start()
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def write(self, offset: int, data: bytes) -> int:
        if self._error is not None:
            return self._error_code()
        if offset != self._offset:
            self._abort()
            return SFTP_OP_UNSUPPORTED
        self._pending += data
        self._offset += len(data)
        if len(self._pending) >= UPLOAD_BUFFER:
            chunk, self._pending = bytes(self._pending), bytearray()
            if not self._put(chunk):
                return self._error_code()
        return SFTP_OK

    def commit(self) -> tuple[int, str | None]:
        """The client's CLOSE: finish, verify and rename the upload."""
        if self._aborted.is_set():
            return SFTP_FAILURE, "upload was abandoned"
        if self._thread is None:  # all of it is buffered: write it here
            self._run([bytes(self._pending)])
        else:
            if self._pending:
                self._put(bytes(self._pending))
            self._put(_DONE)
            self._thread.join()
        self._pending = bytearray()
        if self._error is not None:
            return self._error_code(), str(self._error)
        if self._times is not None:
            try:
                self.gateway.set_times(self.identity, self.path, *self._times)
            except StorageError as exc:
                return sftp_code(exc), f"uploaded, but its times were not set: {exc}"
        return SFTP_OK, None

    def chattr(self, attr: SFTPAttributes) -> int:
        """FSETSTAT during the upload (``put -p``): times are kept for the commit."""
        if self._error is not None or self._aborted.is_set():
            return SFTP_FAILURE
        code, times = plan_setstat(attr, Entry("", False, self._offset, 0.0))
        if code == SFTP_OK and times is not None:
            self._times = times
        return code

    def _error_code(self) -> int:
        err = self._error
        return sftp_code(err) if isinstance(err, StorageError) else SFTP_FAILURE

    def _abort(self) -> None:
        self._aborted.set()
        self._pending = bytearray()
        if self._thread is not None:
            self._put(None)

    def close(self) -> None:
        """Session teardown without CLOSE: abort (nothing becomes visible)."""
        if self._thread is None:
            self._abort()
        elif self._thread.is_alive():
            self._abort()
            self._thread.join(timeout=30)

    def stat(self) -> SFTPAttributes | int:
        a = SFTPAttributes()
        a.st_size, a.st_mode = self._offset, stat.S_IFREG | FILE_MODE
        return a


class _GatewaySFTP(SFTPServerInterface):
    """SFTP operations over StorageGateway as the session's identity."""

    def __init__(self, server: _Auth, *args: Any, gateway: StorageGateway, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        if server.identity is None:
            raise PermissionError("unauthenticated SFTP session")
        self.identity: Identity = server.identity
        self.gateway = gateway
        self.home = gateway.home(self.identity) or "/"
        self.uploads = 0

    def _path(self, path: str) -> str:
        if len(path) > 1 and path.endswith("/"):  # clients add one to directory names
            path = path[:-1]
        if not path.startswith("/"):
            path = self.home.rstrip("/") + "/" + path
        return paths.normalise(path)

    def canonicalize(self, path: str) -> str:
        if not path or path == ".":
            return self.home
        joined = path if path.startswith("/") else posixpath.join(self.home, path)
        return posixpath.normpath(joined).replace("//", "/")

    def list_folder(self, path: str) -> list[SFTPAttributes] | int:
        try:
            return [_attrs(e) for e in self.gateway.listdir(self.identity, self._path(path))]
        except StorageError as exc:
            return sftp_code(exc)

    def stat(self, path: str) -> SFTPAttributes | int:
        try:
            return _attrs(self.gateway.stat(self.identity, self._path(path)))
        except StorageError as exc:
            return sftp_code(exc)

    lstat = stat

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> SFTPHandle | int:
        try:
            logical = self._path(path)
            if not flags & (os.O_WRONLY | os.O_RDWR):
                if self.gateway.stat(self.identity, logical).is_dir:
                    return SFTP_FAILURE
                return _ReadHandle(self.gateway, self.identity, logical)
            return self._open_upload(logical, flags)
        except StorageError as exc:
            return sftp_code(exc)

    def _open_upload(self, logical: str, flags: int) -> SFTPHandle | int:
        if flags & os.O_APPEND or (flags & os.O_RDWR):
            return SFTP_OP_UNSUPPORTED
        overwrite = not flags & os.O_EXCL
        if self.uploads >= MAX_UPLOADS:
            return SFTP_FAILURE
        self.gateway.check_write(self.identity, logical, overwrite=overwrite)
        self.uploads += 1
        return _UploadHandle(self.gateway, self.identity, logical, overwrite)

    def remove(self, path: str) -> int:
        return self._do(lambda: self.gateway.delete(self.identity, self._path(path)))

    rmdir = remove

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        return self._do(lambda: self.gateway.mkdir(self.identity, self._path(path)))

    def rename(self, oldpath: str, newpath: str) -> int:
        return self._do(
            lambda: self.gateway.rename(self.identity, self._path(oldpath), self._path(newpath))
        )

    posix_rename = rename

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        """SETSTAT: checked like a write; times set, the rest only if already true."""
        try:
            logical = self._path(path)
            code, times = plan_setstat(attr, self.gateway.modifiable(self.identity, logical))
            if code == SFTP_OK and times is not None:
                self.gateway.set_times(self.identity, logical, *times)
        except StorageError as exc:
            return sftp_code(exc)
        return code

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_OP_UNSUPPORTED

    def readlink(self, path: str) -> str | int:
        return SFTP_OP_UNSUPPORTED

    @staticmethod
    def _do(action: Any) -> int:
        try:
            action()
        except StorageError as exc:
            return sftp_code(exc)
        return SFTP_OK


class _SFTPServer(paramiko.SFTPServer):
    """paramiko's SFTP server, except that CLOSE of an upload reports the commit's
    outcome (paramiko always answers OK to CLOSE), and that the session's end sends
    an exit status (paramiko sends none, so ``scp -s`` fails every transfer)."""

    def finish_subsystem(self) -> None:
        try:
            self.sock.send_exit_status(0)
        except Exception as exc:  # noqa: BLE001 - the client may have closed already
            log.debug("no exit status sent: %s", exc)
        super().finish_subsystem()

    def _process(self, t: int, request_number: int, msg: paramiko.Message) -> None:
        if t == CMD_CLOSE:
            start = msg.packet.tell()
            handle = msg.get_binary()
            upload = self.file_table.get(handle)
            if isinstance(upload, _UploadHandle):
                del self.file_table[handle]
                code, message = upload.commit()
                self.server.uploads -= 1  # type: ignore[attr-defined]
                self._send_status(request_number, code, message)
                return
            msg.packet.seek(start)
        super()._process(t, request_number, msg)


class SftpFront:
    """Accepts SSH connections and runs one paramiko transport per session."""

    def __init__(
        self,
        gateway: StorageGateway,
        keys: SshKeyStore,
        host_key: paramiko.PKey,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_sessions: int = 32,
        admit: Callable[[Identity], str | None] | None = None,
    ) -> None:
        self.gateway, self.keys, self.host_key = gateway, keys, host_key
        self.admit = admit
        self._slots = threading.BoundedSemaphore(max_sessions)
        self._sock = socket.create_server((host, port), reuse_port=False)
        self._sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._transports: set[paramiko.Transport] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._sock.getsockname()[0])

    def start(self) -> SftpFront:
        self._thread = threading.Thread(target=self._accept, name="gproc-sftp", daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                conn.close()  # over the session limit
                continue
            threading.Thread(
                target=self._session, args=(conn,), daemon=True, name="sftp-session"
            ).start()

    def _session(self, conn: socket.socket) -> None:
        transport = None
        try:
            conn.settimeout(None)
            transport = paramiko.Transport(
                conn, default_window_size=64 << 20, default_max_packet_size=1 << 18
            )
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", _SFTPServer, _GatewaySFTP, gateway=self.gateway)
            with self._lock:
                self._transports.add(transport)
            transport.start_server(server=_Auth(self.keys, self.admit))
            transport.join()
        except Exception as exc:  # noqa: BLE001 - one broken session must not stop others
            log.info("sftp session ended: %s", exc)
        finally:
            if transport is not None:
                transport.close()
                with self._lock:
                    self._transports.discard(transport)
            conn.close()
            self._slots.release()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        with self._lock:
            transports = list(self._transports)
        for t in transports:
            t.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def load_host_key(path: Path) -> paramiko.PKey:
    """The server's Ed25519 host key, created (mode 0600) on first use."""
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as fh:
            fh.write(pem)
    return paramiko.Ed25519Key.from_private_key_file(str(path))
