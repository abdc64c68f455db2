"""Authorisation policy: who may do which operation with which tool, on whose tasks.

The policy is a TOML file (see etc/policy.toml) so sites change rules without code.
Evaluation order, chosen so every refusal names exactly one rule:

1. DN bans (``[[ban]]``) refuse everything for a DN.
2. Limited proxies are refused for operations listed in ``[proxy] full_required``.
3. ``[[rule]]`` entries in file order; the first whose operation, tool and principal
   all match decides (``effect = "allow"`` or ``"deny"``).
4. Nothing matched: the ``default`` rule refuses.

FQAN patterns (``fqans = [...]``) compare VOMS group and role:
``/vo/g`` means group ``/vo/g`` with any role; ``/vo/g/Role=r`` needs role ``r`` in that
group; ``/vo/*`` means ``/vo`` or any subgroup, any role (``/vo/*/Role=r`` with role ``r``);
``/*`` is any VO member; ``*`` is any authenticated identity, with or without VOMS;
``@vo-admin`` is an administrator of any VO (see below).

VO administrators are those holding the VO admin role in the VO's root group
(``/vo/Role=<admin_role>``), the same rule the VO admin service applies: the role is
the ``[vo] admin_role`` setting, given to :meth:`Policy.load` by the services (default
``VO-Admin``, as in VOMS). A VO administrator may act on every task of that VO.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gproc.security.identity import Fqan, Identity, same_dn

OPERATIONS = frozenset(
    {
        "register",
        "submit",
        "status",
        "log",
        "retrieve",
        "cancel",
        "hold",
        "release",
        "resubmit",
        "purge",
        "list",
        "delegate",
        "admin",
    }
)
_RULE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_TOOL_GLOB = re.compile(r"^[A-Za-z0-9_.\-*?]{1,64}$")
_ACCOUNTING = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_ROLE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
DEFAULT_ADMIN_ROLE = "VO-Admin"  # the [vo] admin_role default (gproc.settings, gproc.vo)
VO_ADMIN = "@vo-admin"


class PolicyError(ValueError):
    """The policy file is malformed; raised at load time so typos never reach runtime."""


class Denied(Exception):
    """An operation was refused; ``rule`` names the policy entry that refused it."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"denied by rule '{rule}': {message}")
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class Decision:
    """Outcome of a policy check; truthy when allowed."""

    allowed: bool
    rule: str
    message: str

    def __bool__(self) -> bool:
        return self.allowed

    def require(self) -> Decision:
        """Raise :class:`Denied` unless allowed (for call sites that must stop)."""
        if not self.allowed:
            raise Denied(self.rule, self.message)
        return self


@dataclass(frozen=True)
class FqanPattern:
    """A parsed FQAN pattern (see module docstring for the grammar)."""

    text: str
    vo: str | None  # None: any VO ("/*")
    groups: tuple[str, ...]
    subgroups: bool  # trailing "*": the group or any subgroup
    role: str | None  # None: any role
    anyone: bool = False  # "*": any authenticated identity
    vo_admin: bool = False  # "@vo-admin": `role` in the root group of any VO

    @classmethod
    def parse(cls, text: str, admin_role: str = DEFAULT_ADMIN_ROLE) -> FqanPattern:
        """Parse a pattern; raise PolicyError on anything outside the grammar."""
        t = text.strip()
        if t == VO_ADMIN:
            return cls(t, None, (), False, admin_role, vo_admin=True)
        if t == "*":
            return cls(t, None, (), True, None, anyone=True)
        if t == "/*":
            return cls(t, None, (), True, None)
        wild = False
        role = None
        body = t
        if "/Role=" in body:
            body, _, role = body.partition("/Role=")
            if not role or "/" in role:
                raise PolicyError(f"bad role in FQAN pattern {text!r}")
        if body.endswith("/*"):
            body, wild = body[:-2], True
        try:
            fq = Fqan.parse(body)
        except ValueError as exc:
            raise PolicyError(f"bad FQAN pattern {text!r}: {exc}") from None
        if fq.role or fq.capability:
            raise PolicyError(f"bad FQAN pattern {text!r}")
        return cls(t, fq.vo, fq.groups, wild, role)

    def matches(self, fqan: Fqan) -> bool:
        """True when ``fqan`` falls under this pattern."""
        if self.vo_admin:
            return not fqan.groups and fqan.role == self.role
        if self.vo is None:
            return True
        if fqan.vo != self.vo:
            return False
        own = fqan.groups
        if self.subgroups:
            if own[: len(self.groups)] != self.groups:
                return False
        elif own != self.groups:
            return False
        return self.role is None or fqan.role == self.role

    def matches_identity(self, identity: Identity) -> bool:
        """True when any verified FQAN of ``identity`` matches (``*``: always)."""
        return self.anyone or any(self.matches(f) for f in identity.fqans)


@dataclass(frozen=True)
class Ban:
    id: str
    dn: str
    reason: str


