"""Cost of validating a proxy chain carrying one VOMS AC: cold (full OpenSSL path
validation + AC verification) vs warm (identity cache hit). Goal: warm < 1 ms.

Run: .venv/bin/python bench/bench_validate.py [iterations]"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gproc.security.cache import IdentityCache
from gproc.security.chain import Validator
from gproc.security.pki import make_test_pki
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust


def _per_call_us(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(median, p95) of n calls, in microseconds."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main(n: int = 300) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_test_pki(Path(tmp))
        chain = pki.proxies["alice-voms"].read_bytes()
        trust, voms = TrustStore(pki.ca_dir), VomsTrust(pki.vomsdir)
        cold = Validator(trust, voms, cache=IdentityCache(0))
        warm = Validator(trust, voms)
        ident = warm.validate(chain)
        assert [str(f) for f in ident.fqans] == ["/testvo", "/testvo/grid"]
        cold_med, cold_p95 = _per_call_us(lambda: cold.validate(chain), n)
        warm_med, warm_p95 = _per_call_us(lambda: warm.validate(chain), n * 10)
    print(f"chain: EEC + 1 RFC 3820 proxy + 1 VOMS AC ({len(chain)} bytes PEM)")
    print(f"cold (no cache): median {cold_med:8.1f} us  p95 {cold_p95:8.1f} us  ({n} runs)")
    print(f"warm (cache)   : median {warm_med:8.1f} us  p95 {warm_p95:8.1f} us  ({n * 10} runs)")
    print(
        f"ratio cold/warm: {cold_med / warm_med:.1f}x   warm goal < 1000 us: "
        f"{'met' if warm_p95 < 1000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
