"""Who may read or write which storage area, in the security policy's own terms.

Rules use the FQAN pattern grammar of :mod:`security.policy` (``/vo/*`` any member,
``/vo/g`` a group, ``/vo/Role=datamanager`` a role) plus optional DN lists, so a
site states storage rules exactly like job rules. Kinds of area:

* shared (``/public``, ``/groups/<g>``): ``read`` and ``write`` pattern lists;
  writers may also read.
* private (``/private/<user>``): every identity matching ``members`` owns one
  sub-area keyed by :func:`user_key`; nobody else may see it (another user's area
  answers NotFound, exactly like a missing one, so its existence is not revealed).

Acting for an owner. Besides validated grid identities, the gateway accepts one
other principal, :class:`ActingForOwner`: a gproc service storing a finished task's
outputs for the task's owner long after the owner's credential expired. It names the
owner DN and the FQANs validated when the task was registered, and the service that
vouches for them; the area rules are applied to that DN and those FQANs exactly as to
the owner, and in addition it may only create directories, write and read files at or
below its ``scope`` (the task's own output folder): no deletes or renames, and nothing
elsewhere. It is built in-process by the service from its own registry
record, never from anything a caller sends.

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

from gproc.security.identity import Fqan, Identity, normalise_grid_dn, same_dn
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


@dataclass(frozen=True)
class ActingForOwner:
    """A service acting for a task's owner within ``scope`` (see module docstring)."""

    subject_grid: str  # the owner's DN (slash form), as recorded at registration
    fqans: tuple[Fqan, ...]  # the owner's FQANs validated at registration
    service: str  # who vouches for it (shown in refusals and logs)
    scope: str  # the one logical folder it may write in (normalised, no trailing /)

    def permits(self, path: str, op: Op) -> bool:
        return path == self.scope or path.startswith(self.scope + "/")


Principal = Identity | ActingForOwner
"""Who a gateway operation runs as."""


def user_key(identity: Principal) -> str:
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

    def covers(self, identity: Principal) -> bool:
        if any(p.anyone or any(p.matches(f) for f in identity.fqans) for p in self.fqans):
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

    def decide(self, identity: Principal, op: Op, owner: str | None = None) -> Decision:
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

    def _private(self, identity: Principal, owner: str | None) -> Decision:
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
