"""The structured (JSON) workflow form.

::

    {"name": "ndvi_mosaic",
     "inputs": {"red": ["gateway:///public/s1/b04.tif", ...], "nir": [...]},
     "nodes": [
       {"id": "ndvi", "tool": "ndvi", "params": {}},
       {"id": "mosaic", "tool": "mosaic", "params": {"epsg": 32635}, "last": true},
       {"id": "edges", "processing": "outIMG_1 canny(inIMG_1#canny2)",
        "argument_list": "<canny2=120>", "meta": {"datagroup": "ID"}}],
     "edges": [
       {"input": "red", "to": "ndvi.red"}, {"input": "nir", "to": "ndvi.nir"},
       {"from": "ndvi.output", "to": "mosaic.inputs"}],
     "keep_intermediate": false}

An input naming a list of sources fans out: the node it feeds runs once per source
(inputs feeding one node must have the same length, or a single source). A node fed
by a fanned-out node on an ordinary port runs once per branch too; on a port that
takes several rasters (``mosaic.inputs``) it is a join and receives every branch.
Ports are the connector's port names (``gproc tools NAME``); for GiSHEO nodes the
prototype's ``inIMG_k`` / ``outIMG_k``. Unknown keys are refused; ``meta`` holds
attributes passed on to the node's jobs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gproc.workflows.document import (
    Edge,
    Node,
    PortRef,
    WorkflowDoc,
    WorkflowError,
    check_meta,
    check_name,
)

MAX_JSON_BYTES = 1024 * 1024
_IN_RE = re.compile(r"inIMG_[0-9]{1,3}")
_OUT_RE = re.compile(r"outIMG_[0-9]{1,3}")


class _NodeModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    tool: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    processing: str | None = None
    argument_list: str = ""
    last: bool = False
    meta: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_form(self) -> _NodeModel:
        if (self.tool is None) == (self.processing is None):
            raise ValueError("give either tool (+ params) or processing (+ argument_list)")
        return self


class _EdgeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str | None = Field(default=None, alias="from")
    input: str | None = None
    to: str

    @model_validator(mode="after")
    def _one_source(self) -> _EdgeModel:
        if (self.source is None) == (self.input is None):
            raise ValueError("an edge has either 'from' (node.port) or 'input' (a workflow input)")
        return self


class _DocModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "workflow"
    inputs: dict[str, str | list[str]] = Field(default_factory=dict)
    nodes: list[_NodeModel]
    edges: list[_EdgeModel] = Field(default_factory=list)
    keep_intermediate: bool = False


INPUT_PORT = "data"
"""The one output port of a workflow input's start node."""


def parse(text: str | bytes) -> WorkflowDoc:
    """The document in JSON ``text``; raises WorkflowError naming what is wrong."""
    if len(text) > MAX_JSON_BYTES:
        raise WorkflowError(f"document longer than {MAX_JSON_BYTES} bytes", field="json")
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"not JSON: {exc}", field="json") from None
    return from_dict(raw)


def from_dict(raw: object) -> WorkflowDoc:
    try:
        model = _DocModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise WorkflowError(f"{where}: {first['msg']}", field=where) from None
    nodes = [_start(name, sources) for name, sources in model.inputs.items()]
    nodes += [_node(n) for n in model.nodes]
    edges = [_edge(i, e) for i, e in enumerate(model.edges)]
    return WorkflowDoc(
        name=check_name(model.name, "workflow name"),
        nodes=tuple(nodes),
        edges=tuple(edges),
        form="json",
        keep_intermediate=model.keep_intermediate,
    )


def _start(name: str, sources: str | list[str]) -> Node:
    check_name(name, "input name")
    items = (sources,) if isinstance(sources, str) else tuple(sources)
    if not items:
        raise WorkflowError(f"input {name}: at least one source", field=f"inputs.{name}")
    return Node(name=name, outputs=(INPUT_PORT,), sources={INPUT_PORT: items}, instances=len(items))


def _node(n: _NodeModel) -> Node:
    name = check_name(n.id, "node id")
    for key, value in n.meta.items():
        check_meta(key, value, name)
    if n.processing is not None:
        ins = tuple(dict.fromkeys(_IN_RE.findall(n.processing)))
        outs = tuple(dict.fromkeys(_OUT_RE.findall(n.processing)))
        return Node(
            name=name,
            inputs=ins,
            outputs=outs,
            processing=n.processing,
            argument_list=n.argument_list,
            is_last=n.last,
            meta=n.meta,
        )
    # tool nodes: ports are filled in from the connector when the document is compiled
    return Node(name=name, tool=n.tool, params=n.params, is_last=n.last, meta=n.meta)


def _edge(index: int, e: _EdgeModel) -> Edge:
    where = f"edges.{index}"
    target = _ref(e.to, where)
    if e.input is not None:
        return Edge(PortRef(check_name(e.input, f"{where}.input"), INPUT_PORT), target)
    return Edge(_ref(e.source or "", where), target)


def _ref(text: str, where: str) -> PortRef:
    node, dot, port = text.partition(".")
    if not dot:
        raise WorkflowError(f"{where}: {text[:40]!r} must be node.port", field=where)
    return PortRef(check_name(node, f"{where} node"), check_name(port, f"{where} port"))
