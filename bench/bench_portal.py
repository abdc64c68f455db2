"""Portal benchmark: what the portal adds on top of the SOAP services it calls.

    .venv/bin/python bench/bench_portal.py [--repeat 200] [--host 127.0.0.1] [--port 0]

Starts the service-tier stack of ``tests/fixtures/portal.py`` (gateway, catalogue
SOAP + STAC, processing and workflow SOAP without a pool, the portal; test PKI) and
measures, sequentially, medians and p95 in milliseconds:

* map search: ``GET /api/datasets`` through the portal (session lookup, the proxy
  unsealed, a TLS connection with it, zeep SearchDatasets, GeoJSON) against the
  same SearchDatasets called directly with zeep and the same proxy (baseline);
* operation form: ``GET /tools/canny`` (DescribeTool + the page) against
  DescribeTool directly;
* sign-in by proxy upload (chain validation, sealed row, new session).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
import zeep
from zeep.transports import Transport

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gproc.security.pki import make_test_pki  # noqa: E402
from tests.fixtures.portal import csrf_of, start_stack, stop_stack  # noqa: E402


def timed(call: Callable[[], object], n: int) -> list[float]:
    call()  # warm: WSDLs parsed, connections made
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def line(name: str, ms: list[float], base: list[float] | None = None) -> None:
    med = statistics.median(ms)
    p95 = sorted(ms)[int(len(ms) * 0.95) - 1]
    ratio = f"  ratio {med / statistics.median(base):.2f}x baseline" if base else ""
    print(f"{name:<44} median {med:7.2f} ms  p95 {p95:7.2f} ms{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as tmp:
        root = Path(tmp)
        pki = make_test_pki(root / "pki")
        stack = start_stack(pki, root / "stack", host=args.host, port=args.port)
        try:
            run(stack, args.repeat)
        finally:
            stop_stack(stack)


def run(stack, n: int) -> None:  # type: ignore[no-untyped-def]
    s = stack.login()
    direct = requests.Session()
    direct.trust_env = False
    direct.cert = str(stack.pki.proxies["alice-voms"])
    direct.verify = str(stack.ca_file)
    transport = Transport(session=direct, timeout=30)
    cat = zeep.Client(stack.servers["catalogue"].url + "/?wsdl", transport=transport).service
    proc = zeep.Client(stack.servers["processing"].url + "/?wsdl", transport=transport).service
    print(f"portal at {stack.url}, {n} requests each, sequential")
    base = timed(lambda: cat.SearchDatasets(gql="", limit=500), n)
    line("SearchDatasets, zeep direct (baseline)", base)
    line(
        "GET /api/datasets through the portal",
        timed(lambda: s.get(stack.url + "/api/datasets", timeout=30).raise_for_status(), n),
        base,
    )
    base = timed(lambda: proc.DescribeTool("canny"), n)
    line("DescribeTool, zeep direct (baseline)", base)
    line(
        "GET /tools/canny through the portal",
        timed(lambda: s.get(stack.url + "/tools/canny", timeout=30).raise_for_status(), n),
        base,
    )
    proxy = stack.pki.proxies["alice-voms"].read_bytes()

    def sign_in() -> None:
        b = stack.browser_session()
        token = csrf_of(b.get(stack.url + "/login", timeout=30).text.split('id="proxy-form"')[1])
        r = b.post(
            stack.url + "/login/proxy",
            data={"csrf": token},
            files={"proxy": ("p", proxy)},
            timeout=30,
        )
        assert r.url.endswith("/map")

    line("sign-in by proxy upload (login page + POST)", timed(sign_in, max(10, n // 10)))


if __name__ == "__main__":
    main()
