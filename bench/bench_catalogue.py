"""Catalogue benchmark: ingest, bbox search on SQLite (R*Tree) and PostGIS (GiST),
each against the raw SQL of the same query on the same database in the same run and
against a full-scan baseline; GQL/LLQL parse+plan time.

    .venv/bin/python bench/bench_catalogue.py [--n 100000] [--queries 300]
        [--postgis-url postgresql+psycopg://...]   # else a throw-away server is started
        [--host 127.0.0.1] [--port 0]              # of that throw-away server
        [--sqlite-db cat.db]                       # only search an existing SQLite catalogue

Ratios: "vs raw" is raw-SQL time / engine time (1.0 = no overhead; the goal is
>= 0.5); "vs scan" is full-scan time / engine time (how much the index buys).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shapely.geometry import Polygon, box
from sqlalchemy import create_engine, text

from gproc.catalogue.engines.base import SqlEngine
from gproc.catalogue.engines.postgis import PostgisEngine
from gproc.catalogue.engines.sqlite import SqliteEngine
from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.gql import parse_gql
from gproc.catalogue.llql import parse_llql
from gproc.catalogue.model import Dataset, Fields, RasterInfo
from gproc.catalogue.query import Query, Spatial

TYPES = ("RASTER/AERIAL", "DEM", "MULTISPECTRAL", "RASTER/SAR")
T0 = datetime(2015, 1, 1, tzinfo=UTC)


def dataset(i: int, rng: random.Random) -> Dataset:
    x, y = rng.uniform(-179, 178), rng.uniform(-80, 79)
    w, h = rng.uniform(0.05, 1.0), rng.uniform(0.05, 1.0)
    geom = (
        box(x, y, x + w, y + h)
        if i % 2
        else Polygon(
            [(x, y), (x + w, y + 0.1 * h), (x + 0.9 * w, y + h), (x - 0.1 * w, y + 0.9 * h)]
        )
    )
    raster = RasterInfo(
        geom.wkt, geom.bounds, "EPSG:4326", (0.001, 0.001), 1000, 1000, 1, "uint16", 0.0, "GTiff"
    )
    fields = Fields(
        f"group{i % 50}",
        f"scene{i:07d}",
        TYPES[i % 4],
        ("NASA", "ESA")[i % 2],
        acquired=T0 + timedelta(hours=i),
        properties={"cloud": str(i % 10)},
    )
    now = T0 + timedelta(seconds=i)
    return Dataset(
        uuid.UUID(int=i + 1).hex,
        f"/public/bench/scene{i:07d}.tif",
        "/public",
        fields,
        raster,
        10**6,
        0.0,
        "0" * 8,
        "0" * 64,
        now,
        now,
    )


def hits_of(page: Any) -> int:
    return len(page.items)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def timed(fn: Callable[[], Any], runs: list[float]) -> Any:
    t = time.perf_counter()
    out = fn()
    runs.append(time.perf_counter() - t)
    return out


def ingest(engine: SqlEngine, n: int, batch: int = 1000) -> float:
    rng = random.Random(1)
    t = time.perf_counter()
    for start in range(0, n, batch):
        engine.put_many([dataset(i, rng) for i in range(start, min(n, start + batch))])
    return n / (time.perf_counter() - t)


def boxes(count: int) -> list[tuple[float, float, float, float]]:
    rng = random.Random(2)
    out = []
    for _ in range(count):
        x, y = rng.uniform(-178, 176), rng.uniform(-78, 76)
        out.append((x, y, x + 2.0, y + 2.0))
    return out


def raw_connection(engine: SqlEngine) -> Any:
    url = engine.engine.url
    if url.get_backend_name() == "sqlite":
        import sqlite3

        return sqlite3.connect(url.database or ":memory:")
    import psycopg

    return psycopg.connect(
        url.set(drivername="postgresql").render_as_string(False),
        autocommit=True,
        prepare_threshold=None,
    )


def raw_sql(engine: SqlEngine, query: Query) -> str:
    """The engine's own SELECT of this query, as literal SQL for the driver."""
    stmt = engine.search_statement(query, None, None, query.limit + 1)
    return str(stmt.compile(engine.engine, compile_kwargs={"literal_binds": True}))


def measure(
    engine: SqlEngine,
    name: str,
    scan_sql: Callable[[tuple[float, ...]], str],
    bbs: list[tuple[float, float, float, float]],
    scan_n: int,
    prep: tuple[str, ...] = (),
) -> dict[str, float]:
    api: list[float] = []
    raw: list[float] = []
    scan: list[float] = []
    hits = 0
    dbapi = raw_connection(engine)  # the driver's own connection, outside the pool
    cur = dbapi.cursor()
    queries = [Query(Spatial.bbox(*bb), limit=100) for bb in bbs]
    for q in queries:  # warm-up: every query once, so neither side meets cold pages
        engine.search(q, None)
    for i, q in enumerate(queries):  # the same query both ways, in alternating order
        sql = raw_sql(engine, q)
        sides = [
            lambda q=q: hits_of(timed(lambda: engine.search(q, None), api)),
            lambda sql=sql: timed(lambda: (cur.execute(sql), cur.fetchall()), raw),
        ]
        for side in sides if i % 2 else reversed(sides):
            got = side()
            if isinstance(got, int):
                hits += got
    for stmt in prep:  # the baseline: the same query with the index switched off
        cur.execute(stmt)
    for bb in bbs[:scan_n]:
        timed(lambda bb=bb: (cur.execute(scan_sql(bb)), cur.fetchall()), scan)
    cur.close()
    dbapi.close()
    out = {
        "api_p50_ms": pct(api, 50) * 1e3,
        "api_p99_ms": pct(api, 99) * 1e3,
        "raw_p50_ms": pct(raw, 50) * 1e3,
        "raw_p99_ms": pct(raw, 99) * 1e3,
        "scan_p50_ms": statistics.median(scan) * 1e3,
        "hits_per_query": hits / len(bbs),
    }
    out["vs_raw_p50"] = out["raw_p50_ms"] / out["api_p50_ms"]
    out["vs_raw_p99"] = out["raw_p99_ms"] / out["api_p99_ms"]
    out["vs_scan_p50"] = out["scan_p50_ms"] / out["api_p50_ms"]
    print(
        f"{name}: search p50 {out['api_p50_ms']:.2f} ms p99 {out['api_p99_ms']:.2f} ms "
        f"({out['hits_per_query']:.1f} hits) | raw SQL p50 {out['raw_p50_ms']:.2f} ms "
        f"p99 {out['raw_p99_ms']:.2f} ms -> vs raw p50 {out['vs_raw_p50']:.2f} "
        f"p99 {out['vs_raw_p99']:.2f} | full scan p50 {out['scan_p50_ms']:.1f} ms "
        f"-> index speed-up x{out['vs_scan_p50']:.0f}"
    )
    return out


