"""Input staging: one directory per task, the inputs in it, in-kernel copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gproc.domain import InvalidTaskRequest
from gproc.staging import (
    TaskDirs,
    check_sandbox_name,
    copy_file,
    local_file_resolver,
    stage_inputs,
)

TASK = "0123456789abcdef0123456789abcdef"


def test_inputs_are_staged_in_the_task_directory_itself(tmp_path: Path) -> None:
    src = tmp_path / "src.tif"
    src.write_bytes(b"II*\x00" + bytes(100))
    dirs = TaskDirs(tmp_path / "tasks")
    stage_inputs(
        dirs.inputs(TASK),
        {"image": "in_image.tif", "aux": "in_aux.bin"},
        {"image": str(src)},
        {"aux": b"inline"},
        local_file_resolver((tmp_path,)),
        1024,
    )
    assert dirs.inputs(TASK) == dirs.task(TASK)
    assert sorted(p.name for p in dirs.task(TASK).iterdir()) == ["in_aux.bin", "in_image.tif"]
    assert (dirs.task(TASK) / "in_image.tif").read_bytes() == src.read_bytes()
    assert (dirs.task(TASK) / "in_aux.bin").read_bytes() == b"inline"
    assert dirs.outputs(TASK) == dirs.task(TASK) / "out"  # made later, when outputs come


def test_tasks_staged_under_in_by_earlier_versions_are_still_found(tmp_path: Path) -> None:
    dirs = TaskDirs(tmp_path / "tasks")
    (dirs.task(TASK) / "in").mkdir(parents=True)
    assert dirs.inputs(TASK) == dirs.task(TASK) / "in"


@pytest.mark.parametrize("name", ["out", "in"])
def test_the_task_directory_s_own_sub_names_are_not_sandbox_names(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        check_sandbox_name(name)


@pytest.mark.parametrize("size", [0, 1, 3 << 20])
def test_copy_file_copies_every_byte(tmp_path: Path, size: int) -> None:
    src = tmp_path / "a"
    src.write_bytes(os.urandom(size))
    copy_file(src, tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == src.read_bytes()


def test_a_directory_or_a_missing_file_is_not_a_readable_input(tmp_path: Path) -> None:
    resolve = local_file_resolver((tmp_path,))
    (tmp_path / "d").mkdir()
    for source in (str(tmp_path / "d"), str(tmp_path / "missing")):
        with pytest.raises(InvalidTaskRequest, match="not a readable file"):
            resolve(source, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_symlink_out_of_the_allowed_roots_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("server file")
    (allowed / "link").symlink_to(secret)
    with pytest.raises(InvalidTaskRequest, match="not allowed"):
        local_file_resolver((allowed,))(str(allowed / "link"), tmp_path / "dest")
