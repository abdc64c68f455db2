"""The HTCondor client configuration: a missing file is refused, never activated.

HTCondor EXCEPTs (the whole process exits with status 4) on the first connection
attempt after ``CONDOR_CONFIG`` named a missing file; the cases that would end the
process run in a child interpreter, so a regression fails this test instead of
ending the test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gproc.wrappers.htcondor.client import activate_client_config, check_reachable


def test_missing_config_is_refused_and_the_active_one_kept(tmp_path: Path) -> None:
    before = os.environ.get("CONDOR_CONFIG")
    missing = tmp_path / "nowhere" / "condor_config"
    with pytest.raises(FileNotFoundError, match="does not exist .*gproc pool up"):
        activate_client_config(missing)
    assert os.environ.get("CONDOR_CONFIG") == before


def test_refused_collector_is_an_oserror() -> None:
    with pytest.raises(OSError):
        check_reachable("127.0.0.1:1")


def _child(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONDOR_CONFIG"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_wms_built_before_its_pool_answers_unavailable(tmp_path: Path) -> None:
    """The processing WMS from the factory, with no personal pool under the state dir."""
    res = _child(
        """
        import sys
        from pathlib import Path
        from gproc.wrappers.base import WmsUnavailable
        from gproc.wrappers.htcondor.factory import create
        wms = create({"collector": "127.0.0.1:1"}, Path(sys.argv[1]))
        for _ in range(2):
            try:
                wms.pool_summary()
            except WmsUnavailable as exc:
                print("unavailable:", exc)
        print("ping reachable:", wms.ping().reachable)
        """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("unavailable:") == 2
    assert "does not exist" in res.stdout
    assert "ping reachable: False" in res.stdout


def test_dag_runner_built_before_its_pool_answers_unavailable(tmp_path: Path) -> None:
    """The workflow runner as ``build_runner`` makes it, with no pool: the case that
    ended the test process (status 4) once a later DAGMan submit contacted a collector."""
    res = _child(
        """
        import sys
        from pathlib import Path
        from gproc.settings import Settings
        from gproc.wrappers.base import WmsUnavailable
        from gproc.workflows.app import build_runner
        settings = Settings(state_dir=Path(sys.argv[1]))
        settings.htcondor.collector = "127.0.0.1:1"
        runner = build_runner(settings)
        for _ in range(2):
            try:
                runner.find(["wf-1"])
            except WmsUnavailable as exc:
                print("unavailable:", exc)
        """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("unavailable:") == 2
    assert "does not exist" in res.stdout
