"""Each connector's payload run for real on the execute side, without the scheduler.

The payload (connectors/payload/eotool.py) runs with the execute root's own Python,
GDAL, NumPy and OpenCV (the pool's trixie root), as the service account, in a
sandbox directory inside the root holding exactly the files the plan names; its
outputs are then checked numerically on the host (tests/integration/connector_cases.py).

The root is the personal pool's (``pool`` fixture). ``GPROC_TEST_PAYLOAD_ROOT=<dir>``
names another execute root (a trixie root with the same packages) instead; jobs
then run there as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from gproc.connectors import get_connector
from gproc.connectors.base import EOTOOL
from tests.integration.connector_cases import CASES, ConnectorCase

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]
RUN_TIMEOUT_S = 120.0
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def _chroot_runner(root: Path) -> Runner:
    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CHROOT, "--userspec=65534:65534", str(root), *argv],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
        )

    return run


@pytest.fixture(scope="module")
def execute_root(request: pytest.FixtureRequest) -> Iterator[tuple[Path, Runner]]:
    """(root directory, runner of an argv inside it as an unprivileged user)."""
    override = os.environ.get("GPROC_TEST_PAYLOAD_ROOT")
    if override:
        yield Path(override), _chroot_runner(Path(override))
        return
    try:
        pool = request.getfixturevalue("pool")
    except pytest.FixtureLookupError:
        pytest.skip("no `pool` fixture (tests/fixtures/pool.py) to provide the execute root")
    if not hasattr(pool, "run_in_root"):
        pytest.skip("the pool in use has no local execute root (external pool)")

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return pool.run_in_root(list(argv), timeout=RUN_TIMEOUT_S, user="gproc")

    yield Path(pool.root), run


@pytest.fixture
def sandbox(execute_root: tuple[Path, Runner]) -> Iterator[Path]:
    """A fresh job sandbox inside the execute root, removed afterwards."""
    root, _ = execute_root
    path = root / "tmp" / f"gproc-payload-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_payload_output_is_correct(
    case: ConnectorCase, tmp_path: Path, sandbox: Path, execute_root: tuple[Path, Runner]
) -> None:
    root, run = execute_root
    plan = get_connector(case.tool).plan(case.request(case.make_inputs(tmp_path)))
    for source, name in plan.staging:  # what the core does: stage each source under its name
        shutil.copyfile(source, sandbox / name)
    shutil.copy2(plan.executable, sandbox / EOTOOL.name)  # keeps the executable bit
    inside = "/" + str(sandbox.relative_to(root))

    done = run(["env", "-C", inside, f"./{plan.executable.name}", *plan.arguments])

    assert done.returncode == 0, f"payload failed: {done.stderr[-3000:]}"
    outputs = {port: sandbox / name for port, name in plan.outputs.items()}
    for port, path in outputs.items():
        assert path.is_file(), f"output {port} ({path.name}) missing"
    case.check(outputs)


def test_payload_reports_missing_band(
    tmp_path: Path, sandbox: Path, execute_root: tuple[Path, Runner]
) -> None:
    """A request valid for the connector but not for the data fails with a clear message."""
    root, run = execute_root
    case = next(c for c in CASES if c.tool == "band")
    request = case.request(case.make_inputs(tmp_path))
    plan = get_connector("band").plan(
        type(request)(tool="band", inputs=request.inputs, params={"band": 9})
    )
    for source, name in plan.staging:
        shutil.copyfile(source, sandbox / name)
    shutil.copy2(plan.executable, sandbox / EOTOOL.name)
    inside = "/" + str(sandbox.relative_to(root))

    done = run(["env", "-C", inside, f"./{EOTOOL.name}", *plan.arguments])

    assert done.returncode == 1
    assert "band 9 does not exist" in done.stderr
    assert not (sandbox / "out.tif").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["canny", "--in-image=../../etc/passwd", "--out-output=out.tif"],
        ["canny", "--in-image=/etc/passwd", "--out-output=out.tif"],
        ["canny", "--in-image=in_image.tif", "--out-output=$(id).tif"],
        ["canny", "--in-image=in_image.tif", "--out-output=out.tif", "--canny1=nan"],
        ["canny", "--in-image=in_image.tif", "--out-output=out.tif", "--aperture_size=4"],
        ["warp", "--in-image=in_image.tif", "--out-output=out.tif", "--resampling=;id"],
    ],
    ids=["traversal", "absolute", "subst", "nan", "aperture", "choice"],
)
def test_payload_refuses_unsafe_arguments(
    argv: list[str], sandbox: Path, execute_root: tuple[Path, Runner]
) -> None:
    """The payload re-checks what the connector produced: no file outside the sandbox,
    no value outside its type."""
    root, run = execute_root
    shutil.copy2(EOTOOL, sandbox / EOTOOL.name)
    inside = "/" + str(sandbox.relative_to(root))

    done = run(["env", "-C", inside, f"./{EOTOOL.name}", *argv])

    assert done.returncode == 2, done.stderr
    assert "error: argument" in done.stderr
    assert sorted(p.name for p in sandbox.iterdir()) == [EOTOOL.name]
