"""Export and import of a whole VO, for bulk changes and backups.

File format ``gproc-vo/1`` (JSON, UTF-8; example: ``etc/vo-export.example.json``)::

    {
      "format": "gproc-vo/1",
      "vo": {"name": "testvo", "description": "Test VO"},
      "groups": [{"path": "/testvo", "description": ""}, {"path": "/testvo/grid", ...}],
      "roles": [{"name": "VO-Admin", "description": "VO administrator"}, ...],
      "members": [
        {"dn": "/C=XX/O=gproc-test/OU=users/CN=alice",
         "ca": "/C=XX/O=gproc-test/CN=gproc Test CA",
         "email": null,
         "suspended": false, "suspended_reason": null, "suspended_at": null,
         "memberships": [{"group": "/testvo", "role": null},
                         {"group": "/testvo/grid", "role": "admin"}]}
      ]
    }

Groups are listed parents first. A membership with a role implies the plain group
membership (both are exported). Import is a merge done as the importing
administrator, every change audited as if made by hand: missing groups and roles are
created; each listed member is added if new, gets exactly the listed memberships and
the listed suspension state; members not in the file stay unless ``prune`` is set.
A VO that does not exist yet is created (configured administrators only).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from gproc.vo import Actor, MemberInfo, VoConflict, VoInvalid, VoNotFound, VoStore

FORMAT = "gproc-vo/1"
MAX_IMPORT_MEMBERS = 100_000


def export_vo(store: VoStore, actor: Actor, vo: str) -> dict[str, Any]:
    """The VO as a ``gproc-vo/1`` document (admins only)."""
    groups = store.list_groups(actor, vo)
    desc = dict(store.list_vos(actor)).get(vo, "")
    return {
        "format": FORMAT,
        "vo": {"name": vo, "description": desc},
        "groups": [{"path": g, "description": ""} for g in groups],
        "roles": [{"name": r, "description": ""} for r in store.list_roles(actor, vo)],
        "members": [_member_doc(m) for m in store.list_members(actor, vo)],
    }


def _member_doc(m: MemberInfo) -> dict[str, Any]:
    return {
        "dn": m.dn,
        "ca": m.ca_dn,
        "email": m.email,
        "suspended": m.suspended,
        "suspended_reason": m.suspended_reason,
        "suspended_at": m.suspended_at.isoformat() if m.suspended_at else None,
        "memberships": [{"group": x.group, "role": x.role} for x in m.memberships],
    }


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def import_vo(
    store: VoStore, actor: Actor, doc: dict[str, Any] | str, *, prune: bool = False
) -> dict[str, int]:
    """Merge a ``gproc-vo/1`` document; returns counts of what changed."""
    data = json.loads(doc) if isinstance(doc, str) else doc
    vo = _check_doc(data)
    counts = {
        "groups": 0,
        "roles": 0,
        "members_added": 0,
        "members_updated": 0,
        "members_removed": 0,
    }
    if not store.manages(vo):
        store.create_vo(actor, vo, str(data["vo"].get("description") or ""))
    store.require_admin(actor, vo)
    have_groups = set(store.list_groups(actor, vo))
    for g in sorted(data.get("groups", []), key=lambda x: str(x.get("path", "")).count("/")):
        if g["path"] not in have_groups:
            store.create_group(actor, vo, g["path"], str(g.get("description") or ""))
            counts["groups"] += 1
    have_roles = set(store.list_roles(actor, vo))
    for r in data.get("roles", []):
        if r["name"] not in have_roles:
            store.create_role(actor, vo, r["name"], str(r.get("description") or ""))
            counts["roles"] += 1
    listed = set()
    for m in data.get("members", []):
        listed.add((m["dn"], m["ca"]))
        key = "members_updated" if _apply_member(store, actor, vo, m) else "members_added"
        counts[key] += 1
    if prune:
        for cur in store.list_members(actor, vo):
            if (cur.dn, cur.ca_dn) not in listed and not _is_self(store, actor, cur):
                store.remove_member(actor, vo, cur.dn, cur.ca_dn)
                counts["members_removed"] += 1
    return counts


def _is_self(store: VoStore, actor: Actor, m: MemberInfo) -> bool:
    return store.lookup(m.vo, actor.dn, actor.ca_dn) == m if actor.ca_dn else False


def _check_doc(data: Any) -> str:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VoInvalid(f"not a {FORMAT} document", field="format")
    vo = data.get("vo")
    if not isinstance(vo, dict) or not isinstance(vo.get("name"), str):
        raise VoInvalid("the document names no VO", field="vo")
    members = data.get("members", [])
    if not isinstance(members, list) or len(members) > MAX_IMPORT_MEMBERS:
        raise VoInvalid(f"members: a list of at most {MAX_IMPORT_MEMBERS}", field="members")
    for section, key in (("groups", "path"), ("roles", "name")):
        items = data.get(section, [])
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get(key), str) for i in items
        ):
            raise VoInvalid(f"{section}: a list of objects with a {key!r}", field=section)
    for m in members:
        if not (
            isinstance(m, dict)
            and isinstance(m.get("dn"), str)
            and isinstance(m.get("ca"), str)
            and isinstance(m.get("memberships", []), list)
        ):
            raise VoInvalid(
                "each member needs 'dn', 'ca' and a 'memberships' list", field="members"
            )
    return str(vo["name"])


def _apply_member(store: VoStore, actor: Actor, vo: str, m: dict[str, Any]) -> bool:
    """Bring one member to the listed state; True when it existed before."""
    existed = store.lookup(vo, m["dn"], m["ca"]) is not None
    if not existed:
        store.add_member(actor, vo, m["dn"], m["ca"], m.get("email"))
    cur = store.get_member(actor, vo, m["dn"], m["ca"])
    want = {(x["group"], x.get("role") or None) for x in m.get("memberships", [])}
    want.add(("/" + vo, None))
    have = {(x.group, x.role) for x in cur.memberships}
    for group, role in sorted(have - want, key=lambda x: (x[1] is None, x[0])):
        with contextlib.suppress(VoNotFound):  # already gone with a parent group
            store.revoke(actor, vo, m["dn"], group, role, m["ca"])
    for group, role in sorted(want - have, key=lambda x: (x[0].count("/"), x[1] or "")):
        with contextlib.suppress(VoConflict):  # the group came with an earlier role grant
            store.grant(actor, vo, m["dn"], group, role, m["ca"])
    cur = store.get_member(actor, vo, m["dn"], m["ca"])
    if bool(m.get("suspended")) and not cur.suspended:
        store.suspend_member(
            actor, vo, m["dn"], str(m.get("suspended_reason") or "imported"), m["ca"]
        )
    elif not m.get("suspended") and cur.suspended:
        store.restore_member(actor, vo, m["dn"], m["ca"])
    return existed
