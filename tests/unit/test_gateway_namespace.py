"""Namespace configuration and path resolution (pure; backends are never contacted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gproc.storage_gateway.access import AreaKind
from gproc.storage_gateway.backends.base import InvalidPath
from gproc.storage_gateway.backends.glusterfs import GlusterBackend
from gproc.storage_gateway.backends.hdfs import HdfsBackend
from gproc.storage_gateway.backends.posix import PosixBackend
from gproc.storage_gateway.namespace import Namespace, NamespaceError, parse_size

ETC = Path(__file__).resolve().parents[2] / "etc" / "gateway.toml"


def config(tmp_path: Path, *areas: dict) -> dict:
    return {
        "version": 1,
        "backends": {"local": {"type": "posix", "root": str(tmp_path)}},
        "area": list(areas),
    }


def test_shipped_config_loads() -> None:
    ns = Namespace.load(ETC)
    assert {a.name for a in ns.areas} == {"/public", "/private", "/groups/grid"}
    assert isinstance(ns.backends["local"], PosixBackend)
    assert isinstance(ns.backends["hdfs"], HdfsBackend)
    assert isinstance(ns.backends["gluster"], GlusterBackend)
    public = ns.find(("public",))
    assert public is not None and public.quota == 500 * 2**30
    assert [p.text for p in public.rules.write.fqans] == ["/testvo/Role=datamanager"]


def test_resolution_maps_to_area_root(tmp_path: Path) -> None:
    ns = Namespace.from_dict(
        config(
            tmp_path,
            {"path": "/public", "backend": "local", "root": "/pub"},
            {"path": "/groups/grid", "backend": "local", "root": "/g"},
        )
    )
    r = ns.resolve("/public/a/b.tif")
    assert r is not None and r.backend_path == "/pub/a/b.tif" and r.area_root == "/pub"
    assert r.rest == ("a", "b.tif") and r.owner is None
    g = ns.resolve("/groups/grid/x")
    assert g is not None and g.backend_path == "/g/x"
    assert ns.resolve("/groups") is None  # virtual
    assert ns.resolve("/") is None


def test_mount_points_match_whole_components(tmp_path: Path) -> None:
    ns = Namespace.from_dict(config(tmp_path, {"path": "/public", "backend": "local"}))
    assert ns.find(("publicity",)) is None
    assert ns.find(("public", "x")) is not None
    assert ns.resolve("/publicity/x") is None


def test_private_area_owner_is_first_component(tmp_path: Path) -> None:
    ns = Namespace.from_dict(
        config(
            tmp_path, {"path": "/private", "backend": "local", "type": "private", "root": "/home"}
        )
    )
    r = ns.resolve("/private/ann-0123456789ab/data/f")
    assert r is not None and r.owner == "ann-0123456789ab"
    assert r.backend_path == "/home/ann-0123456789ab/data/f"
    assert r.area_root == "/home/ann-0123456789ab"
    assert ns.resolve("/private") is None
    area = ns.find(("private",))
    assert area is not None and area.kind is AreaKind.PRIVATE


@pytest.mark.parametrize(
    "bad",
    ["/public/../private/x", "/public/%2e%2e/x", "public/x", "/public/a\x00", "/public/\u202ex"],
)
def test_resolution_refuses_bad_paths(tmp_path: Path, bad: str) -> None:
    ns = Namespace.from_dict(config(tmp_path, {"path": "/public", "backend": "local"}))
    with pytest.raises(InvalidPath):
        ns.resolve(bad)


@pytest.mark.parametrize(
    "area, message",
    [
        ({"path": "/x", "backend": "nope"}, "unknown backend"),
        ({"path": "/", "backend": "local"}, "mounted at /"),
        ({"path": "/x/../y", "backend": "local"}, "area #1"),
        ({"path": "/x", "backend": "local", "root": "/a/../../etc"}, "area #1"),
        ({"path": "/x", "backend": "local", "read": ["/testvo/Role="]}, "bad role"),
        ({"path": "/x", "backend": "local", "type": "weird"}, "area #1"),
        ({"path": "/x", "backend": "local", "quota": "lots"}, "bad size"),
        ({"path": "/x", "backend": "local", "colour": "red"}, "unknown keys"),
        ({"path": "/x", "backend": "local", "read_dns": ["CN=x"]}, "slash-form"),
    ],
)
def test_bad_area_entries_refused_at_load(tmp_path: Path, area: dict, message: str) -> None:
    with pytest.raises(NamespaceError, match=message):
        Namespace.from_dict(config(tmp_path, area))


def test_nested_and_duplicate_mounts_refused(tmp_path: Path) -> None:
    with pytest.raises(NamespaceError, match="mounted twice"):
        Namespace.from_dict(
            config(tmp_path, {"path": "/a", "backend": "local"}, {"path": "/a", "backend": "local"})
        )
    with pytest.raises(NamespaceError, match="other mount points"):
        Namespace.from_dict(
            config(
                tmp_path, {"path": "/a", "backend": "local"}, {"path": "/a/b", "backend": "local"}
            )
        )


def test_unknown_backend_type_refused(tmp_path: Path) -> None:
    data = config(tmp_path)
    data["backends"]["x"] = {"type": "ftp"}
    with pytest.raises(NamespaceError, match="unknown backend type"):
        Namespace.from_dict(data)


def test_children_of_virtual_directories(tmp_path: Path) -> None:
    ns = Namespace.from_dict(
        config(
            tmp_path,
            {"path": "/public", "backend": "local"},
            {"path": "/groups/grid", "backend": "local"},
            {"path": "/groups/eo", "backend": "local"},
        )
    )
    assert sorted(n for n, _ in ns.children(())) == ["groups", "groups", "public"]
    assert sorted(n for n, _ in ns.children(("groups",))) == ["eo", "grid"]
    assert ns.children(("nothing",)) == []


@pytest.mark.parametrize(
    "text, value",
    [
        (0, 0),
        (1024, 1024),
        ("1 KiB", 1024),
        ("2MB", 2 * 10**6),
        ("1.5 GiB", 3 * 2**29),
        ("7", 7),
        ("3 b", 3),
    ],
)
def test_parse_size(text: int | str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["-1", -5, "1 XB", "", True, "1e9"])
def test_parse_size_refuses_garbage(text: int | str) -> None:
    with pytest.raises(NamespaceError):
        parse_size(text)
