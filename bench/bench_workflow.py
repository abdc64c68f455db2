"""A fan-out workflow run by DAGMan vs the same jobs as independent gproc tasks.

Workflow: one structured document whose input lists N tiny rasters (8x8, one band),
feeding an ``equalize`` node: DAGMan runs N node jobs, one per raster. Measured from
``WorkflowService.submit`` to the workflow tracker seeing it completed (every node
done, the DAGMan directory retrieved, outputs checksummed).
Tasks: N ``equalize`` tasks on the same rasters through ``TaskService`` (register
outside the clock, then ``submit`` as one batch) until the task tracker has seen
every task completed (outputs retrieved). Both sides run in this process, one after
the other, on the same pool, with tracker cycles every second; each side has its own
state dir and WMS instance name.

Per-node tracking cost: the workflow tracker's cycle time while the DAG runs (one
queue and one history query for the DAGMan job, the same for the node jobs, node
rows updated), divided by the number of nodes.

Run: .venv/bin/python bench/bench_workflow.py [--nodes 100]   (needs ``gproc pool up``)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from gproc.app import build_service, build_tracker
from gproc.connectors import ToolRequest
from gproc.domain import Owner, TaskRequest
from gproc.settings import Settings
from gproc.states import TERMINAL, TaskState
from gproc.workflows.app import build_workflow_service, build_workflow_tracker
from gproc.workflows.service import WorkflowRequest
from gproc.workflows.states import TERMINAL as WF_TERMINAL
from gproc.workflows.states import WorkflowState
from gproc.wrappers.htcondor.pool import PersonalPool
from gproc.wrappers.htcondor.schedd import HTCondorWMS

OWNER = Owner(dn="/C=RO/O=GiSHEO/CN=bench", vo="benchvo", fqans=("/benchvo",))
TIMEOUT_S = 3600.0


def _images(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(5)
    paths = []
    for i in range(count):
        path = folder / f"img{i}.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=8,
            height=8,
            count=1,
            dtype="uint8",
            crs="EPSG:32635",
            transform=from_origin(400000, 4900000, 30, 30),
        ) as ds:
            ds.write(rng.integers(0, 255, size=(1, 8, 8), dtype=np.uint8))
        paths.append(path)
    return paths


def _settings(root: Path, pool: PersonalPool, instance: str) -> Settings:
    settings = Settings(state_dir=root)
    settings.htcondor.condor_config = pool.client_config
    settings.htcondor.instance = instance
    settings.tracker.interval_s = 1.0
    settings.workflow.interval_s = 1.0
    return settings


def _until(done: Callable[[], bool], cycle: Callable[[], object]) -> float:
    started = time.perf_counter()
    while True:
        cycle()
        if done():
            return time.perf_counter() - started
        if time.perf_counter() - started > TIMEOUT_S:
            raise SystemExit("timed out")
        time.sleep(1.0)


def run_workflow(root: Path, pool: PersonalPool, images: list[Path]) -> dict[str, float]:
    settings = _settings(root / "wf", pool, f"bw{uuid.uuid4().hex[:8]}")
    svc = build_workflow_service(settings)
    tracker = build_workflow_tracker(svc, settings)
    doc = {
        "name": "fanout",
        "inputs": {"img": [str(p) for p in images]},
        "nodes": [{"id": "eq", "tool": "equalize"}],
        "edges": [{"input": "img", "to": "eq.image"}],
    }
    view = svc.register(WorkflowRequest(json.dumps(doc), OWNER))
    cycles: list[tuple[float, int]] = []
    schedd_ms: list[float] = []

    def cycle() -> None:
        stats = tracker.cycle()
        if stats.workflows:
            cycles.append((stats.ms, stats.nodes))
            schedd_ms.append(stats.wms_ms)

    started = time.perf_counter()
    svc.submit(view.id)
    elapsed = _until(lambda: svc.get(view.id).state in WF_TERMINAL, cycle)
    total = time.perf_counter() - started
    final = svc.get(view.id)
    if final.state != WorkflowState.COMPLETED:
        raise SystemExit(f"workflow {final.state}: {final.state_reason}")
    busy = [ms / nodes for ms, nodes in cycles if nodes]
    return {
        "seconds": total,
        "tracked_s": elapsed,
        "per_node_ms": statistics.median(busy) if busy else 0.0,
        "cycle_ms": statistics.median(ms for ms, _ in cycles) if cycles else 0.0,
        "schedd_ms": statistics.median(schedd_ms) if schedd_ms else 0.0,
    }


def run_tasks(root: Path, pool: PersonalPool, images: list[Path]) -> dict[str, float]:
    instance = f"bt{uuid.uuid4().hex[:8]}"
    settings = _settings(root / "tasks", pool, instance)
    wms = HTCondorWMS(
        instance=instance, event_log=pool.event_log, sandbox_root=root / "tasks" / "sandboxes"
    )
    svc = build_service(settings, wms=wms)
    tracker = build_tracker(svc, settings)
    requests = [TaskRequest(ToolRequest("equalize", {"image": str(p)}), OWNER) for p in images]
    ids = [v.id for v in svc.register(requests)]
    started = time.perf_counter()
    svc.submit(ids)

    def done() -> bool:
        return all(TaskState(r.task.state) in TERMINAL for r in svc.status(ids) if r.task)

    _until(done, tracker.cycle)
    total = time.perf_counter() - started
    states = {str(r.task.state) for r in svc.status(ids) if r.task}
    if states != {"completed"}:
        raise SystemExit(f"tasks ended {states}")
    return {"seconds": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument(
        "--state-dir", type=Path, default=Path(".state"), help="where the personal pool lives"
    )
    args = parser.parse_args(argv)
    pool = PersonalPool(args.state_dir)
    if not pool.is_up():
        print("the personal pool is not up: gproc pool up", file=sys.stderr)
        return 2
    pool.activate_client()
    with tempfile.TemporaryDirectory(prefix="bench-workflow-") as tmp:
        root = Path(tmp)
        (root / "img").mkdir()
        images = _images(root / "img", args.nodes)
        slots = pool.status().get("slots", "?")
        print(f"{args.nodes} nodes / tasks (equalize on 8x8 rasters), pool slots: {slots}")
        wf = run_workflow(root, pool, images)
        print(f"workflow (one DAGMan job): {wf['seconds']:.1f} s submit -> all nodes completed")
        tasks = run_tasks(root, pool, images)
        print(f"independent tasks:         {tasks['seconds']:.1f} s submit -> all completed")
        print(f"DAGMan overhead ratio: {wf['seconds'] / tasks['seconds']:.2f}x (goal <= 1.2x)")
        print(
            f"workflow tracker: median cycle {wf['cycle_ms']:.1f} ms while running "
            f"(schedd queries {wf['schedd_ms']:.1f} ms), {wf['per_node_ms']:.3f} ms per node"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
