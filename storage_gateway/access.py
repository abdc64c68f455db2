"""Who may read or write which storage area, in the security policy's own terms.

Rules use the FQAN pattern grammar of :mod:`security.policy` (``/vo/*`` any member,
``/vo/g`` a group, ``/vo/Role=datamanager`` a role) plus optional DN lists, so a
site states storage rules exactly like job rules. Kinds of area:

* shared (``/public``, ``/groups/<g>``): ``read`` and ``write`` pattern lists;
  writers may also read.
* private (``/private/<user>``): every identity matching ``members`` owns one
  sub-area keyed by :func:`user_key`; nobody else may see it (another user's area
  answers NotFound, exactly like a missing one, so its existence is not revealed).

Private area keys. A DN is unique but unreadable and full of characters that do not
belong in a path; a CN is readable but neither unique nor safe. The key is therefore
``<sanitised CN>-<12 hex of SHA-256 of the canonical slash DN>``, e.g.
``alice-3f2a9c0d1e77``: the hash makes it unique per DN (two "John Smith" from
different CAs differ), the CN only makes it recognisable, and the result always
passes path validation. The proxy chain does not matter: the end-entity DN is used.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from gproc.security.identity import Identity, normalise_grid_dn, same_dn
from gproc.security.policy import Decision, FqanPattern, PolicyError

_NOT_SAFE = re.compile(r"[^a-z0-9]+")
KEY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,31})-[0-9a-f]{12}$")


class Op(StrEnum):
    """What an operation does to an area (rename and delete are writes)."""

    READ = "read"
    WRITE = "write"


class AreaKind(StrEnum):
    SHARED = "shared"
    PRIVATE = "private"


def user_key(identity: Identity) -> str:
    """The private-area directory name of ``identity`` (see module docstring)."""
    canonical = normalise_grid_dn(identity.subject_grid)
    digest = hashlib.sha256("/".join(f"{k}={v}" for k, v in canonical).encode("utf-8")).hexdigest()[
        :12
    ]
    cns = [v for k, v in canonical if k == "cn"]
    ascii_cn = (
        unicodedata.normalize("NFKD", cns[-1] if cns else "")
        .encode("ascii", "ignore")
        .decode("ascii")
        .lower()
    )
    label = _NOT_SAFE.sub("-", ascii_cn).strip("-")[:32].strip("-") or "user"
    return f"{label}-{digest}"


@dataclass(frozen=True)
class Principals:
    """FQAN patterns and DNs; matches an identity holding any of them."""

    fqans: tuple[FqanPattern, ...] = ()
    dns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, fqans: Iterable[str] = (), dns: Iterable[str] = ()) -> Principals:
        """Parse pattern strings; PolicyError names the bad one."""
        dn_list = tuple(dns)
        for dn in dn_list:
            try:
                normalise_grid_dn(dn)
            except ValueError as exc:
                raise PolicyError(str(exc)) from None
        return cls(tuple(FqanPattern.parse(p) for p in fqans), dn_list)

    def covers(self, identity: Identity) -> bool:
        if any(p.matches_identity(identity) for p in self.fqans):
            return True
        return any(same_dn(dn, identity.subject_grid) for dn in self.dns)


@dataclass(frozen=True)
class AreaRules:
    """Access rules of one area (``name`` is its mount point, used in messages)."""

    name: str
    kind: AreaKind
    read: Principals = Principals()
    write: Principals = Principals()
    members: Principals = Principals()

    def decide(self, identity: Identity, op: Op, owner: str | None = None) -> Decision:
        """Allow or refuse ``op``; for private areas ``owner`` is the addressed key."""
        if self.kind is AreaKind.PRIVATE:
            return self._private(identity, owner)
        if op is Op.WRITE:
            if self.write.covers(identity):
                return Decision(True, f"{self.name}:write", "writer")
            return Decision(
                False,
                f"{self.name}:write",
                f"writing to {self.name} needs one of {self._names(self.write)}",
            )
        if self.read.covers(identity) or self.write.covers(identity):
            return Decision(True, f"{self.name}:read", "reader")
        return Decision(
            False, f"{self.name}:read", f"reading {self.name} needs one of {self._names(self.read)}"
        )

    def _private(self, identity: Identity, owner: str | None) -> Decision:
        rule = f"{self.name}:owner"
        if not self.members.covers(identity):
            return Decision(
                False, f"{self.name}:members", f"no private area for this identity in {self.name}"
            )
        if owner is not None and owner != user_key(identity):
            return Decision(False, rule, "another user's private area")
        return Decision(True, rule, "owner")

    @staticmethod
    def _names(principals: Principals) -> str:
        items = [p.text for p in principals.fqans] + list(principals.dns)
        return ", ".join(items) if items else "(nobody)"
