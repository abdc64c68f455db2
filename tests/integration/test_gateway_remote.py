"""The HTTPS front on the real remote backends: a GlusterFS volume (libgfapi) and HDFS
(WebHDFS), each mounted as areas of one namespace, with curl and requests."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gproc.security.pki import TestPKI
from gproc.storage_gateway.backends.glusterfs import GlusterBackend
from gproc.storage_gateway.backends.hdfs import HdfsBackend
from tests.fixtures.gateway import GatewayServer, start_gateway
from tests.fixtures.gluster import GlusterServer
from tests.fixtures.hdfs import HdfsServer

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def remote_gateway(
    test_pki: TestPKI,
    gluster_server: GlusterServer,
    hdfs_server: HdfsServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayServer]:
    root = tmp_path_factory.mktemp("gateway-remote")
    base = f"/gw-{uuid.uuid4().hex[:8]}"
    GlusterBackend(gluster_server.host, gluster_server.volume).mkdir(base, parents=True)
    HdfsBackend(hdfs_server.http_url, "/", user=hdfs_server.user).mkdir(
        "/gproc" + base, parents=True
    )
    namespace = {
        "backends": {
            "gluster": {
                "type": "glusterfs",
                "host": gluster_server.host,
                "volume": gluster_server.volume,
                "root": base,
            },
            "hdfs": {
                "type": "hdfs",
                "url": hdfs_server.http_url,
                "user": hdfs_server.user,
                "root": "/gproc" + base,
            },
        },
        "area": [
            {
                "path": "/private",
                "type": "private",
                "backend": "hdfs",
                "root": "/private",
                "members": ["/testvo/*"],
                "quota": 8 * MiB,
            },
            {
                "path": "/groups/grid",
                "backend": "gluster",
                "root": "/grid",
                "read": ["/testvo/grid/*"],
                "write": ["/testvo/grid/*"],
            },
        ],
    }
    srv = start_gateway(test_pki, root, namespace)
    try:
        yield srv
    finally:
        srv.server.stop()


@pytest.mark.parametrize("area", ["/groups/grid", "private"])
def test_round_trip_on_remote_backends(
    remote_gateway: GatewayServer, tmp_path: Path, area: str
) -> None:
    gw = remote_gateway
    base = gw.home("alice-voms") if area == "private" else area
    d = f"{base}/{uuid.uuid4().hex[:8]}"
    s = gw.session()
    assert s.request("MKCOL", gw.url + d).status_code == 201
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3 * MiB + 1))
    put = gw.curl("-f", "-T", str(src), f"{gw.url}{d}/f.bin")
    assert put.returncode == 0, put.stderr
    got = s.get(f"{gw.url}{d}/f.bin")
    assert got.content == src.read_bytes()
    part = s.get(f"{gw.url}{d}/f.bin", headers={"Range": "bytes=2097150-2097160"})
    assert part.status_code == 206 and part.content == src.read_bytes()[2097150:2097161]
    head = s.head(f"{gw.url}{d}/f.bin")
    assert int(head.headers["Content-Length"]) == src.stat().st_size
    assert "adler32=" in head.headers["Digest"]
    assert [e["name"] for e in s.get(f"{gw.url}{d}").json()["entries"]] == ["f.bin"]
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert s.get(f"{gw.url}{d}/f.bin", params={"op": "stat"}).json()["sha256"] == sha
    assert s.delete(f"{gw.url}{d}/f.bin").status_code == 200
    assert s.delete(f"{gw.url}{d}").status_code == 200


def test_quota_and_other_users_on_hdfs(remote_gateway: GatewayServer) -> None:
    gw = remote_gateway
    home = gw.home("bob-voms")
    bob = gw.session("bob-voms")
    r = bob.put(f"{gw.url}{home}/big", data=b"x" * (9 * MiB))
    assert r.status_code == 507
    assert bob.get(f"{gw.url}{home}").json()["entries"] == []
    assert gw.session("alice-voms").get(f"{gw.url}{home}").status_code == 404
    assert bob.get(f"{gw.url}/groups/grid").status_code == 403  # bob is not in /testvo/grid
