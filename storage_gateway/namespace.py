"""The gateway's single namespace: mount points (areas) mapped onto storage backends.

Configured in TOML (see etc/gateway.toml). ``[backends.<name>]`` tables say how to
reach a storage system; ``[[area]]`` entries mount a directory of a backend at a
logical path with access rules and an optional quota. Resolution works on validated
path components only and matches mount points component-wise (``/public`` never
captures ``/publicity``; ``/private/ann`` never captures ``/private/anna``), so the
backend path is always the area root plus the caller's remaining components.
Backends connect lazily: one that is down fails only the areas mounted on it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gproc import errors
from gproc.security.policy import PolicyError
from gproc.storage_gateway import paths
from gproc.storage_gateway.access import AreaKind, AreaRules, Principals
from gproc.storage_gateway.backends.base import Backend, InvalidPath

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class NamespaceError(errors.InvalidRequest, ValueError):
    """The namespace file is malformed (raised at load time, naming the bad entry)."""


def parse_size(value: int | str) -> int:
    """Bytes from ``1048576``, ``"10 GiB"`` or ``"500MB"``."""
    if isinstance(value, bool):
        raise NamespaceError(f"bad size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise NamespaceError(f"negative size {value}")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise NamespaceError(f"bad size {value!r}")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


@dataclass(frozen=True)
class Area:
    """One mount point: logical components, backend name, root inside it, rules."""

    mount: tuple[str, ...]
    backend: str
    root: tuple[str, ...]
    rules: AreaRules
    quota: int | None = None  # bytes; per user for private areas

    @property
    def kind(self) -> AreaKind:
        return self.rules.kind

    @property
    def name(self) -> str:
        return paths.join(self.mount)


@dataclass(frozen=True)
class Resolved:
    """Where a logical path lives: area, backend, and the path inside the backend.

    ``owner`` is the private-area key addressed (None for shared areas and for the
    bare private mount point); ``area_root`` is the backend path quotas are counted on.
    """

    area: Area
    backend: Backend
    backend_path: str
    rest: tuple[str, ...]
    owner: str | None
    area_root: str


BackendFactory = Callable[[Mapping[str, Any]], Backend]


def make_backend(conf: Mapping[str, Any]) -> Backend:
    """Build a backend from its ``[backends.<name>]`` table (does not connect)."""
    kind = conf.get("type")
    if kind == "posix":
        from gproc.storage_gateway.backends.posix import PosixBackend

        return PosixBackend(
            conf["root"],
            create=bool(conf.get("create", False)),
            fsync=bool(conf.get("fsync", True)),
        )
    if kind == "hdfs":
        from gproc.storage_gateway.backends.hdfs import HdfsBackend

        return HdfsBackend(conf["url"], conf.get("root", "/"), user=conf.get("user", "gproc"))
    if kind == "glusterfs":
        from gproc.storage_gateway.backends.glusterfs import GlusterBackend

        return GlusterBackend(
            conf.get("host", "127.0.0.1"),
            conf["volume"],
            conf.get("root", "/"),
            port=int(conf.get("port", 24007)),
        )
    raise NamespaceError(f"unknown backend type {kind!r}")


class Namespace:
    """The mount table; immutable after construction, shared by all requests."""

    def __init__(self, areas: list[Area], backends: Mapping[str, Backend]) -> None:
        self.areas = sorted(areas, key=lambda a: len(a.mount), reverse=True)
        self.backends = dict(backends)
        mounts = [a.mount for a in areas]
        for a in areas:
            if a.backend not in self.backends:
                raise NamespaceError(f"area {a.name}: unknown backend {a.backend!r}")
            if mounts.count(a.mount) > 1:
                raise NamespaceError(f"area {a.name} is mounted twice")
            nested = [m for m in mounts if m != a.mount and paths.is_within(m, a.mount)]
            if nested or (a.kind is AreaKind.PRIVATE and not a.mount):
                raise NamespaceError(f"area {a.name} may not contain other mount points")

    @classmethod
    def load(cls, path: str | Path, factory: BackendFactory = make_backend) -> Namespace:
        """Read a namespace TOML file; NamespaceError names what is wrong."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise NamespaceError(f"{path}: {exc}") from None
        return cls.from_dict(data, factory)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], factory: BackendFactory = make_backend
    ) -> Namespace:
        """Build from parsed TOML (tests state namespaces inline)."""
        if data.get("version", 1) != 1:
            raise NamespaceError(f"unsupported namespace version {data.get('version')!r}")
        unknown = set(data) - {"version", "backends", "area"}
        if unknown:
            raise NamespaceError(f"unknown top-level keys: {sorted(unknown)}")
        backends = {}
        for name, conf in dict(data.get("backends", {})).items():
            if not _NAME.match(name):
                raise NamespaceError(f"bad backend name {name!r}")
            try:
                backends[name] = factory(conf)
            except (KeyError, ValueError, InvalidPath) as exc:
                raise NamespaceError(f"backend {name}: {exc}") from None
        areas = [_area(entry, i) for i, entry in enumerate(data.get("area", []))]
        return cls(areas, backends)

    # -- resolution -------------------------------------------------------------------
    def find(self, parts: tuple[str, ...]) -> Area | None:
        """The area whose mount point contains ``parts`` (component-wise), if any."""
        for area in self.areas:  # longest mount first
            if paths.is_within(parts, area.mount):
                return area
        return None

    def resolve(self, path: str) -> Resolved | None:
        """Map a logical path to its backend location (None: a virtual directory).

        Raises InvalidPath for non-canonical input and NotFound-free: existence is
        the backend's business. Access is *not* checked here (see gateway)."""
        parts = paths.split(path)
        area = self.find(parts)
        if area is None:
            return None
        rest = parts[len(area.mount) :]
        owner = None
        root = area.root
        if area.kind is AreaKind.PRIVATE:
            if not rest:
                return None  # the private mount point itself lists only the caller's area
            owner, rest = rest[0], rest[1:]
            root = (*area.root, owner)
        return Resolved(
            area,
            self.backends[area.backend],
            paths.join(root + rest),
            rest,
            owner,
            paths.join(root),
        )

    def children(self, parts: tuple[str, ...]) -> list[tuple[str, Area]]:
        """Mount points directly or indirectly below the virtual directory ``parts``.

        Returns (child name, area) pairs; a virtual directory exists when non-empty."""
        out = []
        for area in self.areas:
            if len(area.mount) > len(parts) and paths.is_within(area.mount, parts):
                out.append((area.mount[len(parts)], area))
        return out


