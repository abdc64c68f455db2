"""Logical path validation: one canonical spelling per file, everything else refused.

Pure functions, no I/O. A logical path is absolute (``/public/a/b.tif``); a path
inside an area or backend is the same shape relative to that root. Rather than
"cleaning" suspicious input (which is how traversal bugs are born), anything that is
not already canonical is refused with :class:`InvalidPath`:

* empty components (``//``), ``.`` and ``..``, a trailing ``/`` (except the root);
* NUL, control characters, backslashes, and any residual percent-encoding
  (``%2e``, ``%2F``...): fronts decode URLs exactly once, so a ``%XX`` left after
  that is a double-encoding attempt;
* Unicode that is not NFKC-stable (fullwidth ``．``/``／``, the one/two-dot leaders,
  ligatures...), format characters (RTL/LTR overrides, zero-width joiners, BOM),
  surrogates, private-use and unassigned code points, line/paragraph separators;
* leading/trailing spaces in a component, over-long names (> 255 UTF-8 bytes per
  component, > 4096 in total), and the gateway's reserved in-flight upload prefix.
"""

from __future__ import annotations

import re
import unicodedata

from gproc.storage_gateway.backends.base import InvalidPath

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
RESERVED_PREFIX = ".gw-"  # in-flight uploads / replaced files; never user-addressable
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_FORBIDDEN = frozenset("\\\x00")


def check_component(name: str) -> str:
    """Return ``name`` when it is one canonical path component; else raise InvalidPath."""
    if not isinstance(name, str) or not name:
        raise InvalidPath("empty path component")
    if name in (".", ".."):
        raise InvalidPath(f"relative component {name!r} is not allowed")
    if "/" in name:
        raise InvalidPath(f"component {name!r} contains '/'")
    if any(c in _FORBIDDEN for c in name):
        raise InvalidPath(f"component {name!r} contains a NUL or backslash")
    for ch in name:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise InvalidPath(f"component {name!r} contains character U+{ord(ch):04X}")
    if unicodedata.normalize("NFKC", name) != name:
        raise InvalidPath(f"component {name!r} is not in Unicode NFKC form")
    if _PERCENT.search(name):
        raise InvalidPath(f"component {name!r} contains percent-encoding")
    if name != name.strip():
        raise InvalidPath(f"component {name!r} has leading or trailing whitespace")
    if name.startswith(RESERVED_PREFIX):
        raise InvalidPath(f"component {name!r} uses the reserved prefix {RESERVED_PREFIX!r}")
    if len(name.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise InvalidPath("path component longer than 255 bytes")
    return name


def split(path: str) -> tuple[str, ...]:
    """Components of an absolute canonical path (``/`` gives ``()``)."""
    if not isinstance(path, str):
        raise InvalidPath("path must be a string")
    if not path.startswith("/"):
        raise InvalidPath(f"path {path!r} must start with '/'")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidPath("path longer than 4096 bytes")
    if path == "/":
        return ()
    if path.endswith("/"):
        raise InvalidPath(f"path {path!r} ends with '/'")
    return tuple(check_component(c) for c in path[1:].split("/"))


def split_relative(path: str) -> tuple[str, ...]:
    """Components of a path relative to an area root (``""`` is the root itself)."""
    if not isinstance(path, str):
        raise InvalidPath("path must be a string")
    if path.startswith("/"):
        raise InvalidPath(f"absolute path {path!r} where a relative one is expected")
    return split("/" + path) if path else ()


def join(parts: tuple[str, ...] | list[str]) -> str:
    """The canonical absolute path of validated components."""
    return "/" + "/".join(check_component(p) for p in parts)


def normalise(path: str) -> str:
    """Validate and return ``path`` (identical on success: canonical input only)."""
    return join(split(path))


def is_within(path: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    """Component-wise prefix test: ``/private/ann`` does not contain ``/private/anna``."""
    return path[: len(prefix)] == prefix


def parent(path: str) -> str:
    """Parent of a canonical absolute path (the root is its own parent)."""
    parts = split(path)
    return join(parts[:-1]) if parts else "/"
