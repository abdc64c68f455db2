"""The ``gproc`` command against the real pool, as a user or a script would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.connector_cases import CASES

GPROC = Path(sys.executable).parent / "gproc"


@pytest.fixture
def run(pool: Any, tmp_path: Path):  # noqa: ANN201 - a small closure
    env = {
        **os.environ,
        "GPROC_STATE_DIR": str(tmp_path / "state"),
        "GPROC_HTCONDOR__CONDOR_CONFIG": str(pool.client_config),
        "GPROC_HTCONDOR__INSTANCE": f"cli{tmp_path.name[-8:].replace('_', '')}",
    }
    if getattr(pool, "event_log", None):
        env["GPROC_HTCONDOR__EVENT_LOG"] = str(pool.event_log)

    def gproc(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(GPROC), *args], env=env, capture_output=True, text=True, timeout=400, check=False
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return gproc


def test_tools_lists_and_describes(run: Any) -> None:
    tools = json.loads(run("tools", "--json").stdout)
    assert {"ndvi", "canny", "modis_lst", "reproject"} <= {t["name"] for t in tools}
    canny = json.loads(run("tools", "canny", "--json").stdout)
    aperture = next(p for p in canny["params"] if p["name"] == "aperture_size")
    assert aperture["default"] == 3 and set(aperture["choices"]) == {3, 5, 7}
    table = run("tools", "canny").stdout
    assert "aperture_size" in table
    bad = run("tools", "nope", ok=False)
    assert bad.returncode == 2 and "unknown tool" in bad.stderr


def test_full_round_trip_with_gisheo_notation(run: Any, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.tool == "canny")
    inputs = case.make_inputs(tmp_path)
    image = inputs["image"]
    reg = json.loads(
        run(
            "task",
            "register",
            "--processing",
            "outIMG_1 canny(inIMG_1#canny1#aperture_size#canny2)",
            "--argument-list",
            "<canny2=120>#<aperture_size=3>#<canny1=50>",
            "-i",
            f"inIMG_1={image}",
            "--request-id",
            "cli-1",
            "--json",
        ).stdout
    )
    task_id = reg["tasks"][0]["id"]
    again = json.loads(
        run(
            "task",
            "register",
            "--processing",
            "outIMG_1 canny(inIMG_1#canny1#aperture_size#canny2)",
            "--argument-list",
            "<canny2=120>#<aperture_size=3>#<canny1=50>",
            "-i",
            f"inIMG_1={image}",
            "--request-id",
            "cli-1",
            "--json",
        ).stdout
    )
    assert again["tasks"][0]["id"] == task_id  # idempotent by request id
    sub = json.loads(run("task", "submit", task_id, "--json").stdout)
    assert sub["tasks"][0]["state"] == "submitted"
    done = json.loads(run("task", "wait", task_id, "--timeout", "300", "--json").stdout)
    assert done["tasks"][0]["state"] == "completed"
    outs = json.loads(run("task", "retrieve", task_id, "--json").stdout)
    assert outs[0]["port"] == "output" and Path(outs[0]["path"]).is_file()
    log = json.loads(run("task", "log", task_id, "--json").stdout)
    assert [e["kind"] for e in log["events"]][0] == "REGISTERED"
    listed = json.loads(run("task", "list", "--state", "completed", "--total", "--json").stdout)
    assert listed["total"] == 1 and listed["tasks"][0]["id"] == task_id
    assert task_id[:12] in run("task", "status", task_id).stdout


def test_errors_are_clear_and_exit_non_zero(run: Any, tmp_path: Path) -> None:
    bad = run("task", "register", "canny", "-i", "image=/no/such.tif", ok=False)
    assert bad.returncode == 2 and "not a readable file" in bad.stderr
    bad = run(
        "task", "register", "canny", "-i", f"image={tmp_path}", "-p", "aperture_size=4", ok=False
    )
    assert bad.returncode == 2 and "aperture_size" in bad.stderr
    missing = run("task", "status", "0" * 32, ok=False)
    assert missing.returncode == 1 and "unknown task" in missing.stderr
    wrong = run("task", "release", "0" * 32, ok=False)
    assert wrong.returncode == 2 and "unknown task" in wrong.stderr