@dataclass(frozen=True)
class Rule:
    id: str
    allow: bool
    operations: frozenset[str]  # empty: every operation ("*")
    tools: tuple[str, ...] | None  # None: any or no tool
    fqans: tuple[FqanPattern, ...]
    dns: tuple[str, ...]
    description: str

    def applies(self, operation: str, tool: str | None) -> bool:
        """Operation and tool part of the match (principal checked separately)."""
        if self.operations and operation not in self.operations:
            return False
        if self.tools is None:
            return True
        return tool is not None and any(fnmatch.fnmatchcase(tool, g) for g in self.tools)

    def covers(self, identity: Identity) -> bool:
        """Principal part of the match: an FQAN pattern or a listed DN."""
        if any(p.matches_identity(identity) for p in self.fqans):
            return True
        return any(same_dn(dn, identity.subject_grid) for dn in self.dns)


@dataclass(frozen=True)
class Policy:
    """A loaded policy; immutable, so one instance is safely shared by all threads."""

    rules: tuple[Rule, ...]
    bans: tuple[Ban, ...]
    full_proxy_required: frozenset[str]
    admin_role: str  # role in /<vo> that makes a VO administrator ([vo] admin_role)
    accounting_prefix: str
    accounting_default: str
    accounting_map: tuple[tuple[FqanPattern, str], ...]

    @classmethod
    def load(cls, path: str | Path, *, admin_role: str = DEFAULT_ADMIN_ROLE) -> Policy:
        """Read and check a policy file; raise PolicyError naming the bad entry.

        ``admin_role`` is the ``[vo] admin_role`` setting (the VO admin service's)."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: {exc}") from None
        return cls.from_dict(data, admin_role=admin_role)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, admin_role: str = DEFAULT_ADMIN_ROLE) -> Policy:
        """Build from parsed TOML (also used by tests to state policies inline)."""
        if "ownership" in data:
            raise PolicyError(
                "[ownership] is gone: VO administrators are the holders of the role set by "
                "[vo] admin_role in the VO's root group, as for the VO admin service; "
                f"rules name them with fqans = [{VO_ADMIN!r}]"
            )
        _only(data, {"version", "rule", "ban", "proxy", "accounting"}, "top level")
        if data.get("version", 1) != 1:
            raise PolicyError(f"unsupported policy version {data.get('version')!r}")
        if not _ROLE.match(admin_role):
            raise PolicyError(f"bad VO admin role {admin_role[:70]!r}: [A-Za-z0-9_.-] only")
        rules = tuple(_rule(r, i, admin_role) for i, r in enumerate(_tables(data, "rule")))
        bans = tuple(_ban(b, i) for i, b in enumerate(_tables(data, "ban")))
        _unique([r.id for r in rules] + [b.id for b in bans])
        proxy = _table(data, "proxy", {"full_required"})
        acc = _table(data, "accounting", {"prefix", "default", "map"})
        prefix = str(acc.get("prefix", "group_"))
        default = str(acc.get("default", "group_nogroup"))
        for name in (prefix + "x", default):
            if not _ACCOUNTING.match(name):
                raise PolicyError(f"accounting group {name!r} must be [A-Za-z0-9_.] words")
        amap = []
        for pat, group in _mapping(acc.get("map", {}), "accounting.map").items():
            if not isinstance(group, str) or not _ACCOUNTING.match(group):
                raise PolicyError(f"accounting.map value {group!r} must be [A-Za-z0-9_.] words")
            amap.append((FqanPattern.parse(pat, admin_role), group))
        return cls(
            rules=rules,
            bans=bans,
            full_proxy_required=_operations(proxy.get("full_required", []), "proxy"),
            admin_role=admin_role,
            accounting_prefix=prefix,
            accounting_default=default,
            accounting_map=tuple(amap),
        )

    def banned(self, identity: Identity) -> Decision | None:
        """The refusal for a banned DN, or None."""
        for ban in self.bans:
            if same_dn(ban.dn, identity.subject_grid):
                return Decision(False, ban.id, f"{identity.subject_grid} is banned: {ban.reason}")
        return None

    def authorize(self, identity: Identity, operation: str, tool: str | None = None) -> Decision:
        """Decide whether ``identity`` may perform ``operation`` (with ``tool``, if any)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        ban = self.banned(identity)
        if ban is not None:
            return ban
        if identity.limited and operation in self.full_proxy_required:
            return Decision(
                False, "limited-proxy", f"a limited proxy may not {operation}; use a full proxy"
            )
        for rule in self.rules:
            if rule.applies(operation, tool) and rule.covers(identity):
                what = operation + (f" with tool {tool!r}" if tool else "")
                verb = "allows" if rule.allow else "forbids"
                return Decision(rule.allow, rule.id, rule.description or f"{rule.id} {verb} {what}")
        what = operation + (f" with tool {tool!r}" if tool else "")
        return Decision(False, "default", f"no rule allows {identity.subject_grid} to {what}")

    def require(self, identity: Identity, operation: str, tool: str | None = None) -> Decision:
        """:meth:`authorize`, raising :class:`Denied` on refusal."""
        return self.authorize(identity, operation, tool).require()

    def may_act_on(self, identity: Identity, owner_dn: str, owner_vo: str | None) -> Decision:
        """Task ownership: the owner, or a VO admin of the task's VO, may act on a task.

        ``owner_dn`` may be in slash or RFC 2253 form (as stored by the caller)."""
        ban = self.banned(identity)
        if ban is not None:
            return ban
        if _is_owner(identity, owner_dn):
            return Decision(True, "owner", "the caller owns the task")
        if owner_vo and self.is_vo_admin(identity, owner_vo):
            return Decision(
                True, "vo-admin", f"/{owner_vo}/Role={self.admin_role} administers VO {owner_vo}"
            )
        return Decision(False, "ownership", "the task belongs to another user")

    def is_vo_admin(self, identity: Identity, vo: str) -> bool:
        """True when ``identity`` holds the admin role in ``/vo`` (sees all VO tasks)."""
        return any(
            f.vo == vo and not f.groups and f.role == self.admin_role for f in identity.fqans
        )

    def accounting_group(self, identity: Identity) -> str:
        """HTCondor accounting group from the primary FQAN, e.g. ``group_testvo.grid``.

        Only [A-Za-z0-9_.] characters, so the result is safe inside a ClassAd string."""
        primary = identity.primary_fqan
        if primary is None:
            return self.accounting_default
        for pat, group in self.accounting_map:
            if pat.matches(primary):
                return group
        words = [_UNSAFE.sub("_", w) for w in (primary.vo, *primary.groups)]
        return self.accounting_prefix + ".".join(words)


