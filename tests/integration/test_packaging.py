"""Packaging: a non-editable install exposes one import package, ``gproc``, with its
package data; the source tree (pytest, the editable install) imports the same modules."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import gproc.migrations
import gproc.security

REPO = Path(__file__).resolve().parents[2]
GENERIC = ("security", "services", "connectors", "wrappers", "storage_gateway")
_SKIP = shutil.ignore_patterns(
    ".git", ".venv", ".state", "node_modules", "__pycache__", "build", "*.egg-info", ".ci"
)


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
    return proc  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with gproc installed from a wheel built from a copy of the tree
    (offline: no build isolation, no index; dependencies come from the test venv)."""
    base = tmp_path_factory.mktemp("pkg")
    src = base / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=_SKIP)
    wheels = base / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(wheels),
            str(src),
        ]
    )
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    site = Path(
        _run(
            [
                str(venv / "bin/python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ]
        ).stdout.strip()
    )
    (venv / "before.txt").write_text("\n".join(sorted(p.name for p in site.iterdir())))
    wheel = next(wheels.glob("gproc-*.whl"))
    _run(
        [
            *pip,
            "--python",
            str(venv / "bin/python"),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )
    # the dependencies: the test venv's site-packages as a plain path (its .pth files,
    # among them the editable gproc's finder, are not run from there)
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _site(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def test_install_exposes_only_gproc_at_top_level(installed: Path) -> None:
    site = _site(installed)
    before = set((installed / "before.txt").read_text().split())
    added = {p.name for p in site.iterdir()} - before - {"zz_test_deps.pth"}
    assert {n for n in added if not n.endswith(".dist-info")} == {"gproc"}
    assert [n for n in added if n.endswith(".dist-info")] == ["gproc-0.1.0.dist-info"]
    for name in GENERIC:  # the folders are inside gproc, as real copies
        assert (site / "gproc" / name).is_dir() and not (site / "gproc" / name).is_symlink()


def test_installed_command_runs_with_its_package_data(installed: Path, tmp_path: Path) -> None:
    site = _site(installed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPROC_")}
    env["GPROC_STATE_DIR"] = str(tmp_path / "state")
    gproc = str(installed / "bin/gproc")
    helped = _run([gproc, "--help"], cwd=tmp_path, env=env).stdout
    assert {"task", "db", "serve", "vo"} <= set(helped.split())
    code = (
        "import gproc, gproc.security, gproc.migrations as m; "
        "print(gproc.__file__); print(gproc.security.__file__); print(m.head())"
    )
    lines = _run([str(installed / "bin/python"), "-c", code], cwd=tmp_path, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in lines[:2])
    head = importlib.import_module("gproc.migrations").head()  # the source tree's newest
    assert lines[2] == head
    up = _run([gproc, "db", "upgrade"], cwd=tmp_path, env=env).stdout
    assert f"unversioned -> {head}" in up  # every revision file is in the wheel
    assert f"{head} (up to date)" in _run([gproc, "db", "current"], cwd=tmp_path, env=env).stdout
    for data in (
        "gproc/migrations/env.py",
        "gproc/migrations/versions/v0001_initial.py",
        "gproc/connectors/payload",
        "gproc/wrappers/htcondor",
    ):
        assert (site / data).exists(), data
    assert list((site / "gproc/wrappers/htcondor").glob("*.sh"))
    assert list((site / "gproc/connectors/payload").glob("*.py"))


def test_source_tree_imports_the_modules_of_the_editable_install(tmp_path: Path) -> None:
    """pytest runs from the repository root: what it imports is what the editable
    install gives any other process, and the generic folder names are not modules."""
    assert Path(gproc.security.__file__).resolve().is_relative_to(REPO)
    code = (
        "import importlib.util, gproc.security, gproc.migrations; "
        "print(gproc.security.__file__); print(gproc.migrations.__file__); "
        f"print([n for n in {GENERIC!r} if importlib.util.find_spec(n)])"
    )
    out = _run([sys.executable, "-c", code], cwd=tmp_path).stdout.splitlines()
    assert Path(out[0]).resolve() == Path(gproc.security.__file__).resolve()
    assert Path(out[1]).resolve() == Path(gproc.migrations.__file__).resolve()
    assert out[2] == "[]"  # outside the tree `import security` finds nothing
    for name in GENERIC:  # nothing in this test session imported the folders by bare name
        assert name not in sys.modules, name
        assert importlib.import_module(f"gproc.{name}").__name__ == f"gproc.{name}"
