"""Declared SOAP faults: one base and one factory every SOAP service specialises.

spyne would put declared fault members beside ``faultcode`` (strict clients refuse
that), so the members only describe the detail in the WSDL: the element itself,
``<tns:{FaultType}>`` with one child per non-empty field, is built here and placed
inside SOAP 1.1's ``<detail>``. Each service makes one :class:`FaultSet` in its own
namespace; it always holds the faults the chassis itself raises (:data:`CHASSIS_FAULTS`:
the XML guard, spyne's validation, authentication, internal errors), so whatever
a service answers is declared in that service's WSDL.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from lxml import etree
from spyne import Fault, Unicode

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

DETAIL_FIELDS = ("code", "message", "field", "rule", "task_id", "index", "ac_problem", "request_id")
"""Detail children, in this order; ``ac_problem`` says why an attribute certificate
was ignored when that may explain a refusal."""

CHASSIS_FAULTS: dict[str, str] = {
    "MalformedRequestFault": "Client.MalformedRequest",
    "UnknownOperationFault": "Client.UnknownOperation",
    "ValidationFault": "Client.ValidationError",
    "LimitExceededFault": "Client.LimitExceeded",
    "NotAuthenticatedFault": "Client.NotAuthenticated",
    "InternalFault": "Server.Internal",
}
"""Type name -> code of the faults every service declares (the chassis raises them)."""


class ServiceFault(Fault):
    """Base of every declared fault; ``CODE`` is the stable SOAP fault code, ``info``
    the detail values. Subclasses are made by :class:`FaultSet`."""

    __type_name__ = "ServiceFault"
    CODE: ClassVar[str] = "Server.Internal"
    NS: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[str, ...]] = DETAIL_FIELDS

    def __init__(self, message: str, **extra: object) -> None:
        self.info: dict[str, str] = {"code": self.CODE, "message": message}
        self.info.update({k: str(v) for k, v in extra.items() if v is not None})
        Fault.__init__(self, self.CODE, message, detail=self._detail())
        for name in self.FIELDS:  # members feed the WSDL only, never the wire
            setattr(self, name, None)

    def set_request_id(self, request_id: str) -> None:
        self.info["request_id"] = request_id
        self.detail = self._detail()

    def add(self, **extra: object) -> None:
        """Add detail values (e.g. the AC problem) after construction."""
        self.info.update({k: str(v) for k, v in extra.items() if v is not None})
        self.detail = self._detail()

    def _detail(self) -> etree._Element:
        root = etree.Element(f"{{{self.NS}}}{self.get_type_name()}")
        for name in self.FIELDS:
            value = self.info.get(name)
            if value is not None:
                etree.SubElement(root, f"{{{self.NS}}}{name}").text = value
        return root


class FaultSet:
    """The declared faults of one SOAP service, in its namespace.

    ``kinds`` maps type names to codes (``{"UnknownTaskFault": "Client.UnknownTask"}``);
    the chassis faults are added unless named. Attribute access gives the types
    (``faults.UnknownTaskFault``); :meth:`of` finds one by code."""

    def __init__(
        self,
        ns: str,
        base_name: str,
        kinds: Mapping[str, str],
        *,
        module: str,
        fields: Iterable[str] = DETAIL_FIELDS,
    ) -> None:
        self.ns = ns
        names = tuple(fields)
        members = {name: Unicode for name in names}
        self.base: type[ServiceFault] = type(
            base_name,
            (ServiceFault,),
            {
                "__namespace__": ns,
                "__type_name__": base_name,
                "__module__": module,
                "NS": ns,
                "FIELDS": names,
                "__doc__": f"Base of the declared faults of {ns}.",
                **members,
            },
        )
        self.types: dict[str, type[ServiceFault]] = {}
        for type_name, code in {**kinds, **CHASSIS_FAULTS, **kinds}.items():
            self.types[type_name] = self._make(type_name, code, module)
        self._by_code = {t.CODE: t for t in self.types.values()}

    def _make(self, type_name: str, code: str, module: str) -> type[ServiceFault]:
        with warnings.catch_warnings():
            # spyne's own validation errors carry Client.ValidationError too: that is the point
            warnings.simplefilter("ignore", UserWarning)
            attrs = {"__type_name__": type_name, "CODE": code, "__namespace__": self.ns}
            return type(type_name, (self.base,), {**attrs, "__module__": module})

    def __getattr__(self, name: str) -> type[ServiceFault]:
        try:
            return self.__dict__["types"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def all(self) -> tuple[type[ServiceFault], ...]:
        return tuple(self.types.values())

    def of(self, code: str) -> type[ServiceFault] | None:
        """The declared fault type with this wire code."""
        return self._by_code.get(code)

    def declared(self, fault: Fault) -> bool:
        return isinstance(fault, self.base) and type(fault) in self.types.values()


def fault_envelope(fault: ServiceFault) -> bytes:
    """A SOAP 1.1 fault envelope, for errors found before spyne sees the request."""
    root = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap11env": SOAP11_ENV})
    body = etree.SubElement(root, f"{{{SOAP11_ENV}}}Body")
    f = etree.SubElement(body, f"{{{SOAP11_ENV}}}Fault")
    etree.SubElement(f, "faultcode").text = f"soap11env:{fault.CODE}"
    etree.SubElement(f, "faultstring").text = fault.info["message"]
    etree.SubElement(f, "detail").append(fault.detail)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def describe(fault: Any) -> dict[str, Any]:
    """Fault summary for the access log."""
    return {"fault": fault.faultcode, "message": str(fault.faultstring)[:200]}