def _is_owner(identity: Identity, owner_dn: str) -> bool:
    if owner_dn.startswith("/"):
        return same_dn(owner_dn, identity.subject_grid)
    return owner_dn == identity.subject


def _rule(data: Any, index: int, admin_role: str) -> Rule:
    where = f"rule #{index + 1}"
    t = _mapping(data, where)
    _only(t, {"id", "effect", "operations", "tools", "fqans", "dns", "description"}, where)
    rid = _rule_id(t, where)
    effect = t.get("effect", "allow")
    if effect not in ("allow", "deny"):
        raise PolicyError(f"{where} ({rid}): effect must be 'allow' or 'deny'")
    ops = _strings(t, "operations", where)
    if not ops:
        raise PolicyError(f"{where} ({rid}): operations must list at least one operation")
    tools = None
    if "tools" in t:
        tools = tuple(_strings(t, "tools", where))
        bad = [g for g in tools if not _TOOL_GLOB.match(g)]
        if bad or not tools:
            raise PolicyError(f"{where} ({rid}): bad tool names {bad or tools}")
    fqans = tuple(FqanPattern.parse(p, admin_role) for p in _strings(t, "fqans", where))
    dns = tuple(_strings(t, "dns", where))
    for dn in dns:
        if not dn.startswith("/"):
            raise PolicyError(f"{where} ({rid}): DN {dn!r} must be in slash form")
    if not fqans and not dns:
        raise PolicyError(f"{where} ({rid}): needs fqans or dns (use fqans = ['*'] for anyone)")
    return Rule(
        id=rid,
        allow=effect == "allow",
        operations=frozenset() if ops == ["*"] else _operations(ops, where),
        tools=tools,
        fqans=fqans,
        dns=dns,
        description=str(t.get("description", "")),
    )


def _ban(data: Any, index: int) -> Ban:
    where = f"ban #{index + 1}"
    t = _mapping(data, where)
    _only(t, {"id", "dn", "reason"}, where)
    dn = t.get("dn")
    if not isinstance(dn, str) or not dn.startswith("/"):
        raise PolicyError(f"{where}: dn must be a slash-form DN string")
    return Ban(_rule_id(t, where), dn.strip(), str(t.get("reason", "banned by site policy")))


def _rule_id(t: Mapping[str, Any], where: str) -> str:
    rid = t.get("id")
    if not isinstance(rid, str) or not _RULE_ID.match(rid):
        raise PolicyError(f"{where}: id must match {_RULE_ID.pattern}")
    if rid in ("default", "limited-proxy", "owner", "vo-admin", "ownership"):
        raise PolicyError(f"{where}: id {rid!r} is reserved")
    return rid


def _operations(ops: Iterable[Any], where: str) -> frozenset[str]:
    out = frozenset(str(o) for o in ops)
    unknown = sorted(out - OPERATIONS)
    if unknown:
        raise PolicyError(f"{where}: unknown operations {unknown}; known: {sorted(OPERATIONS)}")
    return out


def _strings(t: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {key} must be a list of strings")
    return value


def _tables(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(f"{key} must be an array of tables ([[{key}]])")
    return value


def _table(data: Mapping[str, Any], key: str, allowed: set[str]) -> Mapping[str, Any]:
    t = _mapping(data.get(key, {}), key)
    _only(t, allowed, key)
    return t


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where} must be a table")
    return value


def _only(t: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(t) - allowed)
    if extra:
        raise PolicyError(f"{where}: unknown keys {extra}")


def _unique(ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise PolicyError(f"duplicate rule id {i!r}")
        seen.add(i)
