"""The OpenAPI 3.0 document of the OGC API - Processes front (``GET /api``)."""

from __future__ import annotations

from typing import Any

MEDIA = "application/vnd.oai.openapi+json;version=3.0"

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/exception"}}}
_JSON = {"application/json": {"schema": {"type": "object"}}}


def _op(op_id: str, summary: str, ok: str = "200", **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "success", "content": _JSON}}
    for code, why in (("401", "no valid client credential"), ("403", "not authorised")):
        responses[code] = {"description": why, "content": _PROBLEM}
    responses["default"] = {"description": "an error", "content": _PROBLEM}
    return {"operationId": op_id, "summary": summary, "responses": responses, **extra}


def _param(name: str, where: str = "path", kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": {"type": kind}}


def document(base: str) -> dict[str, Any]:
    pid, jid = _param("processID"), _param("jobId")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "gproc OGC API - Processes",
            "version": "1.0.0",
            # OpenAPI 3.0 (the oas30 conformance class) has no mutual-TLS scheme (3.1 has)
            "description": "Clients authenticate at TLS with an X.509 certificate or an "
            "RFC 3820 proxy (mutual TLS); WPS 2.0 and 1.0.0 are served at /wps.",
        },
        "servers": [{"url": base}],
        "components": {
            "schemas": {
                "exception": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        k: {"type": "string"} for k in ("type", "title", "detail", "instance")
                    }
                    | {"status": {"type": "integer"}},
                }
            },
        },
        "paths": {
            "/": {"get": _op("getLandingPage", "landing page")},
            "/conformance": {"get": _op("getConformance", "conformance classes")},
            "/api": {"get": _op("getApi", "this document")},
            "/processes": {"get": _op("getProcesses", "the processes")},
            "/processes/{processID}": {
                "get": _op("getProcessDescription", "one process", parameters=[pid])
            },
            "/processes/{processID}/execution": {
                "post": _op(
                    "execute",
                    "execute a process (Prefer: respond-async for a job)",
                    parameters=[pid, _param("Prefer", "header")],
                    requestBody={"required": True, "content": _JSON},
                )
                | {
                    "responses": _op("x", "", "200")["responses"]
                    | {"201": {"description": "job created", "content": _JSON}}
                },
            },
            "/jobs": {
                "get": _op(
                    "getJobs",
                    "the caller's jobs",
                    parameters=[
                        _param("processID", "query"),
                        _param("status", "query"),
                        _param("limit", "query", "integer"),
                        _param("offset", "query", "integer"),
                    ],
                )
            },
            "/jobs/{jobId}": {
                "get": _op("getStatus", "job status", parameters=[jid]),
                "delete": _op("dismiss", "cancel and purge the job", parameters=[jid]),
            },
            "/jobs/{jobId}/results": {"get": _op("getResult", "job results", parameters=[jid])},
            "/jobs/{jobId}/results/{outputID}": {
                "get": _op(
                    "getResultOutput",
                    "one output, by reference",
                    parameters=[jid, _param("outputID")],
                )
            },
        },
    }
