"""The chassis every gproc front is built on (SOAP services, the gateway, VOMS).

The API in ten lines:

1. ``FaultSet(ns, base_name, {type_name: code}, module=__name__)``: the service's declared
   faults in its own namespace, the chassis faults (guard, validation, auth, internal) added.
2. ``ErrorTable(faults, {error_code: fault_type})``: the one map from ``gproc.errors`` codes
   (parent codes as fallback) to faults; detail: field, rule, task_id, index, ac_problem.
3. ``class MyService(FaultingService): ERRORS = table``: every error becomes a declared fault.
4. ``identity_of(ctx, table)``: the caller's validated TLS Identity, or NotAuthenticated.
5. ``soap_application([MyService], ns, name, **shared)``: spyne app; ``ctx.app.<shared>``.
6. ``soap_stack(app, table, operations, access_logger=..., max_bytes=..., max_depth=...)``:
   access log -> XML guard -> spyne; spyne's own errors become declared faults too.
7. ``gproc.security.tls.make_server(wsgi, host, port, tls, validator, ...)``: the HTTPS server.
8. ``AccessLog(wsgi, logger)``: request id + JSON access line for a non-SOAP front.
9. ``serve.apply_overrides(settings, cli_options, {option: "section.key"})``, ``serve.require``.
10. ``serve.json_logging(loggers, access=[...])``; ``serve.run([servers...], banner=, name=)``.

A whole new SOAP service::

    NS = "urn:gproc:catalogue:1"
    FAULTS = FaultSet(NS, "CatalogueFault", {"NotFoundFault": "Client.NotFound",
                      "InvalidRequestFault": "Client.InvalidRequest"}, module=__name__)
    ERRORS = ErrorTable(FAULTS, {"Client.NotFound": FAULTS.NotFoundFault,
                                 "Client.InvalidRequest": FAULTS.InvalidRequestFault})
    class CatalogueService(FaultingService):        # errors -> declared faults
        ERRORS = ERRORS
        @rpc(Unicode, _returns=Unicode, _throws=list(FAULTS.all))
        def Get(ctx, name):
            ident = identity_of(ctx, ERRORS)
            return ctx.app.store.get(ident, name)   # raises gproc.errors.NotFound...
    app = soap_application([CatalogueService], NS, "GprocCatalogue", store=store)
    wsgi = soap_stack(app, ERRORS, CatalogueService.public_methods,
                      access_logger="gproc.catalogue.access", max_bytes=..., max_depth=32)
    server = make_server(wsgi, host, port, tls, validator, require_identity=False)
    serve.run([server], banner=lambda: f"... {server.url}", name="gproc catalogue")

The pieces:

- :class:`FaultSet` (``faults``): the declared faults of one service in its own
  namespace, always including the chassis faults (guard, validation, auth,
  internal); the detail carries code, message, field, rule, task_id, index,
  ac_problem and request_id.
- :class:`ErrorTable` (``errors``): the one table per front from the error root's
  codes (``gproc.errors``) to its faults; parent codes are the fallback.
- :func:`soap_application`, :func:`soap_stack`, :class:`FaultingService`,
  :func:`identity_of` (``wsgi``): spyne app, access log (request id, one JSON line
  per call on the service's own logger) -> XML guard -> spyne; every answer,
  spyne's own validation errors included, is a declared fault with a detail.
  :class:`AccessLog` alone serves non-SOAP fronts (the gateway).
- :mod:`~gproc.services.chassis.guard`: size/time-bounded body, hardened lxml
  parse (no DTD, no entities, depth), envelope and operation checks;
  :func:`hardened_parser` for any untrusted XML.
- :mod:`~gproc.services.chassis.serve`: :func:`apply_overrides` (CLI options ->
  settings, validated), :func:`require`, :func:`json_logging`, :func:`run` (start,
  SIGTERM/SIGINT, graceful stop), :func:`build_validator`. The TLS server itself
  is ``gproc.security.tls.make_server`` (slow clients wait in its request gate,
  never in a worker thread).

Importing the chassis sets spyne's ``MIN_GC_INTERVAL`` to infinity: spyne would
otherwise run a full ``gc.collect()`` after a request about once a second (a fifth
of the service time and an 80-110 ms stall); Python's own collector still runs.
"""

from __future__ import annotations

import spyne.const

from gproc.services.chassis.errors import ErrorTable, as_error
from gproc.services.chassis.faults import CHASSIS_FAULTS, FaultSet, ServiceFault, fault_envelope
from gproc.services.chassis.guard import XmlGuard, hardened_parser
from gproc.services.chassis.serve import (
    apply_overrides,
    build_validator,
    json_logging,
    require,
    run,
)
from gproc.services.chassis.wsgi import (
    AccessLog,
    FaultingService,
    SoapWsgi,
    identity_of,
    soap_application,
    soap_stack,
)

spyne.const.MIN_GC_INTERVAL = float("inf")

__all__ = [
    "CHASSIS_FAULTS",
    "AccessLog",
    "ErrorTable",
    "FaultSet",
    "FaultingService",
    "ServiceFault",
    "SoapWsgi",
    "XmlGuard",
    "apply_overrides",
    "as_error",
    "build_validator",
    "fault_envelope",
    "hardened_parser",
    "identity_of",
    "json_logging",
    "require",
    "run",
    "soap_application",
    "soap_stack",
]
