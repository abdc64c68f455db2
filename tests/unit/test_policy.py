"""Authorisation policy: table-driven checks of rules, patterns, bans, ownership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gproc import vo as vo_service
from gproc.security.identity import AcInfo, Fqan, Identity, ProxyType
from gproc.security.policy import (
    DEFAULT_ADMIN_ROLE,
    Decision,
    Denied,
    FqanPattern,
    Policy,
    PolicyError,
)
from gproc.services.soap.app import load_policy
from gproc.settings import ServiceSettings, Settings, VoSettings
from gproc.vo import Actor, VoStore

ROOT = Path(__file__).resolve().parents[2]
ALICE = "/C=RO/O=Test/CN=Alice"
BOB = "/C=RO/O=Test/CN=Bob"
MALLORY = "/C=RO/O=Test/CN=Mallory"


def ident(dn: str = ALICE, *fqans: str, vo: str = "testvo", limited: bool = False) -> Identity:
    """An Identity as the validator would build it (FQANs in AC order)."""
    now = datetime.now(UTC)
    acs = ()
    if fqans:
        ac = AcInfo(
            vo,
            "vm:15000",
            "/CN=vm",
            1,
            now,
            now + timedelta(hours=1),
            tuple(Fqan.parse(f) for f in fqans),
        )
        acs = (ac,)
    rfc = ",".join(reversed(dn.strip("/").split("/")))
    return Identity(
        subject=rfc,
        subject_grid=dn,
        issuer="CN=CA",
        issuer_grid="/CN=CA",
        proxy_type=ProxyType.LIMITED if limited else ProxyType.IMPERSONATION,
        proxy_depth=1,
        not_after=now + timedelta(hours=1),
        fingerprint="00",
        acs=acs,
    )


POLICY = Policy.from_dict(
    {
        "proxy": {"full_required": ["submit", "delegate"]},
        "accounting": {"map": {"/testvo/Role=production": "group_testvo.prod"}},
        "ban": [{"id": "ban-mallory", "dn": MALLORY, "reason": "stolen key"}],
        "rule": [
            {"id": "admin-ops", "operations": ["admin"], "fqans": ["@vo-admin"]},
            {
                "id": "no-sar-students",
                "effect": "deny",
                "operations": ["submit"],
                "tools": ["sar-*"],
                "fqans": ["/testvo/students"],
            },
            {
                "id": "grid-submit",
                "operations": ["submit", "resubmit"],
                "tools": ["*"],
                "fqans": ["/testvo/grid", "/testvo/students"],
            },
            {"id": "prod-any-subgroup", "operations": ["purge"], "fqans": ["/testvo/*/Role=prod"]},
            {
                "id": "members",
                "operations": ["status", "list", "delegate", "cancel"],
                "fqans": ["/testvo/*"],
            },
            {"id": "operator", "operations": ["*"], "dns": [BOB]},
        ],
    },
    admin_role="admin",
)

# (case, identity, operation, tool, allowed, rule)
AUTHZ_CASES = [
    (
        "grid member submits",
        ident(ALICE, "/testvo", "/testvo/grid"),
        "submit",
        "ndvi",
        True,
        "grid-submit",
    ),
    (
        "long FQAN form matches short pattern",
        ident(ALICE, "/testvo/Role=NULL/Capability=NULL", "/testvo/grid/Role=NULL/Capability=NULL"),
        "submit",
        "ndvi",
        True,
        "grid-submit",
    ),
    ("plain member may not submit", ident(ALICE, "/testvo"), "submit", "ndvi", False, "default"),
    (
        "tool rule needs a tool",
        ident(ALICE, "/testvo", "/testvo/grid"),
        "submit",
        None,
        False,
        "default",
    ),
    (
        "deny rule before allow rule",
        ident(ALICE, "/testvo/students"),
        "submit",
        "sar-flood",
        False,
        "no-sar-students",
    ),
    (
        "student uses other tool",
        ident(ALICE, "/testvo/students"),
        "submit",
        "ndvi",
        True,
        "grid-submit",
    ),
    ("wildcard covers VO root", ident(ALICE, "/testvo"), "status", None, True, "members"),
    ("wildcard covers subgroup", ident(ALICE, "/testvo/grid/eo"), "list", None, True, "members"),
    (
        "other VO not covered",
        ident(ALICE, "/othervo", vo="othervo"),
        "status",
        None,
        False,
        "default",
    ),
    (
        "VO name prefix is not the VO",
        ident(ALICE, "/testvo2", vo="testvo2"),
        "status",
        None,
        False,
        "default",
    ),
    ("no VOMS attributes", ident(ALICE), "status", None, False, "default"),
    (
        "role needed for admin",
        ident(ALICE, "/testvo", "/testvo/grid"),
        "admin",
        None,
        False,
        "default",
    ),
    ("admin role", ident(ALICE, "/testvo/Role=admin"), "admin", None, True, "admin-ops"),
    (
        "role in another group is not VO admin",
        ident(ALICE, "/testvo/grid/Role=admin"),
        "admin",
        None,
        False,
        "default",
    ),
    (
        "wildcard group with role",
        ident(ALICE, "/testvo/grid/Role=prod"),
        "purge",
        None,
        True,
        "prod-any-subgroup",
    ),
    (
        "wildcard group, wrong role",
        ident(ALICE, "/testvo/grid/Role=dev"),
        "purge",
        None,
        False,
        "default",
    ),
    ("DN rule, any operation", ident(BOB), "purge", None, True, "operator"),
    (
        "DN rule tolerates key case",
        ident(BOB.replace("CN=", "cn=")),
        "admin",
        None,
        True,
        "operator",
    ),
    (
        "banned DN despite FQANs",
        ident(MALLORY, "/testvo/grid"),
        "status",
        None,
        False,
        "ban-mallory",
    ),
    (
        "limited proxy may not submit",
        ident(ALICE, "/testvo/grid", limited=True),
        "submit",
        "ndvi",
        False,
        "limited-proxy",
    ),
    (
        "limited proxy may not delegate",
        ident(ALICE, "/testvo", limited=True),
        "delegate",
        None,
        False,
        "limited-proxy",
    ),
    (
        "limited proxy may read status",
        ident(ALICE, "/testvo", limited=True),
        "status",
        None,
        True,
        "members",
    ),
]


@pytest.mark.parametrize(
    ("identity", "operation", "tool", "allowed", "rule"),
    [c[1:] for c in AUTHZ_CASES],
    ids=[c[0] for c in AUTHZ_CASES],
)
def test_authorize(
    identity: Identity, operation: str, tool: str | None, allowed: bool, rule: str
) -> None:
    decision = POLICY.authorize(identity, operation, tool)
    assert (decision.allowed, decision.rule) == (allowed, rule)
    assert bool(decision) is allowed
    assert decision.message


def test_require_raises_denied_with_rule_and_message() -> None:
    with pytest.raises(Denied) as info:
        POLICY.require(ident(ALICE, "/testvo/students"), "submit", "sar-flood")
    assert info.value.rule == "no-sar-students"
    assert "no-sar-students" in str(info.value)
    assert POLICY.require(ident(ALICE, "/testvo/grid"), "submit", "ndvi").allowed


def test_ban_message_names_reason() -> None:
    decision = POLICY.authorize(ident(MALLORY, "/testvo"), "status")
    assert "stolen key" in decision.message


def test_unknown_operation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        POLICY.authorize(ident(ALICE, "/testvo"), "destroy")


# (case, identity, owner_dn, owner_vo, allowed, rule)
OWNER_CASES = [
    ("owner", ident(ALICE, "/testvo"), ALICE, "testvo", True, "owner"),
    (
        "owner in RFC 2253 form",
        ident(ALICE, "/testvo"),
        "CN=Alice,O=Test,C=RO",
        "testvo",
        True,
        "owner",
    ),
    ("owner without VOMS", ident(ALICE), ALICE, None, True, "owner"),
    ("someone else", ident(BOB, "/testvo"), ALICE, "testvo", False, "ownership"),
    (
        "VO admin of the task's VO",
        ident(BOB, "/testvo", "/testvo/Role=admin"),
        ALICE,
        "testvo",
        True,
        "vo-admin",
    ),
    (
        "VO admin of another VO",
        ident(BOB, "/testvo/Role=admin"),
        ALICE,
        "othervo",
        False,
        "ownership",
    ),
    (
        "admin role in a subgroup is not VO admin",
        ident(BOB, "/testvo/grid/Role=admin"),
        ALICE,
        "testvo",
        False,
        "ownership",
    ),
    ("banned owner", ident(MALLORY, "/testvo"), MALLORY, "testvo", False, "ban-mallory"),
]


@pytest.mark.parametrize(
    ("identity", "owner_dn", "owner_vo", "allowed", "rule"),
    [c[1:] for c in OWNER_CASES],
    ids=[c[0] for c in OWNER_CASES],
)
def test_may_act_on(
    identity: Identity, owner_dn: str, owner_vo: str | None, allowed: bool, rule: str
) -> None:
    decision = POLICY.may_act_on(identity, owner_dn, owner_vo)
    assert (decision.allowed, decision.rule) == (allowed, rule)


def test_is_vo_admin() -> None:
    assert POLICY.is_vo_admin(ident(BOB, "/testvo/Role=admin"), "testvo")
    assert not POLICY.is_vo_admin(ident(BOB, "/testvo/Role=admin"), "othervo")
    assert not POLICY.is_vo_admin(ident(BOB, "/testvo"), "testvo")


# (case, identity, expected group)
ACCOUNTING_CASES = [
    ("VO root", ident(ALICE, "/testvo"), "group_testvo"),
    ("primary FQAN decides", ident(ALICE, "/testvo/grid", "/testvo"), "group_testvo.grid"),
    (
        "nested group",
        ident(ALICE, "/testvo/grid/eo/Role=NULL/Capability=NULL"),
        "group_testvo.grid.eo",
    ),
    ("role ignored", ident(ALICE, "/testvo/grid/Role=admin"), "group_testvo.grid"),
    ("unsafe characters replaced", ident(ALICE, "/test-vo/g.x", vo="test-vo"), "group_test_vo.g_x"),
    ("map override", ident(ALICE, "/testvo/Role=production"), "group_testvo.prod"),
    ("no VOMS", ident(ALICE), "group_nogroup"),
]


@pytest.mark.parametrize(
    ("identity", "expected"),
    [c[1:] for c in ACCOUNTING_CASES],
    ids=[c[0] for c in ACCOUNTING_CASES],
)
def test_accounting_group(identity: Identity, expected: str) -> None:
    group = POLICY.accounting_group(identity)
    assert group == expected


# (case, policy dict, message fragment)
BAD_POLICIES = [
    (
        "unknown operation",
        {"rule": [{"id": "r", "operations": ["sumbit"], "fqans": ["*"]}]},
        "unknown operations",
    ),
    ("no principal", {"rule": [{"id": "r", "operations": ["submit"]}]}, "needs fqans or dns"),
    (
        "bad effect",
        {"rule": [{"id": "r", "effect": "maybe", "operations": ["list"], "fqans": ["*"]}]},
        "effect",
    ),
    (
        "bad FQAN pattern",
        {"rule": [{"id": "r", "operations": ["list"], "fqans": ["testvo"]}]},
        "FQAN pattern",
    ),
    (
        "wildcard mid-path",
        {"rule": [{"id": "r", "operations": ["list"], "fqans": ["/testvo/*/grid"]}]},
        "FQAN pattern",
    ),
    (
        "duplicate id",
        {
            "rule": [
                {"id": "r", "operations": ["list"], "fqans": ["*"]},
                {"id": "r", "operations": ["log"], "fqans": ["*"]},
            ]
        },
        "duplicate",
    ),
    (
        "reserved id",
        {"rule": [{"id": "owner", "operations": ["list"], "fqans": ["*"]}]},
        "reserved",
    ),
    ("typo key", {"rule": [{"id": "r", "operation": ["list"], "fqans": ["*"]}]}, "unknown keys"),
    ("RFC DN in ban", {"ban": [{"id": "b", "dn": "CN=x,O=y"}]}, "slash-form"),
    ("unsafe accounting map", {"accounting": {"map": {"/testvo": "group x"}}}, "accounting.map"),
    ("unsafe prefix", {"accounting": {"prefix": "grp-"}}, "accounting group"),
    ("unknown proxy operation", {"proxy": {"full_required": ["all"]}}, "unknown operations"),
    (
        "VO admins listed apart from the [vo] admin_role",
        {"ownership": {"vo_admin": ["/testvo/Role=admin"]}},
        r"\[vo\] admin_role",
    ),
]


@pytest.mark.parametrize(
    ("data", "fragment"), [c[1:] for c in BAD_POLICIES], ids=[c[0] for c in BAD_POLICIES]
)
def test_bad_policy_is_refused_at_load(data: dict, fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment):
        Policy.from_dict(data)


def test_bad_toml_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[[rule]\n")
    with pytest.raises(PolicyError):
        Policy.load(bad)


@pytest.mark.parametrize(
    ("pattern", "fqan", "match"),
    [
        ("/testvo", "/testvo/Role=NULL/Capability=NULL", True),
        ("/testvo", "/testvo/grid", False),
        ("/testvo/*", "/testvo/grid/Role=x", True),
        ("/*", "/anyvo/g", True),
        ("/testvo/grid/Role=r", "/testvo/grid/Role=r/Capability=NULL", True),
        ("/testvo/grid/Role=r", "/testvo/grid", False),
        ("@vo-admin", "/anyvo/Role=VO-Admin/Capability=NULL", True),
        ("@vo-admin", "/anyvo/grid/Role=VO-Admin", False),
        ("@vo-admin", "/anyvo/Role=admin", False),
    ],
)
def test_fqan_pattern(pattern: str, fqan: str, match: bool) -> None:
    assert FqanPattern.parse(pattern).matches(Fqan.parse(fqan)) is match


def test_shipped_policies_load_and_behave() -> None:
    default = Policy.load(ROOT / "etc/policy.toml")
    member = ident(ALICE, "/testvo", "/testvo/grid")
    assert default.authorize(member, "submit", "ndvi").allowed
    assert default.authorize(member, "admin").rule == "default"
    assert default.authorize(ident(ALICE, "/testvo/Role=VO-Admin"), "admin").allowed
    assert default.authorize(ident(ALICE, "/testvo/Role=admin"), "admin").rule == "default"
    assert default.authorize(ident(ALICE), "list").rule == "default"
    assert (
        default.authorize(ident(ALICE, "/testvo", limited=True), "submit", "ndvi").rule
        == "limited-proxy"
    )
    assert default.may_act_on(ident(BOB, "/testvo/Role=VO-Admin"), ALICE, "testvo").allowed
    assert not default.may_act_on(ident(BOB, "/testvo/Role=admin"), ALICE, "testvo").allowed
    example = Policy.load(ROOT / "etc/policy.example.toml")
    student = ident(ALICE, "/testvo", "/testvo/students")
    assert example.authorize(student, "submit", "sar-flood").rule == "students-no-sar"
    assert example.authorize(student, "submit", "ndvi").rule == "eo-tools"
    mallory = ident("/C=RO/O=Example/OU=users/CN=Mallory", "/testvo")
    assert example.authorize(mallory, "status").rule == "ban-lost-credential"


def test_decision_require_returns_self() -> None:
    d = Decision(True, "x", "ok")
    assert d.require() is d


def test_the_vo_admin_role_defaults_agree() -> None:
    assert Settings().vo.admin_role == DEFAULT_ADMIN_ROLE == vo_service.DEFAULT_ADMIN_ROLE
    assert Policy.from_dict({}).admin_role == DEFAULT_ADMIN_ROLE


@pytest.mark.parametrize("role", [None, "Chief"], ids=["default", "configured"])
def test_policy_and_vo_service_agree_on_vo_admins(tmp_path: Path, role: str | None) -> None:
    """One setting, `[vo] admin_role`: whoever the VO admin service treats as an
    administrator of a VO, the processing policy does too, and nobody else."""
    vo_settings = VoSettings() if role is None else VoSettings(admin_role=role)
    settings = Settings(
        state_dir=tmp_path,
        service=ServiceSettings(policy=ROOT / "etc/policy.toml"),
        vo=vo_settings,
    )
    admin_role = settings.vo.admin_role
    policy = load_policy(settings)  # as the processing service loads it
    root = Actor("/C=RO/O=Test/CN=Root", "/CN=CA")
    store = VoStore(
        f"sqlite:///{tmp_path / 'vo.db'}", admins=[root.dn], admin_role=admin_role
    )  # as `gproc vo serve` and the services build it
    store.create_vo(root, "testvo")
    store.create_role(root, "testvo", "admin")
    holders = {ALICE: admin_role, BOB: "admin", MALLORY: None}
    for dn, held in holders.items():
        store.add_member(root, "testvo", dn, "/CN=CA")
        if held:
            store.grant(root, "testvo", dn, "/testvo", held)
    for dn, held in holders.items():
        fqans = ["/testvo"] + ([f"/testvo/Role={held}"] if held else [])
        by_vo_service = store.is_admin(Actor(dn, "/CN=CA"), "testvo")
        by_policy = policy.is_vo_admin(ident(dn, *fqans), "testvo")
        assert by_vo_service == by_policy == (dn == ALICE), (dn, held)
        task_of_another = policy.may_act_on(ident(dn, *fqans), "/C=RO/O=Test/CN=Carol", "testvo")
        assert task_of_another.allowed == (dn == ALICE)
    store.close()
