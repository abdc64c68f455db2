"""The HTCondor pool end to end, from the host through the htcondor2 bindings."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import htcondor2
import pytest

from gproc.wrappers.htcondor.pool import PersonalPool

JOB_TIMEOUT_S = 120.0
LEAVE_IN_QUEUE = "JobStatus == 4 && (StageOutFinish =?= UNDEFINED || StageOutFinish == 0)"


def _personal(pool: Any) -> PersonalPool:
    if not isinstance(pool, PersonalPool):
        pytest.skip("needs the personal pool (GPROC_TEST_EXTERNAL_POOL is set)")
    return pool


def _run_spooled(desc: dict[str, str], workdir: Path) -> tuple[int, dict[str, Any]]:
    """Submit one spooled job from ``workdir``, wait for completion, retrieve its output."""
    schedd = htcondor2.Schedd()
    sub = htcondor2.Submit(
        {
            **desc,
            "initialdir": str(workdir),
            "leave_in_queue": LEAVE_IN_QUEUE,
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT",
        }
    )
    result = schedd.submit(sub, count=1, spool=True)
    cluster = result.cluster()
    try:
        schedd.spool(result)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        ad: dict[str, Any] = {}
        while time.monotonic() < deadline:
            ads = schedd.query(
                f"ClusterId == {cluster}",
                projection=["JobStatus", "HoldReason", "ExitCode", "Owner"],
            )
            ad = dict(ads[0]) if ads else {}
            if ad.get("JobStatus") == 4:
                break
            time.sleep(1.0)
        else:
            pytest.fail(f"job {cluster} not completed after {JOB_TIMEOUT_S}s: {ad}")
        schedd.retrieve(f"ClusterId == {cluster}")
        return cluster, ad
    finally:
        schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")


def test_status_reports_a_reachable_schedd_and_a_slot(pool: Any) -> None:
    info = pool.status()
    assert info["up"] is True, info
    assert info["slots"] >= 1
    assert info["schedd_reachable"] is True
    if isinstance(pool, PersonalPool):
        assert "23." in info["condor_version"]


def test_bindings_use_the_pool_client_config(pool: Any) -> None:
    assert os.environ["CONDOR_CONFIG"] == str(pool.client_config)
    assert htcondor2.param["SEC_CLIENT_AUTHENTICATION_METHODS"] is not None


def test_spooled_job_output_is_retrieved(pool: Any, tmp_path: Path) -> None:
    secret = secrets.token_hex(8)
    (tmp_path / "in.txt").write_text(secret + "\n")
    (tmp_path / "job.sh").write_text(
        "#!/bin/sh\nset -e\ntr a-f A-F < in.txt > result.txt\nid -un > who.txt\n"
    )
    cluster, ad = _run_spooled(
        {
            "executable": str(tmp_path / "job.sh"),
            "transfer_input_files": "in.txt",
            "transfer_output_files": "result.txt, who.txt",
            "output": "job.out",
            "error": "job.err",
            "+GprocTaskId": f'"{secret}"',
        },
        tmp_path,
    )
    assert ad["ExitCode"] == 0, (tmp_path / "job.err").read_text()
    assert (tmp_path / "result.txt").read_text() == secret.upper() + "\n"
    if isinstance(pool, PersonalPool):
        # Jobs run as the service account, never as root.
        assert (tmp_path / "who.txt").read_text().strip() == "gproc"
        assert ad["Owner"] == "gproc"


def test_event_log_names_the_job_and_its_task_id(pool: Any, tmp_path: Path) -> None:
    if pool.event_log is None:
        pytest.skip("this pool has no EVENT_LOG configured")
    task_id = "t" + secrets.token_hex(6)
    cluster, _ = _run_spooled(
        {"executable": "/bin/true", "transfer_executable": "false", "+GprocTaskId": f'"{task_id}"'},
        tmp_path,
    )
    text = Path(pool.event_log).read_text(errors="replace")
    assert f'GprocTaskId = "{task_id}"' in text
    assert re.search(rf"^005 \({cluster:03d}\.000\.000\)", text, re.MULTILINE), (
        "no termination event for the job"
    )


def test_execute_slot_has_gdal_opencv_numpy(pool: Any, tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text(
        "from osgeo import gdal\nimport cv2, numpy\n"
        "print(gdal.__version__, cv2.__version__, numpy.__version__)\n"
    )
    _, ad = _run_spooled(
        {
            "executable": "/usr/bin/python3",
            "transfer_executable": "false",
            "arguments": "tools.py",
            "transfer_input_files": "tools.py",
            "output": "tools.out",
            "error": "tools.err",
        },
        tmp_path,
    )
    assert ad["ExitCode"] == 0, (tmp_path / "tools.err").read_text()
    versions = (tmp_path / "tools.out").read_text().split()
    assert len(versions) == 3 and all(re.match(r"^\d+\.\d+", v) for v in versions)
    if isinstance(pool, PersonalPool):
        local = pool.run_in_root(
            [
                "python3",
                "-c",
                "from osgeo import gdal; import cv2, numpy;"
                "print(gdal.__version__, cv2.__version__, numpy.__version__)",
            ]
        )
        assert local.stdout.split() == versions


def test_up_while_up_keeps_the_running_daemons(pool: Any) -> None:
    personal = _personal(pool)
    before = personal.status()["master_pid"]
    t0 = time.monotonic()
    personal.up(timeout=30)
    assert time.monotonic() - t0 < 30
    assert personal.status()["master_pid"] == before


def test_run_in_root_runs_argv_without_a_shell(pool: Any) -> None:
    personal = _personal(pool)
    res = personal.run_in_root(["echo", "$HOME;", "`id`"], user="gproc")
    assert res.stdout == "$HOME; `id`\n"
    with pytest.raises(ValueError):
        personal.run_in_root(["true"], user="root;id")


def test_cli_status_json(pool: Any) -> None:
    _personal(pool)
    env = {**os.environ, "GPROC_STATE_DIR": str(pool.state_dir)}
    res = subprocess.run(
        [sys.executable, "-m", "gproc.services.cli_pool", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert '"up": true' in res.stdout


@pytest.mark.skipif(
    os.environ.get("GPROC_TEST_POOL_RESTART") != "1",
    reason="stops the shared pool; set GPROC_TEST_POOL_RESTART=1",
)
def test_down_stops_everything_and_up_restarts(pool: Any) -> None:
    personal = _personal(pool)
    personal.down()
    assert not personal.is_up()
    assert personal._root_pids() == []
    assert not [
        ln for ln in Path("/proc/mounts").read_text().splitlines() if f" {personal.root}/" in ln
    ]
    personal.down()  # idempotent
    info = personal.up(timeout=120)
    assert info["slots"] >= 1 and personal.is_up()
