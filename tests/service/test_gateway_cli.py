"""``gproc data`` against the gateway's HTTPS front, as the user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

from tests.fixtures.gateway import GatewayServer

GPROC = [sys.executable, "-m", "gproc.services.cli"]


def gproc(
    gw: GatewayServer, *args: str, who: str = "alice-voms"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GPROC_GATEWAY_URL": gw.url,
        "X509_USER_PROXY": str(gw.proxy(who)),
        "X509_CERT_DIR": str(gw.pki.ca_dir),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [*GPROC, "data", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_data_commands_round_trip(gateway_posix: GatewayServer, tmp_path: Path) -> None:
    gw = gateway_posix
    d = f"/groups/grid/cli-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(2_500_000))
    assert gproc(gw, "mkdir", "-p", d + "/sub").returncode == 0
    put = gproc(gw, "put", str(src), d + "/")
    assert put.returncode == 0, put.stderr
    assert f"adler32 {zlib.adler32(src.read_bytes()) & 0xFFFFFFFF:08x}" in put.stdout
    assert "in.bin" in put.stderr  # the progress bar
    again = gproc(gw, "put", str(src), d + "/in.bin")
    assert again.returncode == 1 and "AlreadyExists" in again.stderr
    assert gproc(gw, "put", "-f", str(src), d + "/in.bin").returncode == 0
    listing = json.loads(gproc(gw, "ls", "--json", d).stdout)
    assert [(e["name"], e["type"]) for e in listing] == [("in.bin", "file"), ("sub", "directory")]
    assert "in.bin" in gproc(gw, "ls", d).stdout
    stat = json.loads(gproc(gw, "stat", d + "/in.bin").stdout)
    assert stat["size"] == src.stat().st_size
    out = tmp_path / "out.bin"
    get = gproc(gw, "get", d + "/in.bin", str(out))
    assert get.returncode == 0, get.stderr
    assert out.read_bytes() == src.read_bytes()
    assert gproc(gw, "rm", d + "/in.bin", d + "/sub").returncode == 0
    assert json.loads(gproc(gw, "ls", "--json", d).stdout) == []


def test_readable_errors(gateway_posix: GatewayServer, tmp_path: Path) -> None:
    gw = gateway_posix
    missing = gproc(gw, "get", "/groups/grid/nope", str(tmp_path / "x"))
    assert missing.returncode == 1
    assert "Error: NotFound: /groups/grid/nope: no such file or directory" in missing.stderr
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())
    denied = gproc(gw, "mkdir", "/public/x")
    assert denied.returncode == 1 and "PermissionDenied" in denied.stderr
    bad = gproc(gw, "stat", "/groups/grid/%2e%2e")
    assert bad.returncode == 1 and "InvalidPath" in bad.stderr
    down = gproc(gw, "ls", "/groups/down")
    assert down.returncode == 1 and "BackendUnavailable" in down.stderr
    env_less = subprocess.run(
        [*GPROC, "data", "--url", gw.url, "--proxy", str(tmp_path / "none.pem"), "ls"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_less.returncode == 2 and "no proxy at" in env_less.stderr
