"""The VO admin SOAP service through its WSDL with the stock zeep client: the admin
story, refusals of non-administrators on every operation, typed faults, export /
import round trip and the audit log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import zeep

from tests.fixtures.vo import VoStack
from tests.service.soap_helpers import SOAP_ENV, fault_of, zeep_fault

NS = "urn:gproc:vo-admin:1"
CA = "/C=XX/O=gproc-test/CN=gproc Test CA"


def dn(stack: VoStack, user: str) -> str:
    return stack.users[user].dn


@pytest.fixture(scope="module")
def admin(vo_stack: VoStack) -> Any:
    return vo_stack.admin_client("voadmin").service


def fault(call: Callable[[], Any]) -> tuple[str, dict[str, str]]:
    with pytest.raises(zeep.exceptions.Fault) as info:
        call()
    return zeep_fault(info.value)


def test_wsdl_is_its_own(vo_stack: VoStack) -> None:
    wsdl = vo_stack.session("carol").get(vo_stack.admin_wsdl, timeout=30).text
    assert f'targetNamespace="{NS}"' in wsdl
    for op in (
        "CreateVO",
        "AddMember",
        "SuspendMember",
        "GrantMembership",
        "ExportVO",
        "ImportVO",
        "GetAuditLog",
    ):
        assert f'name="{op}"' in wsdl


def test_admin_story_and_audit(vo_stack: VoStack, admin: Any) -> None:
    carol = dn(vo_stack, "carol")
    assert admin.CreateVO("svcvo", "service-tier VO") == "svcvo"
    admin.CreateGroup("svcvo", "/svcvo/eo")
    admin.CreateGroup("svcvo", "/svcvo/eo/ndvi")
    admin.CreateRole("svcvo", "analyst")
    m = admin.AddMember("svcvo", carol, CA, "carol@example.org")
    assert m.fqans == ["/svcvo"] and m.suspended is False
    m = admin.GrantMembership("svcvo", carol, "/svcvo/eo/ndvi", "analyst")
    assert m.fqans == ["/svcvo", "/svcvo/eo/ndvi", "/svcvo/eo/ndvi/Role=analyst"]
    assert [x.dn for x in admin.ListMembers("svcvo", "CAROL", None)] == [carol]
    assert admin.ListMembers("svcvo", "nobody", None) == []
    m = admin.SuspendMember("svcvo", carol, "quota abuse")
    assert m.suspended and m.suspended_reason == "quota abuse" and m.suspended_at
    assert [x.dn for x in admin.ListMembers("svcvo", None, True)] == [carol]
    assert not admin.RestoreMember("svcvo", carol).suspended
    m = admin.RevokeMembership("svcvo", carol, "/svcvo/eo", None)
    assert m.fqans == ["/svcvo"]
    assert admin.ListGroups("svcvo") == ["/svcvo", "/svcvo/eo", "/svcvo/eo/ndvi"]
    assert admin.ListRoles("svcvo") == ["VO-Admin", "analyst"]
    assert admin.RemoveMember("svcvo", carol, None) == carol
    code, detail = fault(lambda: admin.GetMember("svcvo", carol, None))
    assert code == "Client.NotFound" and detail["field"] == "dn"
    log = admin.GetAuditLog("svcvo", None, None)
    assert [e.action for e in log] == [
        "create-vo",
        "create-group",
        "create-group",
        "create-role",
        "add-member",
        "grant",
        "suspend-member",
        "restore-member",
        "revoke",
        "remove-member",
    ]
    assert {e.actor for e in log} == {vo_stack.admin_dn}
    assert json.loads(log[6].detail) == {"ca": CA, "reason": "quota abuse"}
    assert (
        log[5].target == carol
        and json.loads(log[5].detail)["fqan"] == "/svcvo/eo/ndvi/Role=analyst"
    )
    assert all(a.time <= b.time for a, b in zip(log, log[1:], strict=False))


def test_vo_admin_role_makes_an_administrator(vo_stack: VoStack, admin: Any) -> None:
    dave = dn(vo_stack, "dave")
    admin.CreateVO("delegvo", None)
    admin.AddMember("delegvo", dave, CA, None)
    as_dave = vo_stack.admin_client("dave").service
    code, _ = fault(lambda: as_dave.CreateGroup("delegvo", "/delegvo/x", None))
    assert code == "Client.NotAuthorised"
    admin.GrantMembership("delegvo", dave, "/delegvo", "VO-Admin")
    as_dave.CreateGroup("delegvo", "/delegvo/x", None)  # the role takes effect at once
    assert as_dave.ListVOs()[0].name == "delegvo"
    admin.SuspendMember("delegvo", dave, "on leave")
    code, detail = fault(lambda: as_dave.CreateGroup("delegvo", "/delegvo/y", None))
    assert code == "Client.NotAuthorised" and detail["rule"] == "vo-admin"
    code, detail = fault(lambda: as_dave.CreateVO("davevo", None))
    assert code == "Client.NotAuthorised" and detail["rule"] == "configured-admin"
    assert [e.actor for e in admin.GetAuditLog("delegvo", None, None)].count(dave) == 1


NON_ADMIN_CALLS: dict[str, Callable[[Any, str], Any]] = {
    "CreateVO": lambda s, d: s.CreateVO("evilvo", None),
    "CreateGroup": lambda s, d: s.CreateGroup("refvo", "/refvo/x", None),
    "CreateRole": lambda s, d: s.CreateRole("refvo", "boss", None),
    "AddMember": lambda s, d: s.AddMember("refvo", "/C=XX/CN=x", CA, None),
    "SuspendMember": lambda s, d: s.SuspendMember("refvo", d, "because", None),
    "RestoreMember": lambda s, d: s.RestoreMember("refvo", d, None),
    "RemoveMember": lambda s, d: s.RemoveMember("refvo", d, None),
    "GrantMembership": lambda s, d: s.GrantMembership("refvo", d, "/refvo", "VO-Admin", None),
    "RevokeMembership": lambda s, d: s.RevokeMembership("refvo", d, "/refvo/g", None, None),
    "ListGroups": lambda s, d: s.ListGroups("refvo"),
    "ListRoles": lambda s, d: s.ListRoles("refvo"),
    "ListMembers": lambda s, d: s.ListMembers("refvo", None, None),
    "GetMember": lambda s, d: s.GetMember("refvo", d, None),
    "ExportVO": lambda s, d: s.ExportVO("refvo"),
    "ImportVO": lambda s, d: s.ImportVO(
        json.dumps({"format": "gproc-vo/1", "vo": {"name": "refvo"}, "members": []}), True
    ),
    "GetAuditLog": lambda s, d: s.GetAuditLog("refvo", None, None),
}


@pytest.fixture(scope="module")
def refvo(vo_stack: VoStack, admin: Any) -> str:
    """A VO in which carol is an ordinary member (group /refvo/g)."""
    admin.CreateVO("refvo", None)
    admin.CreateGroup("refvo", "/refvo/g", None)
    admin.AddMember("refvo", dn(vo_stack, "carol"), CA, None)
    admin.GrantMembership("refvo", dn(vo_stack, "carol"), "/refvo/g", None, None)
    return "refvo"


@pytest.mark.parametrize("who", ["carol", "alice-voms", "bob-voms"])
@pytest.mark.parametrize("op", sorted(NON_ADMIN_CALLS))
def test_non_admins_are_refused_everything(
    vo_stack: VoStack, refvo: str, admin: Any, op: str, who: str
) -> None:
    """Members, VOMS-proxy holders (even /testvo/Role=admin) and strangers alike."""
    before = len(admin.GetAuditLog(refvo, None, None))
    svc = vo_stack.admin_client(who).service
    code, detail = fault(lambda: NON_ADMIN_CALLS[op](svc, dn(vo_stack, "carol")))
    assert code == "Client.NotAuthorised", detail
    assert detail["rule"] == ("configured-admin" if op == "CreateVO" else "vo-admin")
    assert "not an administrator" in detail["message"] or "may not create" in detail["message"]
    assert detail["request_id"]
    assert len(admin.GetAuditLog(refvo, None, None)) == before  # nothing changed
    assert admin.GetMember(refvo, dn(vo_stack, "carol"), None).fqans == ["/refvo", "/refvo/g"]


def test_unknown_vo_is_not_revealed_to_non_admins(vo_stack: VoStack, admin: Any) -> None:
    carol = vo_stack.admin_client("carol").service
    assert fault(lambda: carol.ListGroups("novo"))[0] == "Client.NotAuthorised"
    assert fault(lambda: admin.ListGroups("novo"))[0] == "Client.NotFound"


@pytest.mark.parametrize(
    "call,code,field",
    [
        (lambda s: s.CreateGroup("svcvo2", "/other/x", None), "Client.InvalidRequest", "group"),
        (lambda s: s.CreateGroup("svcvo2", "/svcvo2/a/b", None), "Client.NotFound", "group"),
        (lambda s: s.CreateVO("svcvo2", None), "Client.Conflict", "vo"),
        (lambda s: s.CreateRole("svcvo2", "NULL", None), "Client.InvalidRequest", "role"),
        (lambda s: s.AddMember("svcvo2", "CN=not-slash", CA, None), "Client.InvalidRequest", "dn"),
        (
            lambda s: s.GrantMembership("svcvo2", "/C=XX/CN=ghost", "/svcvo2", None, None),
            "Client.NotFound",
            "dn",
        ),
        (lambda s: s.ImportVO("{not json", None), "Client.InvalidRequest", "document"),
    ],
)
def test_typed_faults(admin: Any, call: Callable[[Any], Any], code: str, field: str) -> None:
    if "svcvo2" not in [v.name for v in admin.ListVOs()]:
        admin.CreateVO("svcvo2", None)
    got, detail = fault(lambda: call(admin))
    assert (got, detail.get("field")) == (code, field), detail


def test_guard_refuses_doctype(vo_stack: VoStack) -> None:
    body = (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><e:Envelope xmlns:e='
        f'"{SOAP_ENV}"><e:Body><v:ListVOs xmlns:v="{NS}"/></e:Body></e:Envelope>'
    ).encode()
    resp = vo_stack.session("voadmin").post(
        vo_stack.admin_server.url + "/", data=body, headers={"Content-Type": "text/xml"}, timeout=30
    )
    assert fault_of(resp)[0] == "Client.MalformedRequest"


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without suspension times (a re-suspension gets a new one)."""
    out = json.loads(json.dumps(doc))
    for m in out["members"]:
        m.pop("suspended_at")
    return out


