"""Workflows over the real gateway (POSIX areas) and a real catalogue (SQLite engine),
wired as the workflow service builds them: catalogue datasets and GQL queries as a
start task's data (one branch per dataset, with the owner's rights, a branch limit),
final outputs stored in the owner's gateway area, the owner's delegated proxy on every
node, and the callback rule shared with tasks. Nothing here reaches DAGMan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gproc.catalogue.engines import open_engine
from gproc.catalogue.model import Fields
from gproc.catalogue.query import Eq, Query
from gproc.catalogue.service import Catalogue
from gproc.domain import Owner
from gproc.errors import GprocError, LimitExceeded
from gproc.services.workflow.app import build_context
from gproc.services.workflow.data import catalogue_sink, gateway_sink
from gproc.services.workflow.service import WorkflowContext
from gproc.settings import ServiceSettings, Settings
from gproc.storage_gateway.access import user_key
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from gproc.task_notify import check as check_task_callback
from gproc.workflows.document import WorkflowError
from gproc.workflows.service import WorkflowRequest, jobs_of
from gproc.wrappers.htcondor.dag import HTCondorDagRunner
from tests.catalogue_data import identity
from tests.catalogue_rasters import write_raster
from tests.fixtures.gateway import posix_namespace

ROOT = Path(__file__).resolve().parents[2]
FIGURE7 = (ROOT / "examples" / "workflows" / "figure7.silk").read_text()
POLICY = ROOT / "etc" / "policy.toml"
ALICE = identity("/O=Grid/CN=Alice", ("/testvo",))
BOB = identity("/O=Grid/CN=Bob", ("/testvo", "/testvo/grid"))


def owner(who) -> Owner:  # type: ignore[no-untyped-def]
    return Owner(who.subject_grid, "testvo", tuple(str(f) for f in who.fqans), credential=who)


def figure7(source: str) -> str:
    return FIGURE7.replace('o1:output="FTP address"', f'o1:output="{source}"')


@dataclass
class Parts:
    gp: WorkflowContext
    gateway: StorageGateway
    scenes: dict[str, bytes]  # dataset name -> file content
    ids: dict[str, str]  # dataset name -> catalogue id
    home: str


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    gw = StorageGateway(Namespace.from_dict(posix_namespace(tmp_path)))
    settings = Settings(state_dir=tmp_path / "state", service=ServiceSettings(policy=POLICY))  # type: ignore[call-arg]
    settings.catalogue.tasks = True
    settings.workflow.max_query_branches = 3
    settings.catalogue.input_types = {"grayscale.image": ["RASTER"]}
    settings.state_dir.mkdir()
    engine = open_engine(settings.catalogue_database_url)
    cat = Catalogue(engine, gw)
    home = f"/private/{user_key(ALICE)}"
    scenes, ids = {}, {}
    for i, name in enumerate(["s3", "s1", "s2"]):  # registered out of name order
        raster = write_raster(tmp_path / f"{name}.tif", "utm34")
        data = raster.read_bytes() + bytes([i])  # distinct files (GDAL ignores the tail)
        gw.write(ALICE, f"{home}/{name}.tif", [data])
        ids[name] = cat.register(ALICE, f"{home}/{name}.tif", Fields("scenes", name, "RASTER")).id
        scenes[name] = data
    gw.write(ALICE, f"{home}/dem.tif", [write_raster(tmp_path / "d.tif", "utm34").read_bytes()])
    cat.register(ALICE, f"{home}/dem.tif", Fields("dems", "dem", "DEM"))
    runner = HTCondorDagRunner("offline", collector="127.0.0.1:1")  # never called here
    gp = build_context(settings, runner=runner, gateway=gw)
    yield Parts(gp, gw, scenes, ids, home)
    gp.core.store.engine.dispose()


def register(parts: Parts, text: str, who=ALICE, **kw):  # type: ignore[no-untyped-def]
    gp = parts.gp
    req = WorkflowRequest(text=text, owner=owner(who), **kw)
    return gp.core.register(req, gp.core.compile(req), gp.resolver_for(owner(who)))


def staged(parts: Parts, wid: str) -> list[bytes]:
    folder = parts.gp.core.dirs.inputs(wid)
    return [(folder / f"w{i}.tif").read_bytes() for i in range(len(list(folder.iterdir())))]


def test_a_query_fans_out_one_branch_per_dataset_in_name_order(parts: Parts) -> None:
    view = register(parts, figure7("gql:datagroup:scenes"))
    assert [(n.node, n.branch) for n in view.nodes] == [
        (node, b) for node in "ABC" for b in range(3)
    ]
    row = parts.gp.core.store.get(view.id)
    inputs = json.loads(row.compiled_json)["inputs"]
    assert [src for _, src in inputs] == [f"dataset:{parts.ids[n]}" for n in ("s1", "s2", "s3")]
    assert staged(parts, view.id) == [parts.scenes[n] for n in ("s1", "s2", "s3")]


def test_a_dataset_names_one_branch_by_name_or_id(parts: Parts) -> None:
    for ref in ("dataset:scenes/s2", f"dataset:{parts.ids['s2']}"):
        view = register(parts, figure7(ref))
        assert len(view.nodes) == 3
        assert staged(parts, view.id) == [parts.scenes["s2"]]
    structured = {
        "inputs": {"scenes": ["dataset:scenes/s3", "gql:datagroup:scenes dataset:s1"]},
        "nodes": [{"id": "g", "tool": "grayscale", "last": True}],
        "edges": [{"input": "scenes", "to": "g.image"}],
    }
    view = register(parts, json.dumps(structured))
    assert [n.branch for n in view.nodes] == [0, 1]
    assert staged(parts, view.id) == [parts.scenes["s3"], parts.scenes["s1"]]
    # a registration source may name catalogue data too
    view = register(parts, FIGURE7, sources={"A0": "gql:datagroup:scenes"})
    assert len(view.nodes) == 9


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("dataset:scenes/s1", "no dataset"),  # alice's: bob may not see it
        ("dataset:scenes/nosuch", "no dataset"),  # missing: the same answer
        ("gql:datagroup:scenes", "finds no dataset"),  # bob's query sees none of them
        ("gql:type:(", "A0.o1: "),  # a GQL syntax error, naming the start port
    ],
)
def test_catalogue_data_the_owner_may_not_see_is_refused(
    parts: Parts, source: str, words: str
) -> None:
    with pytest.raises(WorkflowError) as err:
        register(parts, figure7(source), who=BOB)
    assert err.value.field == "A0.o1" and words in err.value.message, err.value.message
    assert parts.gp.core.store.list_workflows(None, (), 0, 10)[1] == 0


def test_a_dataset_of_a_type_the_tool_does_not_take_is_refused(parts: Parts) -> None:
    """``[catalogue] input_types`` holds for workflow nodes as for single tasks."""
    with pytest.raises(WorkflowError) as err:
        register(parts, figure7("gql:datagroup:dems"))
    assert err.value.field == "A" and "grayscale.image" in err.value.message
    assert "type DEM" in err.value.message and "accepts RASTER" in err.value.message
    structured = {
        "inputs": {"d": "dataset:dems/dem"},
        "nodes": [{"id": "h", "tool": "hough", "last": True}],  # no types declared
        "edges": [{"input": "d", "to": "h.image"}],
    }
    assert len(register(parts, json.dumps(structured)).nodes) == 1


def test_a_query_over_the_branch_limit_is_refused_naming_the_node(parts: Parts) -> None:
    register(parts, figure7("gql:datagroup:scenes"))  # 3: at the limit
    parts.gp.core.max_query_branches = 2
    with pytest.raises(LimitExceeded) as err:
        register(parts, figure7("gql:datagroup:scenes"))
    assert err.value.code == "Client.LimitExceeded" and err.value.field == "A0.o1"
    assert "more than 2 datasets" in err.value.message


def test_without_the_catalogue_catalogue_data_is_refused(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, service=ServiceSettings(policy=POLICY))  # type: ignore[call-arg]
    gp = build_context(settings, runner=HTCondorDagRunner("x", collector="127.0.0.1:1"))
    try:
        with pytest.raises(WorkflowError, match="needs the data catalogue"):
            gp.core.compile(WorkflowRequest(figure7("dataset:scenes/s1"), owner(ALICE)))
    finally:
        gp.core.store.engine.dispose()


def test_final_outputs_are_stored_in_the_owners_gateway_area(parts: Parts, tmp_path: Path) -> None:
    view = register(parts, figure7("dataset:scenes/s1"))
    row = parts.gp.core.store.get(view.id)
    made = tmp_path / "n2_lines.json"
    made.write_text('{"lines": []}')
    record = {"name": made.name, "size": 13, "adler32": "x", "sha256": "y", "path": str(made)}
    stored = gateway_sink(parts.gp.task_data)(row, [record])
    assert stored == {made.name: f"{parts.home}/workflows/{view.id}/{made.name}"}
    back = b"".join(parts.gateway.open_read(ALICE, stored[made.name]))
    assert back == made.read_bytes()
    assert parts.gp.task_data.location(stored[made.name]).startswith("gateway:///private/")


def test_the_owners_proxy_reaches_every_node_job(parts: Parts, tmp_path: Path) -> None:
    proxy = tmp_path / "delegated.pem"
    proxy.write_bytes(b"proxy")
    view = register(parts, figure7("gql:datagroup:scenes"), x509_proxy=proxy)
    row = parts.gp.core.store.get(view.id)
    spec = parts.gp.core.dag_spec(row)
    assert len(spec.nodes) == 9 and {n.job.x509_proxy for n in spec.nodes} == {proxy}
    plain = parts.gp.core.store.get(register(parts, figure7("dataset:scenes/s1")).id)
    assert {n.job.x509_proxy for n in parts.gp.core.dag_spec(plain).nodes} == {None}


@pytest.mark.parametrize(
    "url", ["http://user:pw@example.org/hook", "ftp://example.org/", "http://x/a b"]
)
def test_callback_urls_follow_the_task_rule(parts: Parts, url: str) -> None:
    """One rule for tasks and workflows: the same refusal, word for word."""
    with pytest.raises(GprocError) as task_err:
        check_task_callback(url, "s" * 32)
    with pytest.raises(GprocError) as wf_err:
        register(parts, figure7("dataset:scenes/s1"), callback_url=url)
    assert (wf_err.value.code, wf_err.value.field, wf_err.value.message) == (
        task_err.value.code,
        task_err.value.field,
        task_err.value.message,
    )


def final_records(parts: Parts, row, tmp_path: Path) -> list[dict]:  # type: ignore[no-untyped-def]
    """The final outputs as the tracker records them: rasters where a port writes .tif."""
    records = []
    for job in jobs_of(row).jobs:
        for port, name in job.outputs.items():
            if not job.final:
                continue
            made = tmp_path / name
            if name.endswith(".tif"):
                write_raster(made, "geo")
            else:
                made.write_text('{"lines": []}')
            records.append(
                {"node": job.dag_name, "port": port, "name": name, "size": made.stat().st_size}
                | {"adler32": "x", "sha256": "y", "path": str(made), "final": True}
            )
    return records


def test_final_raster_outputs_are_catalogued_with_provenance(parts: Parts, tmp_path: Path) -> None:
    view = register(parts, figure7("dataset:scenes/s1"))
    row = parts.gp.core.store.get(view.id)
    records = final_records(parts, row, tmp_path)
    assert parts.gp.core.output_sink is not None
    stored = parts.gp.core.output_sink(row, records)
    assert set(stored) == {r["name"] for r in records}
    cat = Catalogue(open_engine(parts.gp.settings.catalogue_database_url), parts.gateway)
    found = cat.search(ALICE, Query(Eq("datagroup", "workflows"))).items
    rasters = [r for r in records if r["name"].endswith(".tif")]
    assert rasters, "figure 7 ends in a raster output"
    jobs = {j.dag_name: j for j in jobs_of(row).jobs}
    expected = {f"{view.id}.{r['node']}.{r['port']}": r for r in rasters}
    assert {d.fields.dataset for d in found} == set(expected)
    for ds in found:
        rec = expected[ds.fields.dataset]
        job = jobs[rec["node"]]
        assert ds.location == stored[rec["name"]]
        prov = ds.provenance
        assert prov is not None
        assert (prov.workflow_id, prov.node, prov.tool, prov.inputs) == (
            view.id,
            rec["node"],
            job.tool,
            (parts.ids["s1"],),
        )
        assert prov.parameters == dict(job.params)
    assert cat.search(BOB, Query(Eq("datagroup", "workflows"))).items == ()


def test_a_cataloguing_failure_keeps_the_stored_outputs(parts: Parts, tmp_path: Path) -> None:
    view = register(parts, figure7("dataset:scenes/s1"))
    row = parts.gp.core.store.get(view.id)
    records = final_records(parts, row, tmp_path)
    cat = Catalogue(open_engine(parts.gp.settings.catalogue_database_url), parts.gateway)

    def refuse(_row):  # type: ignore[no-untyped-def]
        raise GprocError("catalogue down")

    sink = catalogue_sink(cat, gateway_sink(parts.gp.task_data), refuse)
    stored = sink(row, records)
    assert set(stored) == {r["name"] for r in records}
    assert cat.search(ALICE, Query(Eq("datagroup", "workflows"))).items == ()


def test_the_types_a_connector_declares_are_checked_by_default(parts: Parts) -> None:
    """ndvi declares MULTISPECTRAL red/nir; no setting names it, the declaration holds."""
    structured = {
        "inputs": {"r": "dataset:scenes/s1", "n": "dataset:scenes/s2"},
        "nodes": [{"id": "v", "tool": "ndvi", "last": True}],
        "edges": [{"input": "r", "to": "v.red"}, {"input": "n", "to": "v.nir"}],
    }
    with pytest.raises(WorkflowError) as err:
        register(parts, json.dumps(structured))
    assert err.value.field == "v" and "ndvi.red" in err.value.message
    assert "type RASTER" in err.value.message and "accepts MULTISPECTRAL" in err.value.message
