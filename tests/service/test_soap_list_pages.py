"""ListTasks pages by continuation token over SOAP: every task once, newest first,
totals only when asked for, tokens refused when malformed or made for another list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import zeep

from tests.fixtures.soap import SoapServer
from tests.service.soap_helpers import client, zeep_fault

TIF = b"II*\x00fake raster bytes"
SPEC = {
    "tool": "ndvi",
    "inputs": [{"name": "red", "content": TIF}, {"name": "nir", "content": TIF}],
}


def _fault(call: object, **kw: object) -> tuple[str, dict[str, str]]:
    with pytest.raises(zeep.exceptions.Fault) as info:
        call(**kw)  # type: ignore[operator]
    return zeep_fault(info.value)


def test_pages_follow_tokens_and_count_only_on_request(soap_offline: SoapServer) -> None:
    alice, bob = client(soap_offline), client(soap_offline, "bob-voms")
    since = datetime.now(UTC)
    mine = {t.task_id for t in alice.service.RegisterTask(tasks=[SPEC] * 7)}
    seen: list[str] = []
    created: list[datetime] = []
    token = None
    sizes = []
    while True:
        page = alice.service.ListTasks(created_after=since, limit=3, page_token=token)
        assert page.total is None  # not counted unless asked
        sizes.append(len(page.tasks))
        seen += [t.task_id for t in page.tasks]
        created += [t.created for t in page.tasks]
        token = page.next_page_token
        if token is None:
            break
    assert sizes == [3, 3, 1] and len(seen) == 7 and set(seen) == mine
    assert created == sorted(created, reverse=True)  # newest first
    counted = alice.service.ListTasks(created_after=since, limit=3, with_total=True)
    assert counted.total == 7 and len(counted.tasks) == 3

    first = alice.service.ListTasks(created_after=since, limit=2).next_page_token
    for bad in ("garbage", first[:-4] + "AAAA", "x" * 200):
        code, detail = _fault(alice.service.ListTasks, created_after=since, page_token=bad)
        assert (code, detail.get("field")) == ("Client.InvalidRequest", "page_token")
    code, detail = _fault(alice.service.ListTasks, tool="canny", page_token=first)
    assert code == "Client.InvalidRequest" and "other list criteria" in detail["message"]
    # bob lists as VO admin (another filter): alice's token does not continue his list
    code, _ = _fault(bob.service.ListTasks, created_after=since, page_token=first)
    assert code == "Client.InvalidRequest"
    code, _ = _fault(alice.service.ListTasks, page_token="y" * 201)  # over the wire limit
    assert code.startswith("Client.")