def test_export_import_round_trip(vo_stack: VoStack, admin: Any) -> None:
    carol, dave = dn(vo_stack, "carol"), dn(vo_stack, "dave")
    admin.CreateVO("bulkvo", "bulk")
    admin.CreateGroup("bulkvo", "/bulkvo/a", None)
    admin.CreateGroup("bulkvo", "/bulkvo/a/b", None)
    admin.CreateRole("bulkvo", "pilot", None)
    admin.AddMember("bulkvo", carol, CA, "c@example.org")
    admin.GrantMembership("bulkvo", carol, "/bulkvo/a/b", "pilot", None)
    admin.AddMember("bulkvo", dave, CA, None)
    admin.SuspendMember("bulkvo", dave, "audit", None)
    original = json.loads(admin.ExportVO("bulkvo"))
    assert original["format"] == "gproc-vo/1" and len(original["members"]) == 2
    # change everything, then restore from the export
    admin.RevokeMembership("bulkvo", carol, "/bulkvo/a", None, None)
    admin.RestoreMember("bulkvo", dave, None)
    admin.AddMember("bulkvo", vo_stack.pki.users["alice"].dn, CA, None)
    res = admin.ImportVO(json.dumps(original), True)
    assert (res.members_updated, res.members_removed, res.members_added) == (2, 1, 0)
    assert _comparable(json.loads(admin.ExportVO("bulkvo"))) == _comparable(original)
    # into a new VO of another name: the same content
    text = json.dumps(original).replace("bulkvo", "copyvo")
    res = admin.ImportVO(text, None)
    assert (res.groups, res.roles, res.members_added) == (2, 1, 2)
    assert _comparable(json.loads(admin.ExportVO("copyvo"))) == _comparable(json.loads(text))
    actions = [e.action for e in admin.GetAuditLog("copyvo", None, None)]
    assert actions[0] == "create-vo" and actions.count("add-member") == 2
    assert "suspend-member" in actions and "grant" in actions
