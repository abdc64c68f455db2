"""Helpers shared by the SOAP service tests: zeep clients and raw envelopes."""

from __future__ import annotations

from typing import Any

import requests
import zeep
from lxml import etree
from zeep.transports import Transport

from tests.fixtures.soap import SoapServer

NS = "urn:gproc:processing:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def client(srv: SoapServer, who: str = "alice-voms") -> zeep.Client:
    return zeep.Client(srv.wsdl, transport=Transport(session=srv.session(who), timeout=30))


def envelope(op: str, inner: str = "", header: str = "") -> bytes:
    head = f"<soap:Header>{header}</soap:Header>" if header else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}" '
        f'xmlns:g="{NS}">{head}<soap:Body><g:{op}>{inner}</g:{op}></soap:Body>'
        "</soap:Envelope>"
    ).encode()


def post(srv: SoapServer, body: bytes, who: str = "alice-voms", **kw: Any) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8", **kw.pop("headers", {})}
    return srv.session(who).post(srv.url, data=body, headers=headers, timeout=30, **kw)


def fault_of(resp: requests.Response) -> tuple[str, dict[str, str]]:
    """(fault code without prefix, detail fields) of a SOAP fault response."""
    root = etree.fromstring(resp.content)
    fault = root.find(f".//{{{SOAP_ENV}}}Fault")
    assert fault is not None, resp.text[:500]
    code = fault.findtext("faultcode") or ""
    detail: dict[str, str] = {}
    det = fault.find("detail")
    if det is not None and len(det):
        detail = {etree.QName(c).localname: c.text or "" for c in det[0]}
    return code.split(":", 1)[-1], detail


def zeep_fault(exc: zeep.exceptions.Fault) -> tuple[str, dict[str, str]]:
    detail: dict[str, str] = {}
    if exc.detail is not None and len(exc.detail):
        detail = {etree.QName(c).localname: c.text or "" for c in exc.detail[0]}
    return (exc.code or "").split(":", 1)[-1], detail


def good_call_works(srv: SoapServer) -> None:
    """The service still answers a valid request (after an attack)."""
    resp = post(srv, envelope("GetServiceInfo"))
    assert resp.status_code == 200, resp.text[:500]
    assert b"caller_dn" in resp.content
