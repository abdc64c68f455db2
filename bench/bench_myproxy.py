"""MyProxy logon and renewal: gproc's client (security/myproxy.py, in process) vs the
stock ``myproxy-logon`` (a process per call, as a portal shelling out to it would),
against one real ``myproxy-server`` with the test PKI. The stock client is the
baseline of the ratios.

Run from the repository root (it starts the server the tests use):
    .venv/bin/python bench/bench_myproxy.py [--calls 20] [--host 127.0.0.1] [--port 0]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gproc.security.myproxy import logon, renew  # noqa: E402
from gproc.security.pki import make_test_pki  # noqa: E402
from tests.fixtures.myproxy import MyProxyStack, start_myproxy  # noqa: E402

PASS = "bench-pass-1"


def _ms(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(median, p95) of n calls in milliseconds."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def _stock(argv: list[str], env: dict[str, str], stdin: str) -> None:
    done = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr.strip()}")


def run(mp: MyProxyStack, tmp: Path, calls: int) -> None:
    mp.store("alice", "alice", PASS)
    mp.store_renewable("alice", "alice-renew")
    server, pki = mp.server(), mp.pki
    out = tmp / "stock.pem"
    stock_logon = ["myproxy-logon", "-l", "alice", "-S", "-t", "1", "-o", str(out)]
    ours_proxy = tmp / "ours.pem"
    ours_proxy.write_bytes(logon(server, "alice", PASS, 3600))
    ours_proxy.chmod(0o600)
    host_env = {
        **mp.env(),
        "X509_USER_CERT": str(pki.host_cert),
        "X509_USER_KEY": str(pki.host_key),
    }
    stock_renew = ["myproxy-logon", "-l", "alice-renew", "-n", "-a", str(ours_proxy)]
    stock_renew += ["-t", "1", "-o", str(tmp / "renewed.pem")]
    current = ours_proxy.read_bytes()

    rows = [
        (
            "logon, stock myproxy-logon",
            _ms(lambda: _stock(stock_logon, mp.env(), PASS + "\n"), calls),
        ),
        ("logon, gproc client", _ms(lambda: logon(server, "alice", PASS, 3600), calls)),
        ("renewal, stock myproxy-logon -a", _ms(lambda: _stock(stock_renew, host_env, ""), calls)),
        (
            "renewal, gproc client",
            _ms(
                lambda: renew(
                    server,
                    current,
                    "alice-renew",
                    3600,
                    client_cert=pki.host_cert,
                    client_key=pki.host_key,
                ),
                calls,
            ),
        ),
    ]
    print(f"myproxy-server on {mp.host}:{mp.port}, {calls} calls each, 2048-bit keys")
    for label, (med, p95) in rows:
        print(f"{label:34s} median {med:7.1f} ms  p95 {p95:7.1f} ms")
    print(f"ratio logon   stock/gproc: {rows[0][1][0] / rows[1][1][0]:.2f}x")
    print(f"ratio renewal stock/gproc: {rows[2][1][0] / rows[3][1][0]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--host", default="127.0.0.1", help="address the MyProxy server listens on")
    ap.add_argument("--port", type=int, default=0, help="its port (0: a free one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_test_pki(Path(tmp) / "pki")
        mp = start_myproxy(pki, args.host, args.port)
        try:
            run(mp, Path(tmp), args.calls)
        finally:
            mp.stop()
            shutil.rmtree(mp.root, ignore_errors=True)


if __name__ == "__main__":
    main()
