"""Data gateway throughput on loopback: HTTPS and SFTP fronts vs OpenSSH and a local copy.

One run measures, on the same machine and files:

* ``local``      - plain local copy (``cp``, ``cp -r``): the HTTPS goal's baseline;
* ``openssh``    - the OpenSSH ``sftp`` client against the system's sshd/sftp-server
                   (started here on a free port with a throw-away config): the SFTP
                   goal's baseline;
* ``gw-sftp``    - the same OpenSSH ``sftp`` client against the gateway's SFTP front;
* ``nginx``      - ``curl`` (one process, keep-alive) against Debian's nginx WebDAV
                   (``dav_methods PUT``) over TLS with client certificates: the HTTPS
                   small-file goal's baseline (skipped, saying so, when nginx is absent;
                   ``bin/setup`` installs it);
* ``gw-https``   - the same ``curl`` against the gateway's HTTPS front with a VOMS proxy.

for a big file (default 1 GiB) and many small files (default 1,000 x 10 KiB), put and
get, and prints MB/s and each goal's ratio. The gateway runs in this process on a
POSIX backend (a local directory), with the test PKI. Servers listen on ``--host``;
``--port P`` puts them on P (gateway HTTPS), P+1 (gateway SFTP), P+2 (sshd), P+3
(nginx) instead of free ports. The gateway's area has a quota (``--quota``, as
private areas have), so uploads account for usage.

    .venv/bin/python bench/bench_gateway.py [--big-mib 1024] [--small-count 1000]
        [--host 127.0.0.1] [--port 0] [--only small|big] [--repeat N] [--no-fsync]
        [--fronts local,openssh,gw-sftp,nginx,gw-https] [--quota '1 TiB']
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


NGINX = "/usr/sbin/nginx"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, what: str) -> None:
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on {host}:{port}")


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


def start_sshd(base: Path, pubkey: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    """The system sshd with sftp-server, key auth for root only."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    hostkey = base / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)])
    auth = base / "authorized_keys"
    shutil.copy(pubkey, auth)
    conf = base / "sshd_config"
    conf.write_text(
        f"Port {port}\nListenAddress {host}\nHostKey {hostkey}\n"
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
    wait_port(host, port, "sshd")
    return proc


def start_nginx(
    base: Path, host: str, port: int, cert: Path, key: Path, ca: Path
) -> subprocess.Popen[bytes] | None:
    """Debian's nginx as a WebDAV server over TLS, client certificates required (the
    user's end-entity certificate: OpenSSL in nginx does not accept proxy
    certificates). One worker, keep-alive without a request limit, as the gateway."""
    if not Path(NGINX).exists():
        print("  nginx: not installed (bin/setup installs it); its baseline is skipped")
        return None
    root = base / "nginx"
    (root / "dav").mkdir(parents=True)
    (root / "tmp").mkdir()
    conf = root / "nginx.conf"
    conf.write_text(
        f"""daemon off; user root root; worker_processes 1; pid {root}/nginx.pid;
error_log {root}/error.log error;
events {{ worker_connections 64; }}
http {{
  access_log off; sendfile on; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path {root}/tmp; client_max_body_size 0;
  server {{
    listen {host}:{port} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_client_certificate {ca}; ssl_verify_client on; ssl_verify_depth 5;
    location / {{
      root {root}/dav; dav_methods PUT DELETE MKCOL; create_full_put_path on;
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(conf)],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_port(host, port, "nginx")
    return proc


def sftp_batch(
    port: int, key: Path, user: str, commands: str, cwd: Path, host: str = "127.0.0.1"
) -> None:
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
            f"{user}@{host}",
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
    def __init__(self, base: Path, big: Path, small: Path, host: str, parts: set[str]) -> None:
        self.base, self.big, self.small, self.host = base, big, small, host
        self.parts = parts  # "big", "small"
        self.results: dict[tuple[str, str, str], float] = {}
        self.count = len(list(small.iterdir()))

    def record(self, front: str, what: str, op: str, seconds: float, nbytes: int) -> None:
        mbs = nbytes / seconds / 1e6
        key = (front, what, op)
        self.results[key] = max(mbs, self.results.get(key, 0.0))  # best of the rounds
        print(f"  {front:9s} {what:6s} {op:4s} {seconds:8.2f} s  {mbs:9.1f} MB/s", flush=True)

    def sizes(self) -> tuple[int, int]:
        small = sum(p.stat().st_size for p in self.small.iterdir())
        return self.big.stat().st_size, small


def bench_local(b: Bench) -> None:
    big, small = b.sizes()
    dst = b.base / "local-dst"
    dst.mkdir()
    if "big" in b.parts:
        put = timed(lambda: run(["cp", str(b.big), str(dst / "a")]))
        b.record("local", "big", "put", put, big)
        get = timed(lambda: run(["cp", str(dst / "a"), str(dst / "b")]))
        b.record("local", "big", "get", get, big)
    if "small" in b.parts:
        put = timed(lambda: run(["cp", "-r", str(b.small), str(dst / "s1")]))
        b.record("local", "small", "put", put, small)
        get = timed(lambda: run(["cp", "-r", str(dst / "s1"), str(dst / "s2")]))
        b.record("local", "small", "get", get, small)
    shutil.rmtree(dst)


def bench_sftp(b: Bench, front: str, port: int, key: Path, user: str, remote: str) -> None:
    big, small = b.sizes()
    dl = b.base / f"dl-{front}"
    dl.mkdir()

    def batch(commands: str) -> Callable[[], None]:
        return lambda: sftp_batch(port, key, user, commands, b.base, b.host)

    batch(f"mkdir {remote}\n")()
    if "big" in b.parts:
        b.record(front, "big", "put", timed(batch(f"put {b.big} {remote}/big.bin\n")), big)
        b.record(front, "big", "get", timed(batch(f"get {remote}/big.bin {dl}/big.bin\n")), big)
        assert (dl / "big.bin").stat().st_size == big
    if "small" in b.parts:
        b.record(front, "small", "put", timed(batch(f"put -r {b.small} {remote}/small\n")), small)
        b.record(front, "small", "get", timed(batch(f"get -r {remote}/small {dl}/small\n")), small)
        assert (dl / "small").is_dir() and len(list((dl / "small").iterdir())) == b.count
    shutil.rmtree(dl)


def bench_http(b: Bench, front: str, curl: list[str], url: str, slash: str = "") -> None:
    """Put and get through one keep-alive ``curl`` process per step (``slash``: what
    the server wants after a collection's name in MKCOL: WebDAV's "/" for nginx)."""
    big, small = b.sizes()
    dl = b.base / f"dl-{front}"
    dl.mkdir()
    run([*curl, "-X", "MKCOL", f"{url}{slash}"])
    if "big" in b.parts:
        put = timed(lambda: run([*curl, "-T", str(b.big), f"{url}/big.bin"]))
        b.record(front, "big", "put", put, big)
        get = timed(lambda: run([*curl, "-o", str(dl / "big.bin"), f"{url}/big.bin"]))
        b.record(front, "big", "get", get, big)
        head = timed(lambda: run([*curl, "-I", f"{url}/big.bin"]))
        print(f"  {front:9s} big    HEAD {head:8.3f} s  (the gateway answers with its Digest)")
        assert (dl / "big.bin").stat().st_size == big
    if "small" in b.parts:
        run([*curl, "-X", "MKCOL", f"{url}/small{slash}"])
        names = sorted(p.name for p in b.small.iterdir())
        up = curl_config(
            b.base / f"up-{front}.cfg",
            [(str(b.small / n), f"{url}/small/{n}") for n in names],
            upload=True,
        )
        b.record(front, "small", "put", timed(lambda: run([*curl, "-K", str(up)])), small)
        (dl / "small").mkdir()
        down = curl_config(
            b.base / f"down-{front}.cfg",
            [(str(dl / "small" / n), f"{url}/small/{n}") for n in names],
            upload=False,
        )
        b.record(front, "small", "get", timed(lambda: run([*curl, "-K", str(down)])), small)
        assert len(list((dl / "small").iterdir())) == b.count
    shutil.rmtree(dl)


GOALS = [  # (what, op, front, baseline, goal)
    ("small", "put", "gw-sftp", "openssh", 0.5),
    ("small", "get", "gw-sftp", "openssh", 0.7),
    ("big", "put", "gw-sftp", "openssh", 0.8),
    ("big", "get", "gw-sftp", "openssh", 0.8),
    ("small", "put", "gw-https", "nginx", 0.5),
    ("small", "get", "gw-https", "nginx", 0.5),
    ("big", "put", "gw-https", "local", 0.8),
    ("big", "get", "gw-https", "local", 0.8),
    ("small", "put", "gw-https", "local", None),
    ("small", "get", "gw-https", "local", None),
    ("big", "put", "nginx", "local", None),  # what TLS in C reaches against cp
    ("big", "get", "nginx", "local", None),
]


def report(b: Bench) -> None:
    print("\nratios (same run, best round of each):")
    r = b.results
    for what, op, front, base, goal in GOALS:
        if (front, what, op) not in r or (base, what, op) not in r:
            continue
        ratio = r[(front, what, op)] / r[(base, what, op)]
        verdict = "" if goal is None else f"goal >= {goal}: {'met' if ratio >= goal else 'NOT met'}"
        print(f"  {what:5s} {op}  {front:8s}/{base:8s} {ratio:6.3f}   {verdict}")


def gateway_namespace(base: Path, quota: str | None, fsync: bool) -> Namespace:
    store = {"type": "posix", "root": str(base / "store"), "create": True, "fsync": fsync}
    return Namespace.from_dict(
        {
            "backends": {"local": store},
            "area": [
                {
                    "path": "/groups/grid",
                    "backend": "local",
                    "root": "/grid",
                    "read": ["/testvo/grid/*"],
                    "write": ["/testvo/grid/*"],
                    **({"quota": quota} if quota else {}),
                }
            ],
        }
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--small-count", type=int, default=1000)
    ap.add_argument("--small-kib", type=int, default=10)
    ap.add_argument("--host", default="127.0.0.1", help="address every bench server listens on")
    ap.add_argument("--port", type=int, default=0, help="first of 4 ports (0: free ports)")
    ap.add_argument("--only", choices=("big", "small"), help="run only big or small files")
    ap.add_argument(
        "--fronts",
        default="local,openssh,gw-sftp,nginx,gw-https",
        help="comma-separated subset to run (e.g. gw-sftp alone, under a profiler)",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds of every front; the best of each is kept"
    )
    ap.add_argument(
        "--no-fsync",
        action="store_true",
        help="gateway backend with fsync = false (as the stock servers, which do not fsync)",
    )
    ap.add_argument(
        "--quota", default="1 TiB", help="quota of the gateway's area ('' for none), as usual"
    )
    args = ap.parse_args()
    host = args.host
    ports = [args.port + i if args.port else free_port(host) for i in range(4)]
    base = Path(tempfile.mkdtemp(prefix="gproc-bench-gw-"))
    procs: list[subprocess.Popen[bytes]] = []
    https = sftp = None
    try:
        pki = make_test_pki(base / "pki")
        ca = base / "ca.pem"
        ca.write_bytes(pki.ca.cert_pem())
        big_mib = 0 if args.only == "small" else args.big_mib
        small_count = 0 if args.only == "big" else args.small_count
        big, small = make_files(base, big_mib, small_count, args.small_kib)
        key = base / "id_ed25519"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        procs.append(start_sshd(base, key.with_suffix(".pub"), host, ports[2]))
        nginx = start_nginx(base, host, ports[3], pki.host_cert, pki.host_key, ca)
        if nginx is not None:
            procs.append(nginx)

        validator = Validator(TrustStore(pki.ca_dir), VomsTrust(pki.vomsdir))
        settings = Settings(
            state_dir=base / "state", gateway=GatewaySettings(sshkeys_dir=base / "keys")
        )
        parts = build_parts(
            settings, validator, gateway_namespace(base, args.quota, not args.no_fsync)
        )
        tls = TLSConfig(pki.host_cert, pki.host_key, pki.ca_dir)
        https = make_https_front(parts, validator, tls, host, ports[0], threads=8).start()
        host_key = load_host_key(base / "gw_host_key")
        sftp = SftpFront(parts.gateway, parts.keys, host_key, host, ports[1]).start()
        proxy = pki.proxies["alice-voms"]
        curl = ["curl", "-sS", "-f", "--cacert", str(ca)]
        gw_curl = [*curl, "--cert", str(proxy)]
        pub = f"@{key.with_suffix('.pub')}"
        run([*gw_curl, "--data-binary", pub, f"{https.url}/sshkeys"])

        b = Bench(base, big, small, host, {args.only} if args.only else {"big", "small"})
        print(
            f"files: big {args.big_mib} MiB, small {args.small_count} x {args.small_kib} KiB;"
            f" {os.cpu_count()} CPUs, {host}"
        )
        fronts = set(args.fronts.split(","))
        for n in range(args.repeat):  # rounds interleave the fronts: load hits all alike
            print(f"round {n + 1} of {args.repeat}", flush=True)
            if "local" in fronts:
                bench_local(b)
            if "openssh" in fronts:
                bench_sftp(b, "openssh", ports[2], key, "root", str(base / f"sshd-dst{n}"))
            if "gw-sftp" in fronts:
                bench_sftp(b, "gw-sftp", sftp.port, key, "grid", f"/groups/grid/sftp{n}")
            if nginx is not None and "nginx" in fronts:
                user = [
                    *curl,
                    "--cert",
                    str(pki.user_cert["alice"]),
                    "--key",
                    str(pki.user_key["alice"]),
                ]
                bench_http(b, "nginx", user, f"https://{host}:{ports[3]}/dav{n}", "/")
            if "gw-https" in fronts:
                bench_http(b, "gw-https", gw_curl, f"{https.url}/groups/grid/https{n}")
        report(b)
    finally:
        if https is not None:
            https.stop()
        if sftp is not None:
            sftp.stop()
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
