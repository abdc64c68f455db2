"""Validate a workflow document and expand it into concrete DAG nodes.

Checks, each refused with a :class:`WorkflowError` naming the node or edge: unknown
tools and parameters (the connector validates them as for single tasks), unknown or
unconnected ports, an output whose type the receiving tool cannot take, cycles
(naming the cycle), branches of different lengths, and more nodes than the limit.

Expansion: a tool node runs once per branch of its (fanned-out) inputs; a port that
takes several rasters (``mosaic.inputs``) joins every branch feeding it. Every file
name in the DAG is chosen here from node indexes and connector port names, never
from user strings: workflow inputs are ``w<k>.tif``, node outputs ``n<i>_<port>.<ext>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gproc.connectors import gisheo
from gproc.connectors.base import (
    Connector,
    InvalidRequest,
    OutputPort,
    ToolRequest,
    UnknownTool,
)
from gproc.connectors.params import SAFE_ARG_RE
from gproc.connectors.registry import get_connector
from gproc.errors import LimitExceeded
from gproc.workflows.document import Edge, Node, PortRef, WorkflowDoc, WorkflowError

RASTER = "image/tiff"
_IN_RE = re.compile(r"inIMG_[0-9]{1,3}")
_OUT_RE = re.compile(r"outIMG_[0-9]{1,3}")
_PLACEHOLDER = "placeholder"


@dataclass(frozen=True)
class NodeJob:
    """One DAG node: a tool run on one branch, with every name already safe."""

    dag_name: str  # n<i>_<node>[_<branch>]
    node: str  # the document's node name
    branch: int
    tool: str
    arguments: tuple[str, ...]
    inputs: tuple[str, ...]  # files of the DAG directory it reads
    outputs: Mapping[str, str]  # connector output port -> file it writes
    doc_outputs: Mapping[str, str]  # document output port -> connector output port
    parents: tuple[str, ...]
    request_cpus: int
    request_memory_mb: int
    request_disk_mb: int
    final: bool
    meta: Mapping[str, str] = field(default_factory=dict)
    port_inputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # port -> files
    params: Mapping[str, Any] = field(default_factory=dict)  # the tool's (provenance)


@dataclass(frozen=True)
class CompiledWorkflow:
    name: str
    form: str
    inputs: tuple[tuple[str, str], ...]  # (file name in the DAG directory, source)
    jobs: tuple[NodeJob, ...]
    keep_intermediate: bool

    @property
    def tools(self) -> frozenset[str]:
        return frozenset(j.tool for j in self.jobs)


@dataclass
class _Tool:
    """A tool node resolved against its connector."""

    node: Node
    connector: Connector
    params: Mapping[str, Any]
    ins: dict[str, tuple[str, int | None]]  # doc input port -> (connector port, position)
    outs: dict[str, OutputPort]  # doc output port -> connector port

    def is_join(self, doc_port: str) -> bool:
        cport, position = self.ins[doc_port]
        declared = next(p for p in self.connector.inputs if p.name == cport)
        return declared.multiple and position is None


def compile_workflow(
    doc: WorkflowDoc,
    *,
    max_nodes: int,
    sources: Mapping[str, str | Sequence[str]] | None = None,
    expand: Callable[[PortRef, str], tuple[str, ...]] | None = None,
) -> CompiledWorkflow:
    """The DAG nodes of ``doc``; ``sources`` binds start ports (``node.port`` or ``node``);
    ``expand`` turns each source into the sources it stands for (catalogue queries)."""
    if len(doc.nodes) > max_nodes:
        raise LimitExceeded(f"the workflow has {len(doc.nodes)} nodes; the limit is {max_nodes}")
    starts = _bind_sources(doc, sources or {}, expand)
    tools = {n.name: _resolve(n) for n in doc.nodes if not n.is_start}
    incoming = _check_edges(doc, starts, tools)
    order = _topological(doc, [n.name for n in doc.nodes])
    widths = _widths(order, starts, tools, incoming)
    total = sum(widths[n] for n in tools)
    if total > max_nodes:
        raise LimitExceeded(f"the workflow expands to {total} DAG nodes; the limit is {max_nodes}")
    return _expand(doc, order, starts, tools, incoming, widths)


# ---- sources ---------------------------------------------------------------------------
def _bind_sources(
    doc: WorkflowDoc,
    given: Mapping[str, str | Sequence[str]],
    expand: Callable[[PortRef, str], tuple[str, ...]] | None = None,
) -> dict[PortRef, tuple[str, ...]]:
    start_nodes = {n.name: n for n in doc.nodes if n.is_start}
    bound: dict[PortRef, tuple[str, ...]] = {}
    for key, value in given.items():
        node, _, port = key.partition(".")
        start = start_nodes.get(node)
        if start is None:
            raise WorkflowError(f"sources: {key[:40]!r} is not a start task or input", field=key)
        if not port and len(start.outputs) == 1:
            port = start.outputs[0]
        if port not in start.outputs:
            raise WorkflowError(f"sources: {node} has no output port {port[:32]!r}", field=key)
        items = (value,) if isinstance(value, str) else tuple(value)
        if not items or not all(isinstance(v, str) and v for v in items):
            raise WorkflowError(f"sources.{key}: expected sources as strings", field=key)
        bound[PortRef(node, port)] = items
    out: dict[PortRef, tuple[str, ...]] = {}
    for start in start_nodes.values():
        for port in start.outputs:
            ref = PortRef(start.name, port)
            items = bound.get(ref) or tuple(start.sources.get(port, ()))
            if expand is not None:
                items = tuple(one for item in items for one in expand(ref, item))
            if not items:
                raise WorkflowError(f"{ref}: no data given for this start port", field=str(ref))
            if start.instances > 1 and len(items) != start.instances:
                raise WorkflowError(
                    f"{ref}: {start.instances} instances declared, {len(items)} sources given",
                    field=str(ref),
                )
            out[ref] = items
    return out


# ---- tools -----------------------------------------------------------------------------
def _resolve(node: Node) -> _Tool:
    try:
        if node.processing is not None:
            return _resolve_gisheo(node)
        connector = get_connector(node.tool or "")
    except UnknownTool as exc:
        raise WorkflowError(
            f"node {node.name}: unknown tool {exc.name!r}", field=node.name
        ) from None
    except InvalidRequest as exc:
        raise WorkflowError(
            f"node {node.name}: {exc.field}: {exc.message}", field=node.name
        ) from None
    ins: dict[str, tuple[str, int | None]] = {p.name: (p.name, None) for p in connector.inputs}
    outs = {p.name: p for p in connector.outputs}
    return _Tool(node, connector, dict(node.params), ins, outs)


def _resolve_gisheo(node: Node) -> _Tool:
    processing = node.processing or ""
    in_names = list(dict.fromkeys(_IN_RE.findall(processing)))
    out_names = list(dict.fromkeys(_OUT_RE.findall(processing)))
    request = gisheo.parse(processing, node.argument_list, {n: n for n in in_names})
    connector = get_connector(request.tool)
    doc_ins = list(node.inputs) or in_names
    if len(doc_ins) != len(in_names):
        raise WorkflowError(
            f"node {node.name}: {len(doc_ins)} input port(s) declared, the processing names "
            f"{len(in_names)} ({', '.join(in_names)})",
            field=node.name,
        )
    where: dict[str, tuple[str, int | None]] = {}
    for cport, value in request.inputs.items():
        if isinstance(value, str):
            where[value] = (cport, None)
        else:
            where.update({v: (cport, i) for i, v in enumerate(value)})
    ins = {doc: where[gname] for doc, gname in zip(doc_ins, in_names, strict=True)}
    by_label = {label: cport for cport, label in request.outputs.items()}
    declared = {p.name: p for p in connector.outputs}
    doc_outs = list(node.outputs) or out_names
    if len(doc_outs) > len(out_names):
        raise WorkflowError(
            f"node {node.name}: {len(doc_outs)} output port(s) declared, the processing names "
            f"{len(out_names)}",
            field=node.name,
        )
    outs = {doc: declared[by_label[g]] for doc, g in zip(doc_outs, out_names, strict=False)}
    return _Tool(node, connector, dict(request.params), ins, outs)


# ---- edges -----------------------------------------------------------------------------
def _check_edges(
    doc: WorkflowDoc, starts: Mapping[PortRef, tuple[str, ...]], tools: Mapping[str, _Tool]
) -> dict[str, dict[str, list[Edge]]]:
    """Incoming edges per tool node and port, every port and type checked."""
    incoming: dict[str, dict[str, list[Edge]]] = {name: {} for name in tools}
    used: set[PortRef] = set()
    for edge in doc.edges:
        src, dst = edge.source, edge.target
        if src in starts:
            used.add(src)
        elif src.node in tools:
            out = tools[src.node].outs.get(src.port)
            if out is None:
                raise WorkflowError(
                    f"edge {edge}: {src.node} has no output port {src.port} "
                    f"(it has {', '.join(tools[src.node].outs) or 'none'})",
                    field=str(edge),
                )
            if out.media_type != RASTER:
                raise WorkflowError(
                    f"edge {edge}: {src} is {out.media_type}; {dst.node} takes rasters",
                    field=str(edge),
                )
        else:
            raise WorkflowError(f"edge {edge}: unknown node or port {src}", field=str(edge))
        tool = tools.get(dst.node)
        if tool is None:
            what = "a start task" if doc.node(dst.node) else "an unknown node"
            raise WorkflowError(f"edge {edge}: {dst.node} is {what}", field=str(edge))
        if dst.port not in tool.ins:
            raise WorkflowError(
                f"edge {edge}: {dst.node} has no input port {dst.port} "
                f"(it has {', '.join(tool.ins)})",
                field=str(edge),
            )
        feeds = incoming[dst.node].setdefault(dst.port, [])
        if feeds and not tool.is_join(dst.port):
            raise WorkflowError(
                f"edge {edge}: {dst} is already fed by {feeds[0].source}", field=str(edge)
            )
        feeds.append(edge)
    for name, tool in tools.items():
        for port in tool.ins:
            if port not in incoming[name]:
                raise WorkflowError(
                    f"node {name}: input port {port} is not connected", field=f"{name}.{port}"
                )
    for ref in starts:
        if ref not in used:
            raise WorkflowError(f"{ref}: this start port feeds no node", field=str(ref))
    return incoming


def _topological(doc: WorkflowDoc, names: list[str]) -> list[str]:
    """Nodes in dependency order; a cycle is refused with its path."""
    children: dict[str, list[str]] = {n: [] for n in names}
    for edge in doc.edges:
        if edge.target.node not in children[edge.source.node]:
            children[edge.source.node].append(edge.target.node)
    state: dict[str, int] = {}  # 1 on the path, 2 done
    order: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = path[path.index(node) :] + [node]
            raise WorkflowError("cycle: " + " -> ".join(cycle), field=node)
        state[node] = 1
        for child in children[node]:
            visit(child, [*path, child])
        state[node] = 2
        order.append(node)

    for name in names:
        visit(name, [name])
    return order[::-1]


def _widths(
    order: list[str],
    starts: Mapping[PortRef, tuple[str, ...]],
    tools: Mapping[str, _Tool],
    incoming: Mapping[str, Mapping[str, list[Edge]]],
) -> dict[str, int]:
    widths: dict[str, int] = {}
    for name in order:
        if name not in tools:
            continue
        seen: dict[int, str] = {}
        for port, edges in incoming[name].items():
            if tools[name].is_join(port):
                continue
            w = _width(edges[0].source, starts, widths)
            if w > 1:
                seen.setdefault(w, str(edges[0].source))
        if len(seen) > 1:
            detail = ", ".join(f"{src} has {w}" for w, src in seen.items())
            raise WorkflowError(
                f"node {name}: its inputs have different branch counts ({detail})", field=name
            )
        widths[name] = next(iter(seen), 1)
    return widths


def _width(
    ref: PortRef, starts: Mapping[PortRef, tuple[str, ...]], widths: Mapping[str, int]
) -> int:
    return len(starts[ref]) if ref in starts else widths[ref.node]


# ---- expansion -------------------------------------------------------------------------
def _expand(
    doc: WorkflowDoc,
    order: list[str],
    starts: Mapping[PortRef, tuple[str, ...]],
    tools: Mapping[str, _Tool],
    incoming: Mapping[str, Mapping[str, list[Edge]]],
    widths: Mapping[str, int],
) -> CompiledWorkflow:
    files: dict[PortRef, list[str]] = {}  # document output port -> one file per branch
    makers: dict[str, str] = {}  # file -> DAG node producing it
    inputs: list[tuple[str, str]] = []
    for ref, items in starts.items():
        files[ref] = []
        for source in items:
            name = f"w{len(inputs)}.tif"
            inputs.append((name, source))
            files[ref].append(name)
    has_last = any(t.node.is_last for t in tools.values())
    feeding = {e.source.node for e in doc.edges}
    jobs: list[NodeJob] = []
    for name in order:
        if name not in tools:
            continue
        tool = tools[name]
        final = tool.node.is_last if has_last else name not in feeding
        for branch in range(widths[name]):
            job = _node_job(
                len(jobs), tool, branch, widths[name], incoming[name], files, makers, final
            )
            jobs.append(job)
            for doc_port, cport in job.doc_outputs.items():
                files.setdefault(PortRef(name, doc_port), []).append(job.outputs[cport])
            for produced in job.outputs.values():
                makers[produced] = job.dag_name
    return CompiledWorkflow(doc.name, doc.form, tuple(inputs), tuple(jobs), doc.keep_intermediate)


def _node_job(
    index: int,
    tool: _Tool,
    branch: int,
    width: int,
    incoming: Mapping[str, list[Edge]],
    files: Mapping[PortRef, list[str]],
    makers: Mapping[str, str],
    final: bool,
) -> NodeJob:
    name = tool.node.name
    by_port: dict[str, dict[int, str] | list[str]] = {}
    for doc_port, edges in incoming.items():
        cport, position = tool.ins[doc_port]
        if tool.is_join(doc_port):
            joined = by_port.setdefault(cport, [])
            assert isinstance(joined, list)
            for edge in edges:
                joined.extend(files[edge.source])
            continue
        branch_files = files[edges[0].source]
        chosen = branch_files[branch] if len(branch_files) > 1 else branch_files[0]
        slot = by_port.setdefault(cport, {})
        assert isinstance(slot, dict)
        slot[position or 0] = chosen
    names: dict[str, tuple[str, ...]] = {}
    for cport, value in by_port.items():
        names[cport] = (
            tuple(value) if isinstance(value, list) else tuple(value[k] for k in sorted(value))
        )
    request_inputs: dict[str, str | Sequence[str]] = {}
    for port in tool.connector.inputs:
        chosen_files = names.get(port.name, ())
        request_inputs[port.name] = list(chosen_files) if port.multiple else chosen_files[0]
    try:
        plan = tool.connector.plan(ToolRequest(tool.connector.name, request_inputs, tool.params))
    except InvalidRequest as exc:
        raise WorkflowError(f"node {name}: {exc.field}: {exc.message}", field=name) from None
    dag_name = f"n{index}_{name}" + (f"_{branch}" if width > 1 else "")
    outputs = {p.name: f"n{index}_{p.name}{_suffix(p)}" for p in tool.connector.outputs}
    args = _arguments(tool.connector, plan.params, names, outputs)
    read = tuple(f for group in names.values() for f in group)
    parents = tuple(dict.fromkeys(makers[f] for f in read if f in makers))
    return NodeJob(
        dag_name=dag_name,
        node=name,
        branch=branch,
        tool=tool.connector.name,
        arguments=args,
        inputs=read,
        outputs=outputs,
        doc_outputs={doc: p.name for doc, p in tool.outs.items()},
        parents=parents,
        request_cpus=plan.request_cpus,
        request_memory_mb=plan.request_memory_mb,
        request_disk_mb=plan.request_disk_mb,
        final=final,
        meta=dict(tool.node.meta),
        port_inputs=names,
        params=dict(tool.params),
    )


def _suffix(port: OutputPort) -> str:
    return "." + port.file_name.rsplit(".", 1)[-1]


def _arguments(
    connector: Connector,
    params: Mapping[str, Any],
    inputs: Mapping[str, tuple[str, ...]],
    outputs: Mapping[str, str],
) -> tuple[str, ...]:
    """The connector's own command line, with the DAG's file names for inputs and outputs."""
    declared = {f"--out-{p.name}={p.file_name}": p.name for p in connector.outputs}
    ordered = {p.name: inputs[p.name] for p in connector.inputs}
    args = [
        f"--out-{declared[a]}={outputs[declared[a]]}" if a in declared else a
        for a in connector.arguments(params, ordered)
    ]
    for arg in args:
        if not SAFE_ARG_RE.fullmatch(arg):
            raise WorkflowError(f"unsafe job argument {arg[:40]!r}", field="params")
    return tuple(args)
