"""The gateway's HTTPS front on a real TLS server, with stock clients (curl, requests).

Backends here are local directories; tests/integration/test_gateway_remote.py runs
the same front on GlusterFS and HDFS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time
import uuid
import zlib
from pathlib import Path

import pytest

from tests.fixtures.gateway import QUOTA, GatewayServer

MiB = 1024 * 1024


def data_of(size: int, seed: int = 1) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def fresh_dir(gw: GatewayServer, base: str = "/groups/grid") -> str:
    path = f"{base}/{uuid.uuid4().hex[:12]}"
    r = gw.session().request("MKCOL", gw.url + path)
    assert r.status_code == 201, r.text
    return path


def on_disk(gw: GatewayServer) -> list[str]:
    """Every name under the local backend, hidden in-flight uploads included."""
    out = []
    for d, dirs, files in os.walk(gw.root / "local"):
        out += [os.path.join(d, n) for n in dirs + files]
    return out


# -- round trips ----------------------------------------------------------------------
def test_put_get_head_round_trip_with_requests(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    data = data_of(3 * MiB + 17)
    r = s.put(f"{gw.url}{d}/a.bin", data=data)
    assert r.status_code == 201, r.text
    assert r.json()["adler32"] == adler(data)
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    got = s.get(f"{gw.url}{d}/a.bin")
    assert got.status_code == 200 and got.content == data
    head = s.head(f"{gw.url}{d}/a.bin")
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(data)
    sha_b64 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head.headers["Digest"] == f"adler32={adler(data)},sha-256={sha_b64}"
    stat = s.get(f"{gw.url}{d}/a.bin", params={"op": "stat"}).json()
    assert (stat["size"], stat["type"], stat["adler32"]) == (len(data), "file", adler(data))


def test_ranges(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    data = data_of(MiB + 5)
    s.put(f"{gw.url}{d}/r", data=data).raise_for_status()
    r = s.get(f"{gw.url}{d}/r", headers={"Range": "bytes=1048570-1048580"})
    assert r.status_code == 206 and r.content == data[1048570:1048581]
    assert r.headers["Content-Range"] == f"bytes 1048570-1048580/{len(data)}"
    assert s.get(f"{gw.url}{d}/r", headers={"Range": "bytes=-7"}).content == data[-7:]
    assert s.get(f"{gw.url}{d}/r", headers={"Range": "bytes=1048000-"}).content == data[1048000:]
    bad = s.get(f"{gw.url}{d}/r", headers={"Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416 and bad.json()["error"] == "InvalidRange"


@pytest.mark.parametrize(
    "header",
    ["bytes=5-x", "bytes=x-5", "bytes=-", "bytes=5-3", "bytes=--5", "bytes= 1 2-3", "bytes=-0"],
)
def test_malformed_or_unsatisfiable_range_is_416(gateway_posix: GatewayServer, header: str) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    s.put(f"{gw.url}{d}/r", data=b"0123456789").raise_for_status()
    r = s.get(f"{gw.url}{d}/r", headers={"Range": header})
    assert r.status_code == 416, (header, r.status_code, r.text)
    assert r.json()["error"] == "InvalidRange"
    assert r.headers["Content-Range"] == "bytes */10"
    assert s.get(f"{gw.url}{d}/r").content == b"0123456789"  # the service keeps serving


def test_chunked_put_and_checksum_verification(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    data = data_of(2 * MiB, seed=2)
    gen = (data[i : i + 100_000] for i in range(0, len(data), 100_000))
    r = s.put(f"{gw.url}{d}/chunked", data=gen)  # a generator body goes chunked
    assert r.status_code == 201, r.text
    assert s.get(f"{gw.url}{d}/chunked").content == data
    ok = s.put(
        f"{gw.url}{d}/verified", data=b"hello", headers={"Digest": f"adler32={adler(b'hello')}"}
    )
    assert ok.status_code == 201
    wrong = s.put(f"{gw.url}{d}/wrong", data=b"hello", headers={"Digest": "adler32=00000001"})
    assert wrong.status_code == 422 and wrong.json()["error"] == "ChecksumMismatch"
    assert s.head(f"{gw.url}{d}/wrong").status_code == 404
    assert [e["name"] for e in s.get(f"{gw.url}{d}").json()["entries"]] == ["chunked", "verified"]


def test_no_overwrite_unless_asked(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    s.put(f"{gw.url}{d}/f", data=b"one").raise_for_status()
    again = s.put(f"{gw.url}{d}/f", data=b"two")
    assert again.status_code == 409 and again.json()["error"] == "AlreadyExists"
    assert s.put(f"{gw.url}{d}/f", params={"overwrite": "1"}, data=b"three").status_code == 201
    assert s.get(f"{gw.url}{d}/f").content == b"three"


def test_listing_mkdir_rename_delete(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    assert s.post(f"{gw.url}{d}/a/b", params={"op": "mkdir", "parents": "1"}).status_code == 201
    s.put(f"{gw.url}{d}/a/f.txt", data=b"x").raise_for_status()
    listing = s.get(f"{gw.url}{d}/a").json()
    assert [(e["name"], e["type"]) for e in listing["entries"]] == [
        ("b", "directory"),
        ("f.txt", "file"),
    ]
    assert (
        s.post(f"{gw.url}{d}/a/f.txt", params={"op": "rename", "to": f"{d}/a/g.txt"}).status_code
        == 200
    )
    assert s.delete(f"{gw.url}{d}/a").status_code == 409  # not empty
    assert s.delete(f"{gw.url}{d}/a/g.txt").status_code == 200
    assert s.delete(f"{gw.url}{d}/a/b").status_code == 200
    assert s.get(f"{gw.url}{d}/a").json()["entries"] == []
    root = s.get(gw.url + "/").json()
    assert {e["name"] for e in root["entries"]} == {"public", "private", "groups"}


def test_stock_curl_client(gateway_posix: GatewayServer, tmp_path: Path) -> None:
    gw = gateway_posix
    d = fresh_dir(gw)
    src = tmp_path / "src.bin"
    src.write_bytes(data_of(MiB + 3, seed=9))
    put = gw.curl("-f", "-T", str(src), f"{gw.url}{d}/c.bin")
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["adler32"] == adler(src.read_bytes())
    out = tmp_path / "out.bin"
    assert gw.curl("-f", "-o", str(out), f"{gw.url}{d}/c.bin").returncode == 0
    assert out.read_bytes() == src.read_bytes()
    head = gw.curl("-f", "-I", f"{gw.url}{d}/c.bin")
    assert f"digest: adler32={adler(src.read_bytes())}" in head.stdout.lower()
    part = tmp_path / "part.bin"
    assert gw.curl("-f", "-r", "10-19", "-o", str(part), f"{gw.url}{d}/c.bin").returncode == 0
    assert part.read_bytes() == src.read_bytes()[10:20]
    assert gw.curl("-f", "-X", "MKCOL", f"{gw.url}{d}/sub").returncode == 0
    listing = json.loads(gw.curl("-f", f"{gw.url}{d}").stdout)
    assert sorted(e["name"] for e in listing["entries"]) == ["c.bin", "sub"]
    assert gw.curl("-f", "-X", "DELETE", f"{gw.url}{d}/c.bin").returncode == 0
    gone = gw.curl("-w", "%{http_code}", "-o", "/dev/null", f"{gw.url}{d}/c.bin")
    assert gone.stdout == "404"


# -- bad input at the front -------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        "/groups/grid/../../etc/passwd",
        "/groups/grid/%2e%2e/%2e%2e/etc/passwd",
        "/groups/grid/..%2F..%2Fetc",
        "/groups/grid/%252e%252e/x",
        "/groups/grid//etc/passwd",
        "/groups/grid/%2Fetc%2Fpasswd",
        "/groups/grid/a%00b",
        "/groups/grid/%EF%BC%8E%EF%BC%8E/x",
        "/groups/grid/%E2%80%AEevil",
        "/groups/grid/a%5Cb",
        "/groups/grid/.gw-upload-0123456789abcdef",
    ],
)
def test_traversal_and_encoding_tricks_refused(gateway_posix: GatewayServer, raw: str) -> None:
    gw = gateway_posix
    for method in ("GET", "PUT"):
        r = gw.curl(
            "--path-as-is",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            "--data-binary",
            "pwn" if method == "PUT" else "",
            f"{gw.url}{raw}",
        )
        body, _, code = r.stdout.rpartition("\n")
        assert code == "400", (method, raw, r.stdout, r.stderr)
        assert json.loads(body)["error"] == "InvalidPath"
    assert not any("pwn" in p or p.endswith("passwd") for p in on_disk(gw))


def test_other_users_private_area_and_sibling_prefix(gateway_posix: GatewayServer) -> None:
    gw = gateway_posix
    alice, bob = gw.session("alice-voms"), gw.session("bob-voms")
    home = gw.home("alice-voms")
    assert alice.put(f"{gw.url}{home}/secret.txt", data=b"alice only").status_code == 201
    assert bob.get(f"{gw.url}{home}/secret.txt").status_code == 404
    assert bob.get(f"{gw.url}{home}").status_code == 404
    assert bob.put(f"{gw.url}{home}/x", data=b"x").status_code == 404
    assert bob.delete(f"{gw.url}{home}/secret.txt").status_code == 404
    # a sibling whose name extends alice's key is not alice's area, not anyone's to use
    assert alice.put(f"{gw.url}{home}x/f", data=b"x").status_code == 404
    assert alice.get(f"{gw.url}{home[:-1]}").status_code == 404
    listing = bob.get(f"{gw.url}/private").json()
    assert [e["name"] for e in listing["entries"]] == [gw.home("bob-voms").split("/")[-1]]
    assert alice.get(f"{gw.url}{home}/secret.txt").content == b"alice only"


def test_symlink_in_the_backend_refused(gateway_posix: GatewayServer, tmp_path: Path) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"server secret")
    real_dir = gw.root / "local" / d.lstrip("/").replace("groups/grid", "groups/grid", 1)
    os.symlink(outside / "secret", real_dir / "filelink")
    os.symlink(outside, real_dir / "dirlink")
    for path in ("filelink", "dirlink/secret"):
        r = s.get(f"{gw.url}{d}/{path}")
        assert r.status_code == 400 and r.json()["error"] == "InvalidPath", r.text
        assert b"server secret" not in r.content
    assert s.put(f"{gw.url}{d}/dirlink/new", data=b"x").status_code == 400
    assert sorted(os.listdir(outside)) == ["secret"]


def test_public_needs_the_datamanager_role(gateway_posix: GatewayServer) -> None:
    gw = gateway_posix
    name = f"/public/{uuid.uuid4().hex[:8]}.txt"
    denied = gw.session("alice-voms").put(gw.url + name, data=b"x")
    assert denied.status_code == 403 and "Role=datamanager" in denied.json()["message"]
    assert gw.session("bob-dm").put(gw.url + name, data=b"shared").status_code == 201
    assert gw.session("alice-voms").get(gw.url + name).content == b"shared"
    assert gw.session("alice-voms").delete(gw.url + name).status_code == 403
    assert gw.session("alice").get(gw.url + name).status_code == 403  # no VOMS: no VO


def test_over_quota_refused_and_nothing_kept(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session("bob-voms")
    home = gw.home("bob-voms")
    r = s.put(f"{gw.url}{home}/big.bin", data=data_of(QUOTA + MiB))
    assert r.status_code == 507 and r.json()["error"] == "QuotaExceeded"
    assert s.head(f"{gw.url}{home}/big.bin").status_code == 404
    assert not any(".gw-" in p for p in on_disk(gw))
    assert s.put(f"{gw.url}{home}/small.bin", data=b"fits").status_code == 201


def test_backend_down_is_503_and_others_keep_working(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    r = s.get(f"{gw.url}/groups/down/anything")
    assert r.status_code == 503 and r.json()["error"] == "BackendUnavailable"
    assert s.put(f"{gw.url}/groups/down/f", data=b"x").status_code == 503
    d = fresh_dir(gw)
    assert s.put(f"{gw.url}{d}/still-works", data=b"ok").status_code == 201


def _raw_tls(gw: GatewayServer) -> socket.socket:
    sock = socket.create_connection((gw.server.host, gw.server.port), timeout=20)
    return gw.tls_context().wrap_socket(sock, server_hostname="localhost")


def test_interrupted_upload_leaves_nothing(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    s.put(f"{gw.url}{d}/kept", data=b"original").raise_for_status()
    for name, extra in (("new.bin", ""), ("kept", "?overwrite=1")):
        conn = _raw_tls(gw)
        conn.sendall(
            f"PUT {d}/{name}{extra} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Length: {4 * MiB}\r\n\r\n".encode()
            + data_of(300_000)
        )
        time.sleep(0.3)
        conn.close()  # the client goes away mid-upload
    deadline = time.monotonic() + 10
    while any(".gw-" in p for p in on_disk(gw)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(".gw-" in p for p in on_disk(gw))
    names = [e["name"] for e in s.get(f"{gw.url}{d}").json()["entries"]]
    assert names == ["kept"]
    assert s.get(f"{gw.url}{d}/kept").content == b"original"


def test_truncated_chunked_upload_leaves_nothing(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    conn = _raw_tls(gw)
    conn.sendall(
        f"PUT {d}/c.bin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"10000\r\n"
        + b"x" * 1000
    )
    time.sleep(0.3)
    conn.close()
    deadline = time.monotonic() + 10
    while any(".gw-" in p for p in on_disk(gw)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert s.get(f"{gw.url}{d}").json()["entries"] == []
    assert not any(".gw-" in p for p in on_disk(gw))


def test_client_disconnecting_mid_download(gateway_posix: GatewayServer) -> None:
    gw, s = gateway_posix, gateway_posix.session()
    d = fresh_dir(gw)
    data = data_of(8 * MiB, seed=4)
    s.put(f"{gw.url}{d}/big", data=data).raise_for_status()
    for _ in range(12):  # more than the server's 8 worker threads
        conn = _raw_tls(gw)
        conn.sendall(f"GET {d}/big HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        assert b"200 OK" in conn.recv(65536)
        conn.close()
    started = time.monotonic()
    r = s.get(f"{gw.url}{d}/big", timeout=30)
    assert r.status_code == 200 and r.content == data
    assert time.monotonic() - started < 25  # workers were freed, not stuck on dead clients


# -- SSH keys ---------------------------------------------------------------------------
def _keypair(tmp_path: Path, name: str) -> str:
    import subprocess

    key = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(key)],
        check=True,
    )
    return (tmp_path / f"{name}.pub").read_text()


def test_ssh_key_registration(gateway_posix: GatewayServer, tmp_path: Path) -> None:
    gw = gateway_posix
    alice, bob = gw.session("alice-voms"), gw.session("bob-voms")
    line = _keypair(tmp_path, "k1")
    r = alice.post(gw.url + "/sshkeys", data=line)
    assert r.status_code == 201, r.text
    fp = r.json()["fingerprint"]
    assert fp.startswith("SHA256:") and r.json()["vos"] == ["testvo"]
    assert fp in [k["fingerprint"] for k in alice.get(gw.url + "/sshkeys").json()["keys"]]
    assert fp not in [k["fingerprint"] for k in bob.get(gw.url + "/sshkeys").json()["keys"]]
    assert bob.post(gw.url + "/sshkeys", data=line).status_code == 409  # not bob's key
    for bad in (
        "ssh-ed25519 !!!notbase64",
        "ssh-dss AAAAB3NzaC1kc3M=",
        "garbage",
        "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519").decode(),
    ):
        assert alice.post(gw.url + "/sshkeys", data=bad).status_code == 400, bad
    assert bob.delete(gw.url + "/sshkeys", params={"fingerprint": fp}).status_code == 404
    assert alice.delete(gw.url + "/sshkeys", params={"fingerprint": fp}).status_code == 200
    # other tests of the session may have registered alice's keys: only this one is gone
    assert fp not in [k["fingerprint"] for k in alice.get(gw.url + "/sshkeys").json()["keys"]]


def test_head_answers_carry_no_body_on_a_kept_alive_connection(
    gateway_posix: GatewayServer,
) -> None:
    """A HEAD answer (an error included) has no body (RFC 9110 9.3.2): a body would
    be read as the start of the next response on the same connection."""
    gw = gateway_posix
    d = fresh_dir(gw)
    conn = _raw_tls(gw)
    try:
        conn.sendall(
            f"HEAD {d}/missing HTTP/1.1\r\nHost: localhost\r\n\r\n"
            f"GET {d}/missing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        )
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    finally:
        conn.close()
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 404"), raw[:200]
    assert rest.startswith(b"HTTP/1.1 404"), f"HEAD sent a body: {rest[:120]!r}"