def _area(entry: Mapping[str, Any], index: int) -> Area:
    label = f"area #{index + 1}"
    allowed = {
        "path",
        "backend",
        "root",
        "type",
        "read",
        "write",
        "read_dns",
        "write_dns",
        "members",
        "member_dns",
        "quota",
    }
    unknown = set(entry) - allowed
    if unknown:
        raise NamespaceError(f"{label}: unknown keys {sorted(unknown)}")
    try:
        mount = paths.split(entry["path"])
        if not mount:
            raise NamespaceError("nothing can be mounted at /")
        root = paths.split(entry.get("root", "/"))
        kind = AreaKind(entry.get("type", "shared"))
        name = paths.join(mount)
        rules = AreaRules(
            name,
            kind,
            read=Principals.parse(entry.get("read", ()), entry.get("read_dns", ())),
            write=Principals.parse(entry.get("write", ()), entry.get("write_dns", ())),
            members=Principals.parse(entry.get("members", ()), entry.get("member_dns", ())),
        )
        quota = parse_size(entry["quota"]) if "quota" in entry else None
        return Area(mount, str(entry["backend"]), root, rules, quota)
    except (KeyError, ValueError, InvalidPath, PolicyError) as exc:
        raise NamespaceError(f"{label}: {exc}") from None
