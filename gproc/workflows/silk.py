"""SiLK, GiSHEO's workflow rule language, parsed with a lark grammar.

A document is a list of task declarations and rules (GiSHEO paper, Figure 7)::

    A0:= [o1:output="FTP address", "instances"="1"];
    A:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)",
         "argument-list"=""];
    A0[a=o1] -> A[i1=a];

A declaration lists ports (``name:input`` / ``name:output["=" source]``) and
meta-attributes (``"key"="value"``). A rule binds variables to output ports on its
left (``A0[a=o1]``: ``a`` is A0's port o1) and feeds them to input ports on its
right (``A[i1=a]``); either side may list several tasks (parallel branches, joins).
``#`` and ``//`` start comments. Meta-attributes gproc reads: ``processing``,
``argument-list``, ``isLast``, ``instances``; every other one is kept and passed on.
A declaration without ``processing`` is a start task: its output ports name the
initial data (a gateway location or a file; several sources, one per instance,
are given at registration).
"""

from __future__ import annotations

from dataclasses import dataclass

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput
from lark.exceptions import UnexpectedEOF, UnexpectedToken, VisitError

from gproc.workflows.document import (
    Edge,
    Node,
    PortRef,
    WorkflowDoc,
    WorkflowError,
    WorkflowSyntaxError,
    check_meta,
    check_name,
)

MAX_SILK_BYTES = 256 * 1024

GRAMMAR = r"""
start: statement*
?statement: decl | rule
decl: NAME ":=" "[" [item ("," item)*] "]" ";"
?item: port | attr
port: NAME ":" KIND ["=" STRING]
attr: STRING "=" STRING
rule: side "->" side ";"
side: ref ("," ref)*
ref: NAME "[" binding ("," binding)* "]"
binding: NAME "=" NAME
KIND: "input" | "output"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"[^"\n]*"/
COMMENT: /(#|\/\/)[^\n]*/
%import common.WS
%ignore WS
%ignore COMMENT
"""

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True)
KNOWN_META = ("processing", "argument-list", "isLast", "instances")


@dataclass(frozen=True)
class _Port:
    name: str
    kind: str
    value: str | None
    line: int


@dataclass(frozen=True)
class _Decl:
    name: str
    ports: list[_Port]
    attrs: list[tuple[str, str, int]]
    line: int


@dataclass(frozen=True)
class _Rule:
    left: list[tuple[str, list[tuple[str, str]]]]
    right: list[tuple[str, list[tuple[str, str]]]]


def _text(tok: Token) -> str:
    return str(tok)[1:-1] if tok.type == "STRING" else str(tok)


class _Build(Transformer):  # type: ignore[type-arg]
    def port(self, items: list[Token | None]) -> _Port:
        name, kind, value = items
        assert name is not None and kind is not None
        return _Port(str(name), str(kind), _text(value) if value else None, name.line or 0)

    def attr(self, items: list[Token]) -> tuple[str, str, int]:
        return _text(items[0]), _text(items[1]), items[0].line or 0

    def decl(self, items: list[object]) -> _Decl:
        name = items[0]
        assert isinstance(name, Token)
        body = [i for i in items[1:] if i is not None]
        ports = [i for i in body if isinstance(i, _Port)]
        attrs = [i for i in body if isinstance(i, tuple)]
        return _Decl(str(name), ports, attrs, name.line or 0)  # type: ignore[arg-type]

    def binding(self, items: list[Token]) -> tuple[str, str]:
        return str(items[0]), str(items[1])

    def ref(self, items: list[object]) -> tuple[str, list[tuple[str, str]]]:
        return str(items[0]), list(items[1:])  # type: ignore[arg-type]

    def side(self, items: list[object]) -> list[object]:
        return list(items)

    def rule(self, items: list[object]) -> _Rule:
        left, right = items
        return _Rule(left, right)  # type: ignore[arg-type]


def parse(text: str, name: str = "silk") -> WorkflowDoc:
    """The document in ``text``; raises WorkflowSyntaxError (line, column) or WorkflowError."""
    if not isinstance(text, str):
        raise WorkflowError("SiLK text must be a string", field="silk")
    if len(text.encode("utf-8", "replace")) > MAX_SILK_BYTES:
        raise WorkflowError(f"SiLK text longer than {MAX_SILK_BYTES} bytes", field="silk")
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    try:
        statements = _Build().transform(tree).children
    except VisitError as exc:  # pragma: no cover - the grammar admits only valid shapes
        raise WorkflowError(f"cannot read the document: {exc.orig_exc}", field="silk") from None
    decls = [s for s in statements if isinstance(s, _Decl)]
    rules = [s for s in statements if isinstance(s, _Rule)]
    nodes = [_node(d) for d in decls]
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            raise WorkflowError(f"task {node.name} is declared twice", field=node.name)
        seen.add(node.name)
    edges = [e for r in rules for e in _edges(r)]
    return WorkflowDoc(
        name=check_name(name, "workflow name"), nodes=tuple(nodes), edges=tuple(edges), form="silk"
    )


