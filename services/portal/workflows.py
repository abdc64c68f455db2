"""Workflow documents the portal writes for its users: GiSHEO's Figure 7 chain as a
preset (SiLK, as in ``examples/workflows/figure7.silk``), and the chain builder's
structured JSON (operations appended one after another, fanned out over the
selected images). Sources are bound by name at RegisterWorkflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gproc.errors import InvalidRequest

FIGURE7_SOURCE = "A0"
FIGURE7 = """\
A0:= [o1:output="FTP address", "instances"="{instances}"];
A:= [i1:input, o1:output, "datagroup"="ID", "dataset"="ID",
     "processing"="outIMG_1 grayscale(inIMG_1)", "argument-list"=""];
B:= [i1:input, o1:output, "datagroup"="ID", "dataset"="ID",
     "processing"="outIMG_1 canny(inIMG_1#canny1#aperture_size#canny2)",
     "argument-list"="<canny2=120>"];
C:= [i1:input, o1:output, "datagroup"="ID", "dataset"="ID",
     "processing"="outIMG_1 hough_lines(inIMG_1#min_line#min_gap#hough_threshold)",
     "argument-list"="<min_line=20>#<min_gap=10>#<hough_threshold=100>",
     "isLast"="true"];
A0[a=o1] -> A[i1=a];
A[a=o1] -> B[i1=a];
B[a=o1] -> C[i1=a];
"""
CHAIN_INPUT = "images"
MAX_CHAIN = 12


def figure7(instances: int) -> str:
    """Figure 7 over ``instances`` images (one branch each)."""
    if instances < 1:
        raise InvalidRequest("select at least one image", field="datasets")
    return FIGURE7.format(instances=instances)


@dataclass(frozen=True)
class Step:
    """One operation of a chain: the tool, its single raster input port, parameters."""

    tool: str
    port: str
    params: Mapping[str, str]


def chain(steps: Sequence[Step], images: int, name: str = "chain") -> str:
    """A structured workflow: ``images`` sources -> step 1 -> ... -> step n (last)."""
    if images < 1:
        raise InvalidRequest("select at least one image", field="datasets")
    if not steps:
        raise InvalidRequest("add at least one operation", field="steps")
    if len(steps) > MAX_CHAIN:
        raise InvalidRequest(f"at most {MAX_CHAIN} operations", field="steps")
    nodes: list[dict[str, object]] = []
    edges: list[dict[str, str]] = []
    previous: str | None = None
    for i, step in enumerate(steps, 1):
        node = f"s{i}"
        nodes.append({"id": node, "tool": step.tool, "params": dict(step.params)})
        if previous is None:
            edges.append({"input": CHAIN_INPUT, "to": f"{node}.{step.port}"})
        else:
            edges.append({"from": f"{previous}.output", "to": f"{node}.{step.port}"})
        previous = node
    nodes[-1]["last"] = True
    doc = {
        "name": name,
        "inputs": {CHAIN_INPUT: [f"portal-image-{i}" for i in range(1, images + 1)]},
        "nodes": nodes,
        "edges": edges,
    }
    return json.dumps(doc, indent=1)
