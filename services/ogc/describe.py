"""Processes as OGC API - Processes describes them: one per connector.

Typed parameters become literal inputs (JSON schema with the type, range,
allowed values and default); raster ports become complex inputs (a binary
string with its media type, by value or by reference); outputs likewise.
"""

from __future__ import annotations

from typing import Any

from gproc.connectors import Connector

VERSION = "1.0.0"
JOB_CONTROL = ["sync-execute", "async-execute", "dismiss"]
TRANSMISSION = ["value", "reference"]
RASTER = "image/tiff; application=geotiff"

_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}


def summary(c: Connector, base: str) -> dict[str, Any]:
    return {
        "id": c.name,
        "title": c.name,
        "description": c.description,
        "version": VERSION,
        "jobControlOptions": JOB_CONTROL,
        "outputTransmission": TRANSMISSION,
        "links": [
            {
                "href": f"{base}/processes/{c.name}",
                "rel": "self",
                "type": "application/json",
                "title": "process description",
            },
            {
                "href": f"{base}/processes/{c.name}/execution",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                "type": "application/json",
                "title": "execute",
            },
        ],
    }


def process(c: Connector, base: str) -> dict[str, Any]:
    d = c.describe()
    out = summary(c, base)
    out["inputs"] = {
        **{p["name"]: _complex_input(p) for p in d["inputs"]},
        **{p["name"]: _literal_input(p) for p in d["params"]},
    }
    out["outputs"] = {o["name"]: _output(o) for o in d["outputs"]}
    return out


def _complex_input(port: dict[str, Any]) -> dict[str, Any]:
    one = {"type": "string", "contentMediaType": RASTER, "contentEncoding": "binary"}
    multiple = port.get("multiple", False)
    return {
        "title": port["name"],
        "description": port["description"],
        "minOccurs": port.get("min_count", 1),
        "maxOccurs": port.get("max_count", 1) if multiple else 1,
        "schema": one,
    }


def literal_schema(p: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of one typed connector parameter."""
    kind = p["type"]
    if kind == "choice":
        schema: dict[str, Any] = {"type": "string", "enum": [str(c) for c in p["choices"]]}
    elif kind == "bbox":
        schema = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}
    else:
        schema = {"type": _TYPES.get(kind, "string")}
        if p.get("min") is not None:
            schema["minimum"] = p["min"]
        if p.get("max") is not None:
            schema["maximum"] = p["max"]
        if p.get("choices"):
            schema["enum"] = list(p["choices"])
    if p.get("default") is not None:
        schema["default"] = p["default"]
    return schema


def _literal_input(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": p["name"],
        "description": p["description"],
        "minOccurs": 1 if p["required"] else 0,
        "maxOccurs": 1,
        "schema": literal_schema(p),
    }


def _output(o: dict[str, Any]) -> dict[str, Any]:
    media = RASTER if o["media_type"] == "image/tiff" else o["media_type"]
    return {
        "title": o["name"],
        "description": o["description"],
        "schema": {"type": "string", "contentMediaType": media, "contentEncoding": "binary"},
    }