def _syntax_error(exc: UnexpectedInput, text: str) -> WorkflowSyntaxError:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedEOF) or line in (None, -1):
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        got = repr(text[pos])[:12] if pos < len(text) else "end"
        message = f"unexpected character {got}"
    elif isinstance(exc, UnexpectedToken):
        got = "end of text" if exc.token.type == "$END" else repr(str(exc.token))[:40]
        message = f"unexpected {got}"
    else:
        message = "unexpected end of text"
    expected = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or [])
    if expected:
        message += "; expected " + ", ".join(_describe(t) for t in expected[:8])
    return WorkflowSyntaxError(message, int(line), int(column))


_TOKEN_NAMES = {
    "SEMICOLON": "';'",
    "COMMA": "','",
    "LSQB": "'['",
    "RSQB": "']'",
    "EQUAL": "'='",
    "COLON": "':'",
    "__ANON_0": "':='",
    "__ANON_1": "'->'",
    "NAME": "a name",
    "STRING": "a quoted string",
    "KIND": "input or output",
}


def _describe(token: str) -> str:
    return _TOKEN_NAMES.get(token, token)


def _node(decl: _Decl) -> Node:
    name = check_name(decl.name, f"task name (line {decl.line})")
    inputs: list[str] = []
    outputs: list[str] = []
    sources: dict[str, tuple[str, ...]] = {}
    for port in decl.ports:
        check_name(port.name, f"{name}: port name")
        if port.name in inputs or port.name in outputs:
            raise WorkflowError(f"task {name}: port {port.name} declared twice", field=name)
        if port.kind == "input":
            if port.value is not None:
                raise WorkflowError(
                    f"task {name}: input port {port.name} takes no value",
                    field=f"{name}.{port.name}",
                )
            inputs.append(port.name)
        else:
            outputs.append(port.name)
            if port.value is not None:
                sources[port.name] = (port.value,)
    attrs: dict[str, str] = {}
    for key, value, line in decl.attrs:
        if key in attrs:
            raise WorkflowError(
                f"task {name}: attribute {key!r} given twice (line {line})", field=name
            )
        check_meta(key, value, name)
        attrs[key] = value
    meta = {k: v for k, v in attrs.items() if k not in KNOWN_META}
    is_last = _flag(attrs.get("isLast", "false"), f"{name}.isLast")
    processing = attrs.get("processing")
    if processing is None:
        return _start_node(name, inputs, outputs, sources, attrs, meta, is_last)
    return Node(
        name=name,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        processing=processing,
        argument_list=attrs.get("argument-list", ""),
        is_last=is_last,
        meta=meta,
    )


def _start_node(
    name: str,
    inputs: list[str],
    outputs: list[str],
    sources: dict[str, tuple[str, ...]],
    attrs: dict[str, str],
    meta: dict[str, str],
    is_last: bool,
) -> Node:
    if inputs:
        raise WorkflowError(f'task {name} has input ports but no "processing"', field=name)
    if not outputs:
        raise WorkflowError(f'task {name} has neither "processing" nor output ports', field=name)
    instances = attrs.get("instances", "1")
    if not instances.isdigit() or not 1 <= int(instances) <= 10000:
        raise WorkflowError(f'task {name}: "instances" must be 1-10000', field=f"{name}.instances")
    return Node(
        name=name,
        outputs=tuple(outputs),
        sources=sources,
        is_last=is_last,
        meta=meta,
        instances=int(instances),
    )


def _flag(value: str, where: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no", ""):
        return False
    raise WorkflowError(f"{where}: expected true or false", field=where)


def _edges(rule: _Rule) -> list[Edge]:
    variables: dict[str, PortRef] = {}
    for task, bindings in rule.left:
        for var, port in bindings:
            if var in variables:
                raise WorkflowError(f"rule variable {var} is bound twice", field=task)
            variables[var] = PortRef(task, port)
    edges = []
    for task, bindings in rule.right:
        for port, var in bindings:
            if var not in variables:
                raise WorkflowError(
                    f"{task}[{port}={var}]: variable {var} is not bound on the left of the rule",
                    field=task,
                )
            edges.append(Edge(variables[var], PortRef(task, port)))
    return edges