def sqlite_scan(bb: tuple[float, ...]) -> str:
    w, s, e, n = bb
    return (
        f"SELECT * FROM catalogue_dataset NOT INDEXED WHERE minx <= {e} AND maxx >= {w} "
        f"AND miny <= {n} AND maxy >= {s} AND missing = 0 ORDER BY name, rid LIMIT 101"
    )


def postgis_scan(bb: tuple[float, ...]) -> str:
    w, s, e, n = bb
    return (
        "SELECT * FROM catalogue_dataset WHERE ST_Intersects(footprint, "
        f"ST_MakeEnvelope({w}, {s}, {e}, {n}, 4326)) AND NOT missing "
        "ORDER BY name, rid LIMIT 101"
    )


@contextmanager
def throwaway_postgres(host: str, port: int) -> Iterator[str]:
    pg = next(
        (
            p
            for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
            if (p / "initdb").exists()
        ),
        None,
    )
    if pg is None:
        raise SystemExit("PostgreSQL not found: run bin/setup or pass --postgis-url")
    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    base = Path(tempfile.mkdtemp(prefix="gproc-bench-pg-"))
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(base, "postgres")
    run = lambda *a: subprocess.run([*as_pg, *a], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(pg / "initdb"), "-D", str(base / "d"), "-A", "trust", "-U", "gproc", "--no-sync")
    run(
        str(pg / "pg_ctl"),
        "-D",
        str(base / "d"),
        "-l",
        str(base / "log"),
        "-w",
        "-o",
        f"-h {host} -p {port} -k {base} -F",
        "start",
    )
    try:
        run(str(pg / "createdb"), "-h", host, "-p", str(port), "-U", "gproc", "bench")
        yield f"postgresql+psycopg://gproc@{host}:{port}/bench"
    finally:
        subprocess.run(
            [*as_pg, str(pg / "pg_ctl"), "-D", str(base / "d"), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def parse_times(gaz: Gazetteer, runs: int = 300) -> None:
    gql = "place:Timisoara, Romania type:DEM vendor:NASA (time:2021 OR NOT prop.cloud:9)"
    llql = (
        "(select '(url owner) (ogc:interacts (ogc:bbox 16.69 43.97 24.8 48.48)) "
        '(gdis:type "RASTER/AERIAL") (or (gdis:vendor "NASA") (gdis:vendor "ESA")))'
    )
    for name, fn in (("GQL", lambda: parse_gql(gql, gaz)), ("LLQL", lambda: parse_llql(llql, gaz))):
        fn()
        t: list[float] = []
        for _ in range(runs):
            timed(fn, t)
        print(
            f"{name} parse+plan (incl. gazetteer look-up for GQL): p50 "
            f"{pct(t, 50) * 1e3:.3f} ms, p99 {pct(t, 99) * 1e3:.3f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--scan-queries", type=int, default=20)
    ap.add_argument("--postgis-url")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument(
        "--sqlite-db", help="search an existing catalogue database (made by a run) only"
    )
    args = ap.parse_args()
    bbs = boxes(args.queries)
    if args.sqlite_db:
        lite = SqliteEngine(f"sqlite:///{args.sqlite_db}")
        measure(lite, "SQLite (R*Tree + shapely)", sqlite_scan, bbs, args.scan_queries)
        lite.close()
        return
    work = Path(tempfile.mkdtemp(prefix="gproc-bench-cat-"))
    try:
        lite = SqliteEngine(f"sqlite:///{work / 'cat.db'}")
        lite.create_schema()
        rate = ingest(lite, args.n)
        print(f"SQLite: ingest {args.n} datasets: {rate:,.0f} datasets/s")
        measure(lite, "SQLite (R*Tree + shapely)", sqlite_scan, bbs, args.scan_queries)
        gaz = Gazetteer(lite)
        gaz.load_geonames()
        parse_times(gaz)
        lite.close()
        with (
            throwaway_postgres(args.host, args.port)
            if not args.postgis_url
            else _given(args.postgis_url)
        ) as url:
            pg = PostgisEngine(url)
            pg.drop_schema()
            pg.create_schema()
            rate = ingest(pg, args.n)
            with create_engine(url).begin() as conn:
                conn.execute(text("ANALYZE catalogue_dataset"))
            print(f"PostGIS: ingest {args.n} datasets: {rate:,.0f} datasets/s")
            measure(
                pg,
                "PostGIS (GiST)",
                postgis_scan,
                bbs,
                args.scan_queries,
                ("SET enable_indexscan = off", "SET enable_bitmapscan = off"),
            )
            pg.drop_schema()
            pg.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
