"""The workflow SOAP service without a pool, through its WSGI stack: hostile and
malformed bodies and unauthenticated calls get faults declared in this service's own
WSDL and namespace; a document is refused before anything reaches DAGMan."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gproc.services.workflow.app import build_context, build_wsgi
from gproc.services.workflow.types import FAULTS, NS
from gproc.settings import ServiceSettings, Settings
from gproc.wrappers.htcondor.dag import HTCondorDagRunner

POLICY = Path(__file__).resolve().parents[2] / "etc" / "policy.toml"
ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("wf-offline")
    settings = Settings(state_dir=root, service=ServiceSettings(policy=POLICY))
    runner = HTCondorDagRunner("offline", collector="127.0.0.1:1")  # no pool there
    gp = build_context(settings, runner=runner)
    yield build_wsgi(gp)
    gp.core.store.engine.dispose()


def _call(app: Any, body: bytes, method: str = "POST", query: str = "") -> tuple[str, bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/",
        "QUERY_STRING": query,
        "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "https",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8447",
        "HTTP_HOST": "localhost:8447",
        "REMOTE_ADDR": "127.0.0.1",
    }
    status: list[str] = []
    chunks = app(environ, lambda s, h, e=None: status.append(s))
    out = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return status[0], out


def _fault(out: bytes) -> tuple[str, str]:
    root = etree.fromstring(out)
    (detail,) = root.iter("detail")
    (element,) = list(detail)
    assert element.tag.startswith("{" + NS + "}")
    code = root.findtext(".//faultcode") or ""
    return code.split(":")[-1], etree.QName(element).localname


def _envelope(inner: str) -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{ENV}" xmlns:w="{NS}"><soap:Body>{inner}'
        "</soap:Body></soap:Envelope>"
    ).encode()


HOSTILE = [
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "Client.MalformedRequest"),
    (b"<not-xml", "Client.MalformedRequest"),
    (_envelope("<w:NoSuchOperation/>"), "Client.UnknownOperation"),
    (
        _envelope(
            "<w:GetWorkflowStatus><w:workflow_id>"
            + "0" * 32
            + "</w:workflow_id></w:GetWorkflowStatus>"
        ),
        "Client.NotAuthenticated",
    ),
    (
        _envelope(
            "<w:RegisterWorkflow><w:spec><w:document>x</w:document></w:spec></w:RegisterWorkflow>"
        ),
        "Client.NotAuthenticated",
    ),
]


@pytest.mark.parametrize(("body", "code"), HOSTILE)
def test_every_answer_is_a_declared_fault(app: Any, body: bytes, code: str) -> None:
    _status, out = _call(app, body)
    got, type_name = _fault(out)
    assert got == code
    assert FAULTS.of(code) is not None and FAULTS.of(code).get_type_name() == type_name


def test_the_wsdl_declares_the_faults(app: Any) -> None:
    status, out = _call(app, b"", method="GET", query="wsdl")
    assert status.startswith("200")
    wsdl = out.decode()
    assert f'targetNamespace="{NS}"' in wsdl
    for name in (
        "InvalidWorkflowFault",
        "UnknownWorkflowFault",
        "NotAuthorisedFault",
        "StateConflictFault",
        "MalformedRequestFault",
    ):
        assert re.search(rf'name="{name}"', wsdl), name
    for op in (
        "RegisterWorkflow",
        "SubmitWorkflow",
        "GetWorkflowStatus",
        "GetWorkflowLog",
        "RetrieveWorkflowOutput",
        "CancelWorkflow",
        "RetryWorkflow",
        "PurgeWorkflow",
        "ListWorkflows",
    ):
        assert f'name="{op}"' in wsdl, op
