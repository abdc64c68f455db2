"""The detail element shared by every gproc SOAP service's declared faults.

spyne would put declared fault members beside ``faultcode`` (strict clients refuse
that), so the members only describe the detail in the WSDL: the element itself,
``<tns:{FaultType}>`` with one child per non-empty field, is built here and placed
inside SOAP 1.1's ``<detail>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lxml import etree
from spyne import Fault


def init_fault(
    fault: Any, message: str, extra: dict[str, str | None], ns: str, fields: Sequence[str]
) -> None:
    """Fill a declared fault: ``info`` holds the detail values; members stay empty."""
    fault.info = {
        "code": fault.CODE,
        "message": message,
        **{k: v for k, v in extra.items() if v is not None},
    }
    Fault.__init__(fault, fault.CODE, message, detail=detail(fault, ns, fields))
    for name in fields:  # members feed the WSDL only, never the wire
        setattr(fault, name, None)


def detail(fault: Any, ns: str, fields: Sequence[str]) -> etree._Element:
    root = etree.Element(f"{{{ns}}}{fault.get_type_name()}")
    for name in fields:
        value = fault.info.get(name)
        if value is not None:
            etree.SubElement(root, f"{{{ns}}}{name}").text = str(value)
    return root


def set_request_id(fault: Any, request_id: str, ns: str, fields: Sequence[str]) -> None:
    fault.info["request_id"] = request_id
    fault.detail = detail(fault, ns, fields)
