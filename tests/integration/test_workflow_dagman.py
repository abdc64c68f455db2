"""Workflows run by real DAGMan on the personal pool: Figure 7 through the CLI (Hough
lines checked against OpenCV on the same image), an 8-scene NDVI fan-out joined by a
mosaic (checked numerically), rescue-DAG retry, cancel, and kill -9 during submit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import htcondor2
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from gproc.domain import Owner
from gproc.workflows.service import WorkflowRequest
from gproc.workflows.states import NodeState, WorkflowState
from gproc.workflows.store import WorkflowNotFound
from tests.fixtures.workflow import WorkflowCore, schedd_jobs

W = WorkflowState
ROOT = Path(__file__).parents[2]
FIGURE7 = ROOT / "examples" / "workflows" / "figure7.silk"
ALICE = Owner(dn="/C=RO/O=GiSHEO/CN=alice", vo="testvo", fqans=("/testvo",))
BOB = Owner(dn="/C=RO/O=GiSHEO/CN=bob", vo="testvo", fqans=("/testvo",))
UTM = "EPSG:32635"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def _tif(path: Path, data: np.ndarray, x0: float = 400000.0, y0: float = 4900000.0) -> Path:
    bands = data if data.ndim == 3 else data[np.newaxis]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=bands.shape[2],
        height=bands.shape[1],
        count=bands.shape[0],
        dtype=bands.dtype,
        crs=UTM,
        transform=from_origin(x0, y0, 30.0, 30.0),
    ) as ds:
        ds.write(bands)
    return path


def _roads(path: Path) -> np.ndarray:
    """An RGB scene: dark fields crossed by two straight light roads."""
    rng = np.random.default_rng(7)
    rgb = np.empty((3, 160, 160), dtype=np.uint8)
    rgb[0], rgb[1], rgb[2] = 40, 70, 35
    rgb += rng.integers(0, 6, size=rgb.shape, dtype=np.uint8)
    rows, cols = np.mgrid[0:160, 0:160]
    road = (np.abs(rows - 0.5 * cols - 30) <= 2) | (np.abs(cols - 110) <= 2)
    rgb[:, road] = (200, 195, 185)[0]
    _tif(path, rgb)
    return rgb


REFERENCE = """
import json, math, sys
import numpy as np, cv2
rgb = np.load(sys.argv[1])
grey = cv2.cvtColor(np.ascontiguousarray(np.dstack(list(rgb))), cv2.COLOR_RGB2GRAY)
edges = cv2.Canny(grey, 100, 120, apertureSize=3)              # B: canny2=120
again = cv2.Canny(edges, 100, 200, apertureSize=3)             # C runs its own Canny
found = cv2.HoughLinesP(again, 1, math.pi / 180, 100, minLineLength=20, maxLineGap=10)
print(json.dumps([] if found is None else [[int(v) for v in s[0]] for s in found]))
"""


def _opencv_reference(pool: Any, rgb: np.ndarray) -> list[list[int]]:
    """Hough segments computed with OpenCV itself, in the pool's execute root."""
    if getattr(pool, "root", None) is None:
        pytest.skip("needs the personal pool's execute root for the OpenCV reference")
    work = Path(pool.root) / "tmp" / f"ref-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        np.save(work / "rgb.npy", rgb)
        (work / "ref.py").write_text(REFERENCE)
        os.chmod(work, 0o755)
        inside = "/" + str(work.relative_to(pool.root))
        done = subprocess.run(
            [
                CHROOT,
                "--userspec=65534:65534",
                str(pool.root),
                "/usr/bin/python3",
                f"{inside}/ref.py",
                f"{inside}/rgb.npy",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        )
        return json.loads(done.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _gproc(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gproc.services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def test_figure7_through_the_cli(pool: Any, tmp_path: Path) -> None:
    rgb = _roads(tmp_path / "scene.tif")
    instance = f"w{uuid.uuid4().hex[:12]}"
    env = dict(
        os.environ,
        GPROC_STATE_DIR=str(tmp_path / "state"),
        GPROC_HTCONDOR__CONDOR_CONFIG=str(pool.client_config),
        GPROC_HTCONDOR__INSTANCE=instance,
        GPROC_CONFIG="",
    )
    env.pop("GPROC_CONFIG")
    reg = _gproc(
        [
            "workflow",
            "register",
            str(FIGURE7),
            "-s",
            f"A0={tmp_path / 'scene.tif'}",
            "--submit",
            "--json",
        ],
        env,
    )
    assert reg.returncode == 0, reg.stderr
    view = json.loads(reg.stdout)
    assert view["state"] == "submitted" and view["name"] == "figure7"
    waited = _gproc(["workflow", "wait", view["id"], "--json"], env)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    done = json.loads(waited.stdout)
    assert [(n["name"], n["tool"], n["state"], n["runs"]) for n in done["nodes"]] == [
        ("n0_A", "grayscale", "done", 1),
        ("n1_B", "canny", "done", 1),
        ("n2_C", "hough", "done", 1),
    ]
    assert all(n["job_id"] and n["exit_code"] == 0 for n in done["nodes"])
    got = _gproc(
        ["workflow", "retrieve", view["id"], "--dest", str(tmp_path / "got"), "--json"], env
    )
    assert got.returncode == 0, got.stderr
    assert {o["name"] for o in json.loads(got.stdout)} == {"n2_output.tif", "n2_lines.json"}
    lines = json.loads((tmp_path / "got" / "n2_lines.json").read_text())["lines"]
    found = sorted([s["x1"], s["y1"], s["x2"], s["y2"]] for s in lines)
    reference = _opencv_reference(pool, rgb)
    assert len(reference) >= 2, "the scene should show both roads"
    assert found == sorted(reference)
    listed = _gproc(["workflow", "list", "--json"], env)
    assert [w["id"] for w in json.loads(listed.stdout)["workflows"]] == [view["id"]]
    log = _gproc(["workflow", "log", view["id"], "--json"], env)
    logs = json.loads(log.stdout)["logs"]
    assert "EXITING WITH STATUS 0" in logs["dagman"]
    assert {"n0_A.err", "n2_C.out"} <= set(logs)
    assert not [j for j in schedd_jobs(instance, view["id"], history=False)]


def _scenes(tmp_path: Path, count: int = 8) -> tuple[list[Path], list[Path], list[np.ndarray]]:
    """``count`` adjacent 20x16 tiles (west to east) of red and NIR, and their NDVI."""
    rng = np.random.default_rng(11)
    reds, nirs, ndvis = [], [], []
    for i in range(count):
        red = rng.integers(50, 2000, size=(20, 16)).astype(np.uint16)
        nir = rng.integers(50, 4000, size=(20, 16)).astype(np.uint16)
        x0 = 400000.0 + i * 16 * 30.0
        reds.append(_tif(tmp_path / f"red{i}.tif", red, x0=x0))
        nirs.append(_tif(tmp_path / f"nir{i}.tif", nir, x0=x0))
        r, n = red.astype(np.float64), nir.astype(np.float64)
        ndvis.append(((n - r) / (n + r)).astype(np.float32))
    return reds, nirs, ndvis


def _ndvi_doc(reds: list[Path], nirs: list[Path]) -> str:
    return json.dumps(
        {
            "name": "ndvi_mosaic",
            "inputs": {"red": [str(p) for p in reds], "nir": [str(p) for p in nirs]},
            "nodes": [
                {"id": "ndvi", "tool": "ndvi"},
                {"id": "mosaic", "tool": "mosaic", "params": {"epsg": 32635}},
            ],
            "edges": [
                {"input": "red", "to": "ndvi.red"},
                {"input": "nir", "to": "ndvi.nir"},
                {"from": "ndvi.output", "to": "mosaic.inputs"},
            ],
        }
    )


def test_eight_scene_fan_out_and_mosaic(
    make_workflows: Callable[..., WorkflowCore], tmp_path: Path
) -> None:
    core = make_workflows()
    reds, nirs, ndvis = _scenes(tmp_path)
    view = core.svc.register(WorkflowRequest(_ndvi_doc(reds, nirs), ALICE))
    assert len(view.nodes) == 9 and view.state == W.REGISTERED
    with pytest.raises(WorkflowNotFound):  # another user cannot see, submit or cancel it
        core.svc.get(view.id, BOB)
    with pytest.raises(WorkflowNotFound):
        core.svc.submit(view.id, BOB)
    core.svc.submit(view.id, ALICE)
    with pytest.raises(WorkflowNotFound):
        core.svc.cancel(view.id, BOB)
    assert core.svc.list_workflows(BOB)[1] == 0
    done = core.drive(view.id)
    assert done.state == W.COMPLETED, done.state_reason
    assert all(n.state == NodeState.DONE and n.runs == 1 for n in done.nodes)
    (out,) = core.svc.outputs(view.id, ALICE)
    assert out.node == "n8_mosaic" and out.name == "n8_output.tif"
    with rasterio.open(out.path) as ds:
        mosaic = ds.read(1)
        assert ds.crs.to_epsg() == 32635 and mosaic.shape == (20, 16 * 8)
    expected = np.hstack(ndvis)
    assert np.allclose(mosaic, expected, atol=1e-6)
    assert core.svc.submit(view.id, ALICE).state == W.COMPLETED  # never twice


def _remove_node_job(instance: str, wid: str, node: str) -> Callable[[Any], None]:
    """While the DAG runs: remove ``node``'s first job (an operator's condor_rm)."""
    removed: list[str] = []

    def each(_view: Any) -> None:
        if removed:
            return
        for ad in schedd_jobs(instance, wid, history=False):
            if ad.get("DAGNodeName") == node and ad["JobStatus"] in (1, 2):
                htcondor2.Schedd().act(
                    htcondor2.JobAction.Remove,
                    f"ClusterId == {ad['ClusterId']}",
                    ("test: removed", 0),
                )
                removed.append(ad["GlobalJobId"])

    return each


def test_retry_reruns_only_the_failed_nodes(
    make_workflows: Callable[..., WorkflowCore], tmp_path: Path
) -> None:
    core = make_workflows(node_retry=0)
    _roads(tmp_path / "scene.tif")
    view = core.svc.register(
        WorkflowRequest(
            FIGURE7.read_text(), ALICE, name="figure7", sources={"A0": str(tmp_path / "scene.tif")}
        )
    )
    core.svc.submit(view.id, ALICE)
    instance = core.settings.htcondor.instance
    failed = core.drive(view.id, each=_remove_node_job(instance, view.id, "n1_B"))
    assert failed.state == W.FAILED and "n1_B" in (failed.state_reason or "")
    assert [(n.name, n.state) for n in failed.nodes] == [
        ("n0_A", NodeState.DONE),
        ("n1_B", NodeState.FAILED),
        ("n2_C", NodeState.FUTILE),
    ]
    core.svc.retry(view.id, ALICE)
    done = core.drive(view.id)
    assert done.state == W.COMPLETED and done.attempt == 2
    ran = Counter(
        ad["DAGNodeName"] for ad in schedd_jobs(instance, view.id) if ad.get("DAGNodeName")
    )
    assert ran == {"n0_A": 1, "n1_B": 2, "n2_C": 1}  # A was not run again
    assert [n.runs for n in done.nodes] == [1, 2, 1]


def test_cancel_removes_every_node_job(
    make_workflows: Callable[..., WorkflowCore], tmp_path: Path
) -> None:
    core = make_workflows()
    reds, nirs, _ = _scenes(tmp_path, 4)
    view = core.svc.register(WorkflowRequest(_ndvi_doc(reds, nirs), ALICE))
    core.svc.submit(view.id, ALICE)
    instance = core.settings.htcondor.instance
    core.drive(
        view.id, until=lambda v: any(n.state != NodeState.WAITING for n in v.nodes), timeout=120
    )
    assert core.svc.cancel(view.id, ALICE).state == W.CANCELLED
    deadline = time.monotonic() + 180  # the schedd removes node jobs as it gets to them
    while schedd_jobs(instance, view.id, history=False) and time.monotonic() < deadline:
        time.sleep(1)
    assert schedd_jobs(instance, view.id, history=False) == []


SUBMITTER = """
import sys
from gproc.settings import Settings
from gproc.workflows.app import build_workflow_service
settings = Settings(state_dir=sys.argv[1])
settings.htcondor.condor_config = sys.argv[2]
settings.htcondor.instance = sys.argv[3]
build_workflow_service(settings).submit(sys.argv[4])
"""


def test_kill9_during_submit_gives_exactly_one_dagman_job(
    make_workflows: Callable[..., WorkflowCore], pool: Any, tmp_path: Path
) -> None:
    core = make_workflows(submit_grace_s=5.0)
    _roads(tmp_path / "scene.tif")
    big = np.random.default_rng(3).integers(0, 255, size=(3, 1500, 1500), dtype=np.uint8)
    _tif(tmp_path / "big.tif", big)  # a sizeable upload widens the window
    view = core.svc.register(
        WorkflowRequest(
            FIGURE7.read_text(), ALICE, name="figure7", sources={"A0": str(tmp_path / "big.tif")}
        )
    )
    instance = core.settings.htcondor.instance
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(SUBMITTER),
            str(core.settings.state_dir),
            str(pool.client_config),
            instance,
            view.id,
        ],
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not schedd_jobs(instance, view.id, history=False) and proc.poll() is None:
        assert time.monotonic() < deadline, "the DAGMan job never appeared"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the service dies in the middle of SubmitWorkflow
    proc.wait(10)
    restarted = make_workflows(submit_grace_s=5.0)
    done = restarted.drive(view.id, timeout=400)
    assert done.state == W.COMPLETED, done.state_reason
    jobs = schedd_jobs(instance, view.id)
    dagman = {ad["ClusterId"]: ad for ad in jobs if ad.get("DAGManJobId") is None}
    ran = {ad["DAGManJobId"] for ad in jobs if ad.get("DAGNodeName")}
    assert len(ran) == 1, f"node jobs of several DAGMan jobs: {sorted(ran)}"
    (cluster,) = ran
    assert dagman[cluster]["GprocAttempt"] == done.attempt
    others = [ad for c, ad in dagman.items() if c != cluster]
    assert all(ad["JobStatus"] == 3 for ad in others)  # at most an interrupted upload, removed
    nodes = Counter(ad["DAGNodeName"] for ad in jobs if ad.get("DAGNodeName"))
    assert nodes == {"n0_A": 1, "n1_B": 1, "n2_C": 1}
