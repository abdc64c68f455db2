"""The SFTP front with the stock OpenSSH ``sftp`` client (batch mode), keys registered
through the HTTPS front with the user's VOMS proxy."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gproc.security.pki import make_proxy, make_voms_ac
from tests.fixtures.gateway import QUOTA, GatewayServer

MiB = 1024 * 1024


def keypair(tmp_path: Path, name: str = "id") -> Path:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def register(gw: GatewayServer, key: Path, who: str = "alice-voms") -> None:
    r = gw.session(who).post(gw.url + "/sshkeys", data=key.with_suffix(".pub").read_text())
    assert r.status_code == 201, r.text


def sftp_cmd(front: Any, key: Path) -> list[str]:
    return [
        "sftp",
        "-i",
        str(key),
        "-P",
        str(front.port),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
    ]


def sftp(
    front: Any, key: Path, commands: str, tmp_path: Path, user: str = "grid"
) -> subprocess.CompletedProcess[str]:
    batch = tmp_path / f"batch-{uuid.uuid4().hex[:6]}"
    batch.write_text(commands)
    return subprocess.run(
        [*sftp_cmd(front, key), "-b", str(batch), f"{user}@127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def data_of(size: int) -> bytes:
    block = hashlib.sha256(b"sftp").digest() * 4096
    return (block * (size // len(block) + 1))[:size]


def test_openssh_sftp_round_trip(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    gw = gateway_posix
    key = keypair(tmp_path)
    register(gw, key)
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(3 * MiB + 11))
    r = sftp(
        gateway_sftp,
        key,
        "pwd\nmkdir work\ncd work\nput up.bin\nls -l\n"
        "get up.bin down.bin\nrename up.bin renamed.bin\nls\n",
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    home = gw.home("alice-voms")
    assert f"Remote working directory: {home}" in r.stdout
    assert "renamed.bin" in r.stdout
    assert (tmp_path / "down.bin").read_bytes() == src.read_bytes()
    # the same file through the HTTPS front
    got = gw.session().get(f"{gw.url}{home}/work/renamed.bin")
    assert got.content == src.read_bytes()
    r = sftp(gateway_sftp, key, "rm work/renamed.bin\nrmdir work\nls /groups\n", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "grid" in r.stdout and "down" in r.stdout
    assert gw.session().get(f"{gw.url}{home}/work").status_code == 404


def test_unregistered_key_refused(gateway_sftp: Any, tmp_path: Path) -> None:
    key = keypair(tmp_path, "stranger")
    r = sftp(gateway_sftp, key, "ls\n", tmp_path)
    assert r.returncode != 0
    assert "Permission denied" in r.stderr


def test_vo_membership_rechecked_when_the_session_opens(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    gw, pki = gateway_posix, gateway_posix.pki
    alice = pki.users["alice"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    ac = make_voms_ac(
        alice.cert,
        pki.voms,
        pki.vo,
        ["/testvo", "/testvo/grid"],
        uri=pki.voms_uri,
        not_before=start,
        not_after=datetime.now(UTC) + timedelta(seconds=6),
    )
    gw.proxies["alice-short-ac"] = make_proxy(alice, acs=[ac]).write_proxy(tmp_path / "short.pem")
    key = keypair(tmp_path, "short")
    register(gw, key, "alice-short-ac")
    assert sftp(gateway_sftp, key, "ls\n", tmp_path).returncode == 0  # AC still valid
    time.sleep(
        max(0.0, (ac_end := start + timedelta(minutes=1, seconds=8)).timestamp() - time.time())
    )
    assert datetime.now(UTC) > ac_end - timedelta(seconds=1)
    r = sftp(gateway_sftp, key, "ls\n", tmp_path)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # registering again with a fresh VOMS proxy restores access
    gw.session("alice-voms").post(
        gw.url + "/sshkeys", data=key.with_suffix(".pub").read_text()
    ).raise_for_status()
    assert sftp(gateway_sftp, key, "ls\n", tmp_path).returncode == 0


@pytest.mark.parametrize(
    "command,message",
    [
        ("get /private/../etc/passwd x", "not found"),
        ("put up.txt /groups/grid/%2e%2e/x", "Permission denied"),
        ("put up.txt /public/not-allowed.txt", "Permission denied"),
    ],
)
def test_bad_input_refused(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path, command: str, message: str
) -> None:
    key = keypair(tmp_path)
    register(gateway_posix, key)
    (tmp_path / "up.txt").write_text("x")
    r = sftp(gateway_sftp, key, command + "\n", tmp_path)
    assert r.returncode != 0
    assert message.lower() in r.stderr.lower(), r.stderr
    assert not (tmp_path / "x").exists()


def test_backend_down_fails_and_other_areas_work(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    key = keypair(tmp_path)
    register(gateway_posix, key)
    (tmp_path / "up.txt").write_text("x")
    for cmd in ("ls /groups/down", "put up.txt /groups/down/up.txt", "get /groups/down/x x"):
        r = sftp(gateway_sftp, key, cmd + "\n", tmp_path)
        assert r.returncode != 0, cmd
    r = sftp(gateway_sftp, key, "put up.txt\nls\nrm up.txt\n", tmp_path)
    assert r.returncode == 0 and "up.txt" in r.stdout, r.stderr


def test_other_users_area_and_sibling_prefix(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    gw = gateway_posix
    alice_home = gw.home("alice-voms")
    gw.session("alice-voms").put(f"{gw.url}{alice_home}/mine.txt", data=b"alice's")
    key = keypair(tmp_path, "bob")
    register(gw, key, "bob-voms")
    for cmd in (
        f"get {alice_home}/mine.txt stolen",
        f"ls {alice_home}",
        f"put /etc/hostname {alice_home}x-f",
        f"mkdir {alice_home}/evil",
    ):
        r = sftp(gateway_sftp, key, cmd + "\n", tmp_path)
        assert r.returncode != 0, cmd
    assert not (tmp_path / "stolen").exists()
    names = [
        e["name"] for e in gw.session("alice-voms").get(f"{gw.url}{alice_home}").json()["entries"]
    ]
    assert "evil" not in names


def test_over_quota_upload_fails_and_leaves_nothing(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    gw = gateway_posix
    key = keypair(tmp_path, "q")
    register(gw, key, "bob-voms")
    (tmp_path / "big.bin").write_bytes(data_of(QUOTA + MiB))
    r = sftp(gateway_sftp, key, "put big.bin\n", tmp_path)
    assert r.returncode != 0
    home = gw.home("bob-voms")
    assert gw.session("bob-voms").head(f"{gw.url}{home}/big.bin").status_code == 404
    assert not any(".gw-" in str(p) for p in (gw.root / "local").rglob("*"))


def test_killed_client_leaves_no_partial_file(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    gw = gateway_posix
    key = keypair(tmp_path, "k")
    register(gw, key)
    d = f"/groups/grid/{uuid.uuid4().hex[:8]}"
    gw.session().request("MKCOL", gw.url + d).raise_for_status()
    (tmp_path / "huge.bin").write_bytes(data_of(200 * MiB))
    batch = tmp_path / "b"
    batch.write_text(f"put huge.bin {d}/huge.bin\n")
    proc = subprocess.Popen(
        [*sftp_cmd(gateway_sftp, key), "-b", str(batch), "g@127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    local = gw.root / "local" / d.lstrip("/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        p.stat().st_size > 0 for p in local.glob(".gw-*")
    ):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the client dies mid-upload
    proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and list(local.iterdir()):
        time.sleep(0.2)
    assert list(local.iterdir()) == []
    assert gw.session().get(f"{gw.url}{d}").json()["entries"] == []


# -- scp in SFTP mode, attributes (SETSTAT / FSETSTAT) ------------------------------------
def scp(front: Any, key: Path, *args: str) -> subprocess.CompletedProcess[str]:
    opts = sftp_cmd(front, key)[1:]  # the same options, for scp
    return subprocess.run(
        ["scp", "-s", "-q", *opts, *args], capture_output=True, text=True, timeout=120
    )


def test_scp_in_sftp_mode_exits_zero(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    gw = gateway_posix
    key = keypair(tmp_path)
    register(gw, key)
    src = tmp_path / "scp.bin"
    src.write_bytes(os.urandom(300_000))
    d = f"/groups/grid/{uuid.uuid4().hex[:8]}"
    gw.session().request("MKCOL", gw.url + d).raise_for_status()
    up = scp(gateway_sftp, key, str(src), f"grid@127.0.0.1:{d}/scp.bin")
    assert up.returncode == 0, up.stderr
    down = scp(gateway_sftp, key, f"grid@127.0.0.1:{d}/scp.bin", str(tmp_path / "back.bin"))
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()


def test_put_p_keeps_times_of_files_and_directories(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    gw = gateway_posix
    key = keypair(tmp_path)
    register(gw, key)
    tree = tmp_path / "tree"
    tree.mkdir()
    tree.chmod(0o755)
    (tree / "a.txt").write_text("alpha")
    (tree / "a.txt").chmod(0o644)
    os.utime(tree / "a.txt", (1_400_000_000, 1_500_000_000))
    os.utime(tree, (1_400_000_000, 1_300_000_000))
    d = f"/groups/grid/{uuid.uuid4().hex[:8]}"
    gw.session().request("MKCOL", gw.url + d).raise_for_status()
    r = sftp(gateway_sftp, key, f"put -p tree/a.txt {d}/a.txt\nput -rp tree {d}/tree\n", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "setstat" not in r.stderr and "unsupported" not in r.stderr.lower(), r.stderr
    stat = gw.session().get(f"{gw.url}{d}/a.txt", params={"op": "stat"}).json()
    assert stat["mtime"] == 1_500_000_000
    assert stat["adler32"] == f"{zlib.adler32(b'alpha') & 0xFFFFFFFF:08x}"
    inner = gw.session().get(f"{gw.url}{d}/tree/a.txt", params={"op": "stat"}).json()
    assert inner["mtime"] == 1_500_000_000
    listing = gw.session().get(f"{gw.url}{d}").json()["entries"]
    assert {e["name"]: e["mtime"] for e in listing}["tree"] == 1_300_000_000


def test_setstat_checks_access_and_refuses_what_it_cannot_do(
    gateway_posix: GatewayServer, gateway_sftp: Any, tmp_path: Path
) -> None:
    gw = gateway_posix
    alice_home = gw.home("alice-voms")
    gw.session().put(f"{gw.url}{alice_home}/attrs.txt?overwrite=1", data=b"0123456789")
    before = gw.session().get(f"{gw.url}{alice_home}/attrs.txt", params={"op": "stat"}).json()
    key = keypair(tmp_path)
    register(gw, key)
    # a mode the gateway does not keep: refused, nothing claimed
    r = sftp(gateway_sftp, key, "chmod 600 attrs.txt\n", tmp_path)
    assert r.returncode != 0 and "unsupported" in r.stderr.lower(), r.stderr
    assert sftp(gateway_sftp, key, "chmod 644 attrs.txt\n", tmp_path).returncode == 0
    assert sftp(gateway_sftp, key, "chown 1000 attrs.txt\n", tmp_path).returncode != 0
    # another user cannot touch alice's file (it does not exist for them), nor /public
    bob = keypair(tmp_path, "bob")
    register(gw, bob, "bob-voms")
    r = sftp(gateway_sftp, bob, f"chmod 644 {alice_home}/attrs.txt\n", tmp_path)
    assert r.returncode != 0 and "no such file" in r.stderr.lower(), r.stderr
    gw.session("bob-dm").put(f"{gw.url}/public/attrs-{uuid.uuid4().hex[:6]}", data=b"x")
    r = sftp(gateway_sftp, bob, "chmod 644 /public\n", tmp_path)
    assert r.returncode != 0 and "permission denied" in r.stderr.lower(), r.stderr
    # truncation and times through paramiko's client (OpenSSH's sftp has no such commands)
    with paramiko_client(gateway_sftp, key) as client, paramiko_client(gateway_sftp, bob) as other:
        with pytest.raises(OSError, match="unsupported"):
            client.truncate(f"{alice_home}/attrs.txt", 3)
        client.truncate(f"{alice_home}/attrs.txt", 10)  # already true
        with pytest.raises(FileNotFoundError):
            other.utime(f"{alice_home}/attrs.txt", (1_000_000_000, 1_000_000_000))
        client.utime(f"{alice_home}/attrs.txt", (1_100_000_000, 1_200_000_000))
    after = gw.session().get(f"{gw.url}{alice_home}/attrs.txt", params={"op": "stat"}).json()
    assert gw.session().get(f"{gw.url}{alice_home}/attrs.txt").content == b"0123456789"
    assert after["mtime"] == 1_200_000_000 != before["mtime"]
    assert after["sha256"] == before["sha256"]


class paramiko_client:  # noqa: N801 - used as a context manager
    """paramiko's SFTP client with a test key (for requests OpenSSH's sftp cannot make)."""

    def __init__(self, front: Any, key: Path) -> None:
        import paramiko

        self.transport = paramiko.Transport(("127.0.0.1", front.port))
        self.transport.connect(
            username="grid", pkey=paramiko.Ed25519Key.from_private_key_file(str(key))
        )
        self.client = paramiko.SFTPClient.from_transport(self.transport)

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.transport.close()
