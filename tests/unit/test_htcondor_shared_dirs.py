"""Shared-filesystem mode without a pool: descriptions, job directories, staged
executables and proxies, and job ids derived from submit results."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gproc.wrappers.base import JobSpec
from gproc.wrappers.htcondor.shared import EXEC_DIR, PROXY_NAME, SharedDirs, job_dir
from gproc.wrappers.htcondor.submit import derived_job_ids, job_description

TASK = "0123456789abcdef0123456789abcdef"


def _spec(tmp_path: Path, **kw: Any) -> JobSpec:
    script = tmp_path / "tool.sh"
    if not script.exists():
        script.write_text("#!/bin/sh\necho hi\n")
        script.chmod(0o755)
    return JobSpec(task_id=TASK, executable=script, **kw)


def test_unspooled_description_has_no_leave_in_queue_and_is_marked_shared(
    tmp_path: Path,
) -> None:
    spooled = job_description(_spec(tmp_path), "prod", tmp_path / "sb")
    shared = job_description(_spec(tmp_path), "prod", tmp_path / "sb", spooled=False)
    assert "leave_in_queue" in spooled and "MY.GprocShared" not in spooled
    assert "leave_in_queue" not in shared and shared["MY.GprocShared"] == "true"
    assert {k: v for k, v in shared.items() if k != "MY.GprocShared"} == {
        k: v for k, v in spooled.items() if k != "leave_in_queue"
    }


@pytest.mark.parametrize(
    ("task_id", "attempt"),
    [("../" + TASK[3:], 1), (TASK.upper(), 1), (TASK, 0), (TASK, True), (TASK, "1"), (TASK, None)],
)
def test_job_dir_refuses_anything_but_a_task_id_and_a_positive_attempt(
    tmp_path: Path, task_id: str, attempt: object
) -> None:
    with pytest.raises(ValueError, match="no job directory"):
        job_dir(tmp_path, task_id, attempt)


def test_each_attempt_gets_a_fresh_directory(tmp_path: Path) -> None:
    dirs = SharedDirs(tmp_path / "sb")
    first = dirs.prepare(_spec(tmp_path, attempt=1))
    d1 = job_dir(tmp_path / "sb", TASK, 1)
    (d1 / "out.tif").write_text("attempt 1")
    dirs.prepare(_spec(tmp_path, attempt=2))
    assert (d1 / "out.tif").is_file()  # another attempt's directory is left alone
    assert list(job_dir(tmp_path / "sb", TASK, 2).iterdir()) == []
    # the same attempt submitted again (its first outcome was lost): emptied
    dirs.prepare(_spec(tmp_path, attempt=1))
    assert list(d1.iterdir()) == []
    assert first.executable.parent == tmp_path / "sb" / EXEC_DIR


def test_the_executable_is_staged_once_per_content(tmp_path: Path) -> None:
    dirs = SharedDirs(tmp_path / "sb")
    spec = _spec(tmp_path)
    a = dirs.prepare(spec).executable
    b = dirs.prepare(spec).executable
    assert a == b and a.read_bytes() == spec.executable.read_bytes()
    assert a.name.endswith("-tool.sh") and stat.S_IMODE(a.stat().st_mode) == 0o755
    spec.executable.write_text("#!/bin/sh\necho changed\n")
    c = dirs.prepare(spec).executable
    assert c != a and c.read_text().endswith("changed\n")
    assert a.read_text().endswith("hi\n")  # a queued job keeps the script it was given
    assert sorted(p.name for p in (tmp_path / "sb" / EXEC_DIR).iterdir()) == sorted(
        [a.name, c.name]
    )


def test_the_proxy_is_copied_into_the_job_directory_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    proxy = tmp_path / "x509up"
    proxy.write_text("PROXY")
    proxy.chmod(0o600)
    spec = SharedDirs(tmp_path / "sb").prepare(_spec(tmp_path, x509_proxy=proxy))
    assert spec.x509_proxy == job_dir(tmp_path / "sb", TASK, 1) / PROXY_NAME
    assert spec.x509_proxy.read_text() == "PROXY"
    assert stat.S_IMODE(spec.x509_proxy.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another account needs root")
def test_job_directories_and_proxies_are_given_to_the_job_owner(tmp_path: Path) -> None:
    proxy = tmp_path / "x509up"
    proxy.write_text("PROXY")
    spec = SharedDirs(tmp_path / "sb", owner=(4321, 4322)).prepare(
        _spec(tmp_path, x509_proxy=proxy)
    )
    for path in (job_dir(tmp_path / "sb", TASK, 1), spec.x509_proxy):
        assert path is not None
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (4321, 4322)


@dataclass
class _Result:
    """What ``Schedd.submit`` returns, as far as job ids go."""

    cluster_id: int
    first: int
    procs: int
    ad: dict[str, Any] = field(default_factory=dict)

    def cluster(self) -> int:
        return self.cluster_id

    def first_proc(self) -> int:
        return self.first

    def num_procs(self) -> int:
        return self.procs

    def clusterad(self) -> dict[str, Any]:
        return self.ad


def test_job_ids_are_derived_from_submit_results_in_spec_order() -> None:
    results = [(_Result(7, 0, 2, {"QDate": 100}), [0, 2]), (_Result(8, 0, 1, {"QDate": 101}), [1])]
    assert derived_job_ids("vm", results) == {
        0: (7, 0, "vm#7.0#100"),
        2: (7, 1, "vm#7.1#100"),
        1: (8, 0, "vm#8.0#101"),
    }


@pytest.mark.parametrize(
    ("name", "result"),
    [
        (None, _Result(7, 0, 1, {"QDate": 100})),
        ("vm", _Result(7, 0, 1, {})),  # no QDate: the queue must say
        ("vm", _Result(7, 0, 2, {"QDate": 100})),  # more procs than specs
    ],
)
def test_no_derivation_without_everything_it_needs(name: str | None, result: _Result) -> None:
    assert derived_job_ids(name, [(result, [0])]) is None
