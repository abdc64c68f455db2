"""Logical path validation: canonical paths pass unchanged, every trick is refused."""

from __future__ import annotations

import pytest

from gproc.storage_gateway import paths
from gproc.storage_gateway.backends.base import InvalidPath

GOOD = [
    "/",
    "/public",
    "/public/a/b.tif",
    "/private/alice-0123456789/data set 1/x.nc",
    "/groups/grid/données/çà.tif",
    "/a/...",  # three dots is an ordinary name on POSIX
    "/a/.hidden",
    "/a/100%",
    "/日本/ファイル.txt",
]

BAD = {
    "empty": "",
    "relative": "public/a",
    "dotdot": "/public/../private/bob",
    "dot": "/public/./a",
    "trailing dotdot": "/public/..",
    "double slash": "/public//a",
    "trailing slash": "/public/",
    "NUL": "/public/a\x00.txt",
    "newline": "/public/a\nb",
    "DEL": "/public/a\x7fb",
    "C1 control": "/public/a\x85b",
    "backslash": "/public/..\\..\\etc",
    "percent dot": "/public/%2e%2e/etc",
    "percent slash": "/public/a%2Fb",
    "double encoded": "/public/%252e%252e",
    "fullwidth dots": "/public/\uff0e\uff0e/x",
    "fullwidth slash": "/public/a\uff0fb",
    "one dot leader": "/public/\u2024\u2024/x",
    "two dot leader": "/public/\u2025/x",
    "RTL override": "/public/evil\u202egpj.exe",
    "zero width joiner": "/public/a\u200db",
    "zero width space": "/public/\u200b..",
    "BOM": "/public/\ufeffa",
    "NFD accent": "/public/cafe\u0301",
    "ligature": "/public/\ufb01le",
    "no-break space": "/public/a\u00a0b",
    "leading space": "/public/ a",
    "trailing space": "/public/a ",
    "line separator": "/public/a\u2028b",
    "private use": "/public/\ue000",
    "unassigned": "/public/\U000e0fff",
    "lone surrogate": "/public/\udc2e\udc2e",
    "reserved prefix": "/public/.gw-upload-0011",
    "long component": "/public/" + "x" * 256,
    "long path": "/" + "/".join(["abcdefgh"] * 600),
}


@pytest.mark.parametrize("path", GOOD)
def test_canonical_paths_pass_unchanged(path: str) -> None:
    assert paths.normalise(path) == path


@pytest.mark.parametrize("path", BAD.values(), ids=BAD.keys())
def test_non_canonical_paths_refused(path: str) -> None:
    with pytest.raises(InvalidPath):
        paths.normalise(path)


def test_split_and_join() -> None:
    assert paths.split("/") == ()
    assert paths.split("/a/b") == ("a", "b")
    assert paths.join(("a", "b")) == "/a/b"
    assert paths.join(()) == "/"
    with pytest.raises(InvalidPath):
        paths.join(("a", ".."))
    with pytest.raises(InvalidPath):
        paths.join(("a/b",))


def test_split_relative_refuses_absolute() -> None:
    assert paths.split_relative("") == ()
    assert paths.split_relative("a/b") == ("a", "b")
    with pytest.raises(InvalidPath):
        paths.split_relative("/etc/passwd")
    with pytest.raises(InvalidPath):
        paths.split_relative("../x")


def test_non_string_refused() -> None:
    with pytest.raises(InvalidPath):
        paths.split(b"/a")  # type: ignore[arg-type]


def test_component_limit_is_in_bytes() -> None:
    assert paths.check_component("é" * 127)  # 254 bytes
    with pytest.raises(InvalidPath):
        paths.check_component("é" * 128)  # 256 bytes


def test_prefix_test_is_component_wise() -> None:
    ann = paths.split("/private/ann")
    assert paths.is_within(paths.split("/private/ann/f"), ann)
    assert paths.is_within(ann, ann)
    assert not paths.is_within(paths.split("/private/anna"), ann)
    assert not paths.is_within(paths.split("/private/anna/f"), ann)
    assert not paths.is_within(paths.split("/private"), ann)


def test_parent() -> None:
    assert paths.parent("/a/b") == "/a"
    assert paths.parent("/a") == "/"
    assert paths.parent("/") == "/"
