"""Data gateway throughput on loopback: HTTPS and SFTP fronts vs OpenSSH and a local copy.

One run measures, on the same machine and files:

* ``local``      - plain local copy (``cp``, ``cp -r``): the HTTPS goal's baseline;
* ``openssh``    - the OpenSSH ``sftp`` client against the system's sshd/sftp-server
                   (started here on a free port with a throw-away config): the SFTP
                   goal's baseline;
* ``gw-sftp``    - the same OpenSSH ``sftp`` client against the gateway's SFTP front;
* ``gw-https``   - ``curl`` (one process, keep-alive) against the gateway's HTTPS front
                   with a VOMS proxy.

for a big file (default 1 GiB) and many small files (default 1,000 x 10 KiB), put and
get, and prints MB/s and the ratios gw-sftp/openssh and gw-https/local. The gateway
runs in this process on a POSIX backend (a local directory), with the test PKI.

    .venv/bin/python bench/bench_gateway.py [--big-mib 1024] [--small-count 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gproc.security.chain import Validator  # noqa: E402
from gproc.security.pki import make_test_pki  # noqa: E402
from gproc.security.tls import TLSConfig  # noqa: E402
from gproc.security.truststore import TrustStore  # noqa: E402
from gproc.security.voms import VomsTrust  # noqa: E402
from gproc.services.gateway_app import build_parts, make_https_front  # noqa: E402
from gproc.settings import GatewaySettings, Settings  # noqa: E402
from gproc.storage_gateway.namespace import Namespace  # noqa: E402
from gproc.storage_gateway.sftp_front import SftpFront, load_host_key  # noqa: E402

SSH_OPTS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "IdentitiesOnly=yes",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_files(base: Path, big_mib: int, count: int, small_kib: int) -> tuple[Path, Path]:
    big = base / "big.bin"
    with big.open("wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(big_mib):
            fh.write(block)
    small = base / "small"
    small.mkdir()
    for i in range(count):
        (small / f"f{i:05d}.dat").write_bytes(os.urandom(small_kib * 1024))
    return big, small


def start_sshd(base: Path, pubkey: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The system sshd with sftp-server, on a free port, key auth for root only."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    hostkey = base / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)])
    auth = base / "authorized_keys"
    shutil.copy(pubkey, auth)
    port = free_port()
    conf = base / "sshd_config"
    conf.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\n"
        f"AuthorizedKeysFile {auth}\nStrictModes no\nPermitRootLogin yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"PidFile {base / 'sshd.pid'}\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    raise RuntimeError("sshd did not start")


def sftp_batch(port: int, key: Path, user: str, commands: str, cwd: Path) -> None:
    batch = cwd / "batch.txt"
    batch.write_text(commands)
    run(
        [
            "sftp",
            "-q",
            "-i",
            str(key),
            "-P",
            str(port),
            *SSH_OPTS,
            "-b",
            str(batch),
            f"{user}@127.0.0.1",
        ],
        cwd=cwd,
    )


def curl_config(path: Path, pairs: list[tuple[str, str]], upload: bool) -> Path:
    lines = []
    for local, url in pairs:
        lines.append(f'{"upload-file" if upload else "output"} = "{local}"')
        lines.append(f'url = "{url}"')
    path.write_text("\n".join(lines) + "\n")
    return path


class Bench:
    def __init__(self, base: Path, big: Path, small: Path) -> None:
        self.base, self.big, self.small = base, big, small
        self.results: dict[tuple[str, str, str], float] = {}
        self.count = len(list(small.iterdir()))

    def record(self, front: str, what: str, op: str, seconds: float, nbytes: int) -> None:
        mbs = nbytes / seconds / 1e6
        self.results[(front, what, op)] = mbs
        print(f"  {front:9s} {what:6s} {op:4s} {seconds:8.2f} s  {mbs:9.1f} MB/s", flush=True)

    def sizes(self) -> tuple[int, int]:
        small = sum(p.stat().st_size for p in self.small.iterdir())
        return self.big.stat().st_size, small


def bench_local(b: Bench) -> None:
    big, small = b.sizes()
    dst = b.base / "local-dst"
    dst.mkdir()
    b.record("local", "big", "put", timed(lambda: run(["cp", str(b.big), str(dst / "a")])), big)
    b.record("local", "big", "get", timed(lambda: run(["cp", str(dst / "a"), str(dst / "b")])), big)
    b.record(
        "local",
        "small",
        "put",
        timed(lambda: run(["cp", "-r", str(b.small), str(dst / "s1")])),
        small,
    )
    b.record(
        "local",
        "small",
        "get",
        timed(lambda: run(["cp", "-r", str(dst / "s1"), str(dst / "s2")])),
        small,
    )
    shutil.rmtree(dst)


def bench_sftp(b: Bench, front: str, port: int, key: Path, user: str, remote: str) -> None:
    big, small = b.sizes()
    dl = b.base / f"dl-{front}"
    dl.mkdir()
    sftp_batch(port, key, user, f"mkdir {remote}\n", b.base)
    b.record(
        front,
        "big",
        "put",
        timed(lambda: sftp_batch(port, key, user, f"put {b.big} {remote}/big.bin\n", b.base)),
        big,
    )
    b.record(
        front,
        "big",
        "get",
        timed(lambda: sftp_batch(port, key, user, f"get {remote}/big.bin {dl}/big.bin\n", b.base)),
        big,
    )
    b.record(
        front,
        "small",
        "put",
        timed(lambda: sftp_batch(port, key, user, f"put -r {b.small} {remote}/small\n", b.base)),
        small,
    )
    b.record(
        front,
        "small",
        "get",
        timed(lambda: sftp_batch(port, key, user, f"get -r {remote}/small {dl}/small\n", b.base)),
        small,
    )
    assert (dl / "small").is_dir() and len(list((dl / "small").iterdir())) == b.count
    assert (dl / "big.bin").stat().st_size == big
    shutil.rmtree(dl)


def bench_https(b: Bench, url: str, proxy: Path, ca: Path, remote: str) -> None:
    big, small = b.sizes()
    dl = b.base / "dl-https"
    dl.mkdir()
    curl = ["curl", "-sS", "-f", "--cert", str(proxy), "--cacert", str(ca)]
    run([*curl, "-X", "MKCOL", f"{url}{remote}"])
    run([*curl, "-X", "MKCOL", f"{url}{remote}/small"])
    b.record(
        "gw-https",
        "big",
        "put",
        timed(lambda: run([*curl, "-T", str(b.big), f"{url}{remote}/big.bin"])),
        big,
    )
    b.record(
        "gw-https",
        "big",
        "get",
        timed(lambda: run([*curl, "-o", str(dl / "big.bin"), f"{url}{remote}/big.bin"])),
        big,
    )
    names = sorted(p.name for p in b.small.iterdir())
    up = curl_config(
        b.base / "up.cfg",
        [(str(b.small / n), f"{url}{remote}/small/{n}") for n in names],
        upload=True,
    )
    b.record("gw-https", "small", "put", timed(lambda: run([*curl, "-K", str(up)])), small)
    (dl / "small").mkdir()
    down = curl_config(
        b.base / "down.cfg",
        [(str(dl / "small" / n), f"{url}{remote}/small/{n}") for n in names],
        upload=False,
    )
    b.record("gw-https", "small", "get", timed(lambda: run([*curl, "-K", str(down)])), small)
    assert (dl / "big.bin").stat().st_size == big
    assert len(list((dl / "small").iterdir())) == b.count
    shutil.rmtree(dl)


def report(b: Bench) -> None:
    print("\nratios (same run):")
    for what in ("big", "small"):
        for op in ("put", "get"):
            r = b.results
            sftp = r[("gw-sftp", what, op)] / r[("openssh", what, op)]
            https = r[("gw-https", what, op)] / r[("local", what, op)]
            print(
                f"  {what:6s} {op}: gw-sftp/openssh {sftp:5.2f} (goal >= 0.5)   "
                f"gw-https/local {https:5.2f} (goal >= 0.8)"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--small-count", type=int, default=1000)
    ap.add_argument("--small-kib", type=int, default=10)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gproc-bench-gw-"))
    sshd = None
    https = sftp = None
    try:
        pki = make_test_pki(base / "pki")
        ca = base / "ca.pem"
        ca.write_bytes(pki.ca.cert_pem())
        big, small = make_files(base, args.big_mib, args.small_count, args.small_kib)
        key = base / "id_ed25519"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        sshd, ssh_port = start_sshd(base, key.with_suffix(".pub"))

        validator = Validator(TrustStore(pki.ca_dir), VomsTrust(pki.vomsdir))
        ns = Namespace.from_dict(
            {
                "backends": {
                    "local": {"type": "posix", "root": str(base / "store"), "create": True}
                },
                "area": [
                    {
                        "path": "/groups/grid",
                        "backend": "local",
                        "root": "/grid",
                        "read": ["/testvo/grid/*"],
                        "write": ["/testvo/grid/*"],
                    }
                ],
            }
        )
        settings = Settings(
            state_dir=base / "state", gateway=GatewaySettings(sshkeys_dir=base / "keys")
        )
        parts = build_parts(settings, validator, ns)
        https = make_https_front(
            parts,
            validator,
            TLSConfig(pki.host_cert, pki.host_key, pki.ca_dir),
            "127.0.0.1",
            0,
            threads=8,
        ).start()
        sftp = SftpFront(
            parts.gateway, parts.keys, load_host_key(base / "gw_host_key"), "127.0.0.1", 0
        ).start()
        proxy = pki.proxies["alice-voms"]
        run(
            [
                "curl",
                "-sS",
                "-f",
                "--cert",
                str(proxy),
                "--cacert",
                str(ca),
                "--data-binary",
                f"@{key.with_suffix('.pub')}",
                f"{https.url}/sshkeys",
            ]
        )

        b = Bench(base, big, small)
        print(
            f"files: big {args.big_mib} MiB, small {args.small_count} x {args.small_kib} KiB;"
            f" {os.cpu_count()} CPUs, loopback"
        )
        bench_local(b)
        bench_sftp(b, "openssh", ssh_port, key, "root", str(base / "sshd-dst"))
        bench_sftp(b, "gw-sftp", sftp.port, key, "grid", "/groups/grid/sftp")
        bench_https(b, https.url, proxy, ca, "/groups/grid/https")
        report(b)
    finally:
        if https is not None:
            https.stop()
        if sftp is not None:
            sftp.stop()
        if sshd is not None:
            os.killpg(sshd.pid, signal.SIGTERM)
            sshd.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
