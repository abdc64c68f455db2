"""Datasets as task inputs and task outputs catalogued with provenance, through the
real gateway task data (POSIX areas) and a real catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gproc.catalogue.engines.sqlite import SqliteEngine
from gproc.catalogue.model import Fields
from gproc.catalogue.query import Eq, Query
from gproc.catalogue.service import Catalogue, TypeMismatch
from gproc.connectors.base import ToolRequest
from gproc.domain import InvalidTaskRequest, OutputFile, Owner, task_owner
from gproc.models import TaskRow
from gproc.services.catalogue_tasks import CatalogueOutputs, DatasetInputs
from gproc.services.gateway_tasks import GatewayTaskData
from gproc.staging import local_file_resolver
from gproc.storage_gateway.access import user_key
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from tests.catalogue_data import identity
from tests.catalogue_rasters import write_raster
from tests.fixtures.gateway import posix_namespace

ALICE = identity("/O=Grid/CN=Alice", ("/testvo",))
BOB = identity("/O=Grid/CN=Bob", ("/testvo", "/testvo/grid"))


@pytest.fixture
def parts(tmp_path: Path):
    gw = StorageGateway(Namespace.from_dict(posix_namespace(tmp_path)))
    engine = SqliteEngine(f"sqlite:///{tmp_path / 'cat.db'}")
    engine.create_schema()
    cat = Catalogue(engine, gw)
    data = GatewayTaskData(gw, local_file_resolver(()))
    home = f"/private/{user_key(ALICE)}"
    raster = write_raster(tmp_path / "dem.tif", "utm34")
    gw.write(ALICE, f"{home}/dem.tif", [raster.read_bytes()])
    ds = cat.register(ALICE, f"{home}/dem.tif", Fields("mine", "dem", "DEM", "NASA"))
    inputs = DatasetInputs(
        cat,
        data,
        {"hough.image": ["RASTER/AERIAL", "DEM"], "ndvi.red": ["MULTISPECTRAL"]},
    )
    return cat, data, inputs, ds, raster


def owner(who) -> Owner:
    return Owner(who.subject_grid, "testvo", tuple(str(f) for f in who.fqans), credential=who)


def test_dataset_input_is_staged_with_the_owners_rights(parts, tmp_path: Path) -> None:
    cat, _data, inputs, ds, raster = parts
    for ref in ("dataset:mine/dem", f"dataset:{ds.id}"):
        dest = tmp_path / f"in-{ref[-3:]}.tif"
        inputs.resolver_for(owner(ALICE))(ref, dest)
        assert dest.read_bytes() == raster.read_bytes()
    with pytest.raises(InvalidTaskRequest) as err:
        inputs.resolver_for(owner(BOB))("dataset:mine/dem", tmp_path / "x.tif")
    assert "no dataset" in str(err.value)
    # other references still reach the gateway resolver
    dest = tmp_path / "plain.tif"
    inputs.resolver_for(owner(ALICE))(f"gateway://{ds.location}", dest)
    assert dest.stat().st_size == raster.stat().st_size


def test_tool_input_types_checked_against_the_dataset_type(parts) -> None:
    _cat, _data, inputs, _ds, _raster = parts
    inputs.check_request(owner(ALICE), ToolRequest("hough", {"image": "dataset:mine/dem"}))
    inputs.check_request(owner(ALICE), ToolRequest("unlisted", {"image": "dataset:mine/dem"}))
    with pytest.raises(TypeMismatch) as err:
        inputs.check_request(owner(ALICE), ToolRequest("ndvi", {"red": ["dataset:mine/dem"]}))
    assert err.value.field == "inputs.red" and "type DEM" in str(err.value)
    with pytest.raises(InvalidTaskRequest) as seen:
        inputs.check_request(owner(BOB), ToolRequest("hough", {"image": "dataset:mine/dem"}))
    assert seen.value.field == "inputs.image" and "no dataset" in str(seen.value)


def test_decorators_forward_the_request_check(parts) -> None:
    cat, data, inputs, _ds, _raster = parts
    sink = CatalogueOutputs(cat, inputs, data.output_principal)
    with pytest.raises(TypeMismatch):
        sink.check_request(owner(ALICE), ToolRequest("ndvi", {"red": "dataset:mine/dem"}))


def test_outputs_registered_with_provenance(parts, tmp_path: Path) -> None:
    cat, data, _inputs, ds, _raster = parts
    out = write_raster(tmp_path / "edges.tif", "geo")
    log = tmp_path / "log.txt"
    log.write_text("not a raster")
    row = TaskRow(
        id="t" * 32,
        owner_dn=ALICE.subject_grid,
        owner_fqans=json.dumps(["/testvo"]),
        tool="hough",
        request_json=json.dumps(
            {"tool": "hough", "inputs": {"image": "dataset:mine/dem"}, "params": {"threshold": 40}}
        ),
        plan_json="{}",
        state="COMPLETED",
    )
    sink = CatalogueOutputs(cat, data, data.output_principal)
    stored = sink.store_outputs(
        task_owner(row),
        [
            OutputFile("edges", "edges.tif", 0, "", "", str(out)),
            OutputFile("log", "log.txt", 0, "", "", str(log)),
        ],
    )
    assert set(stored) == {"edges", "log"}
    found = cat.search(ALICE, Query(Eq("datagroup", "tasks"))).items
    assert [d.fields.dataset for d in found] == [f"{row.id}.edges"]
    prov = found[0].provenance
    assert prov is not None
    assert (prov.task_id, prov.tool, prov.parameters, prov.inputs) == (
        row.id,
        "hough",
        {"threshold": 40},
        (ds.id,),
    )
    assert found[0].location == stored["edges"]
    assert cat.search(BOB, Query(Eq("datagroup", "tasks"))).items == ()
