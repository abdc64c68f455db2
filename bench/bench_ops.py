"""Operations benchmark: what a Prometheus scrape and a dashboard summary cost on a
registry of N tasks (5 state changes each), against a plain full count of the same
tables in the same run; and what the per-request instrumentation costs.

    .venv/bin/python bench/bench_ops.py [--tasks 20000] [--repeat 7] [--db URL]

Figures (medians): the scrape-time collector (``gproc_tasks`` by state, tracker
heartbeat) vs ``SELECT count(*) FROM tasks``; the summary (counts, series over 24
one-hour buckets, failures, usage; no WMS) vs ``SELECT count(*) FROM task_events``;
``observe()`` (one counter + one histogram) per request, in microseconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from gproc import operations as ops
from gproc.models import TaskEventRow, TaskRow
from gproc.registry import Registry
from gproc.services.chassis.metrics import RegistryFigures, observe

STATES = ("registered", "submitting", "submitted", "running", "completed", "failed")


def fill(reg: Registry, n: int) -> None:
    now = datetime.now(UTC)
    rng = random.Random(7)
    tasks, events = [], []
    for i in range(n):
        tid = uuid.uuid4().hex
        t0 = now - timedelta(seconds=rng.uniform(0, 86400))
        end = rng.choice(("completed", "completed", "completed", "failed", "running"))
        tasks.append(
            {
                "id": tid, "owner_dn": f"/CN=user{i % 50}", "owner_vo": f"vo{i % 3}",
                "accounting_group": f"group_vo{i % 3}.g{i % 4}", "tool": "ndvi",
                "request_json": "{}", "plan_json": "{}", "state": end,
                "state_reason": f"job exited with code {i % 3}" if end == "failed" else None,
                "created_at": t0, "updated_at": t0, "started_at": t0 + timedelta(seconds=5),
                "finished_at": t0 + timedelta(seconds=60) if end != "running" else None,
                "owner_fqans": "[]", "attempt": 1, "wms": "htcondor", "job_description": "",
            }
        )  # fmt: skip
        for k, state in enumerate(STATES[:4] + (end,)):
            events.append(
                {"task_id": tid, "time": t0 + timedelta(seconds=k * 10), "kind": state.upper(),
                 "state": state, "detail": ""}
            )  # fmt: skip
    with reg.engine.begin() as conn:
        for i in range(0, len(tasks), 5000):
            conn.execute(insert(TaskRow), tasks[i : i + 5000])
        for i in range(0, len(events), 5000):
            conn.execute(insert(TaskEventRow), events[i : i + 5000])


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--db", help="SQLAlchemy URL of an empty database (default: SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry(args.db or f"sqlite:///{Path(tmp) / 'bench.db'}")
        fill(reg, args.tasks)
        eng = reg.engine
        figures = RegistryFigures(eng)

        def count(table: str) -> Callable[[], object]:
            def run() -> object:
                with eng.connect() as c:
                    return c.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608

            return run

        scrape = median_ms(lambda: list(figures.collect()), args.repeat)
        base_tasks = median_ms(count("tasks"), args.repeat)
        window = ops.Window.last(86400, 3600)
        summary = median_ms(lambda: ops.summarise(eng, None, window), args.repeat)
        base_events = median_ms(count("task_events"), args.repeat)
        n = 20000
        t = time.perf_counter()
        for _ in range(n):
            observe("bench", "GetTaskStatus", 200, None, 0.0123)
        per_us = (time.perf_counter() - t) / n * 1e6
        reg.close()
    db = eng.dialect.name
    print(f"registry: {db}, {args.tasks} tasks, {args.tasks * 5} events")
    print(f"scrape collector   {scrape:8.2f} ms   count(*) tasks  {base_tasks:8.2f} ms   "
          f"ratio {scrape / base_tasks:5.2f}")  # fmt: skip
    print(f"dashboard summary  {summary:8.2f} ms   count(*) events {base_events:8.2f} ms   "
          f"ratio {summary / base_events:5.2f}")  # fmt: skip
    print(f"observe() per request {per_us:6.2f} us")


if __name__ == "__main__":
    main()
