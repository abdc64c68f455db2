"""The typed task record and the task data interface: the stored plan reads back
typed (old plans included), output labels name the stored outputs, and the gateway
sink acts for a task's owner through the service's ActingForOwner principal, which
the gateway confines to the task's output folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gproc.connectors import ToolRequest, get_connector
from gproc.domain import OutputFile, TaskPlan
from gproc.security.identity import Fqan
from gproc.services.gateway_tasks import GatewayTaskData
from gproc.staging import checksums, local_file_resolver
from gproc.storage_gateway.access import ActingForOwner, Op, user_key
from gproc.storage_gateway.backends.base import NotFound, PermissionDenied
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from gproc.task_data import TaskOwner

ALICE = "/C=RO/O=GiSHEO/CN=alice"


def _plan(tool: str, **outputs: str) -> TaskPlan:
    inputs = {p.name: "x" for p in get_connector(tool).inputs}
    return TaskPlan.of(get_connector(tool).plan(ToolRequest(tool, inputs, outputs=outputs)))


def test_the_stored_plan_reads_back_typed() -> None:
    plan = _plan("hough", lines="my-lines")
    again = TaskPlan.from_json(plan.to_json())
    assert again == plan
    assert again.executable.name == "eotool.py" and again.input_files() == ("in_image.tif",)
    assert again.outputs == {"output": "out.tif", "lines": "lines.json"}


def test_a_plan_stored_by_an_older_version_still_reads() -> None:
    old = {
        "executable": "/x/eotool.py",
        "arguments": ["mosaic", "--in-images=in_images_1.tif"],
        "inputs": {"images": ["in_images_1.tif", "in_images_2.tif"]},
        "outputs": {"output": "out.tif"},
        "request_cpus": 1,
        "request_memory_mb": 512,
        "request_disk_mb": 1024,
        "tool": "mosaic",
        "params": {},
        "staging": [["a", "in_images_1.tif"], ["b", "in_images_2.tif"]],
        "output_labels": {},
    }
    plan = TaskPlan.from_json(json.dumps(old))
    assert plan.input_files() == ("in_images_1.tif", "in_images_2.tif")
    assert plan.output_name("output") == "out.tif"


@pytest.mark.parametrize(
    ("labels", "port", "name"),
    [
        ({}, "output", "out.tif"),  # no label: the connector's file name
        ({"output": "ndvi-2024"}, "output", "ndvi-2024.tif"),  # the extension is added
        ({"output": "scene.tif"}, "output", "scene.tif"),  # ...unless the label has it
        ({"lines": "outIMG_2"}, "lines", "outIMG_2.json"),  # GiSHEO labels too
        ({"lines": "outIMG_2"}, "output", "out.tif"),  # only the labelled port
    ],
)
def test_output_labels_name_the_stored_outputs(
    labels: dict[str, str], port: str, name: str
) -> None:
    assert _plan("hough", **labels).output_name(port) == name


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[StorageGateway]:
    store = tmp_path / "store"
    store.mkdir()
    ns = Namespace.from_dict(
        {
            "version": 1,
            "backends": {"local": {"type": "posix", "root": str(store)}},
            "area": [
                {
                    "path": "/private",
                    "type": "private",
                    "backend": "local",
                    "root": "/home",
                    "members": ["/testvo/*"],
                },
                {
                    "path": "/public",
                    "backend": "local",
                    "root": "/public",
                    "read": ["/testvo/*"],
                    "write": ["/testvo/*"],
                },
            ],
        }
    )
    yield StorageGateway(ns)


def _acting(gw: StorageGateway, scope_in_home: str, fqans: tuple[str, ...] = ("/testvo",)):  # noqa: ANN202
    owner = ActingForOwner(ALICE, tuple(Fqan.parse(f) for f in fqans), "the service", "")
    home = gw.home(owner)
    assert home is not None
    return home, ActingForOwner(
        owner.subject_grid, owner.fqans, owner.service, home + scope_in_home
    )


def test_acting_for_an_owner_writes_only_in_its_scope(gw: StorageGateway) -> None:
    home, who = _acting(gw, "/tasks/t1")
    assert home.endswith(user_key(who))  # the owner's own private area
    gw.mkdir(who, f"{home}/tasks/t1", parents=True)
    gw.write(who, f"{home}/tasks/t1/out.tif", iter([b"data"]))
    for path in (f"{home}/tasks/t2/out.tif", f"{home}/elsewhere.tif", "/public/x.tif"):
        with pytest.raises(PermissionDenied, match="may only write and read below"):
            gw.write(who, path, iter([b"data"]))
    assert b"".join(gw.open_read(who, f"{home}/tasks/t1/out.tif")) == b"data"  # its own
    with pytest.raises(PermissionDenied):  # but nothing else of the owner's
        list(gw.open_read(who, f"{home}/elsewhere.tif"))
    with pytest.raises(PermissionDenied):
        gw.delete(who, f"{home}/tasks/t1/out.tif")
    assert who.permits(f"{home}/tasks/t1/a", Op.WRITE)
    assert not who.permits(f"{home}/tasks/t10/a", Op.READ)  # component-wise


def test_acting_for_an_owner_still_obeys_the_area_rules(gw: StorageGateway) -> None:
    _home, who = _acting(gw, "/tasks/t1")
    stranger = ActingForOwner(ALICE, (), "the service", who.scope)  # no FQAN recorded
    with pytest.raises((PermissionDenied, NotFound)):
        gw.mkdir(stranger, who.scope, parents=True)


def test_the_gateway_sink_stores_outputs_under_their_names(
    gw: StorageGateway, tmp_path: Path
) -> None:
    src = tmp_path / "out.tif"
    src.write_bytes(b"ndvi")
    size, adler, sha = checksums(src)
    data = GatewayTaskData(gw, local_file_resolver(()), url_base="https://gw.example:8446")
    owner = TaskOwner(task_id="a" * 32, dn=ALICE, vo="testvo", fqans=("/testvo",))
    out = OutputFile("output", "ndvi-2024.tif", size, adler, sha, str(src))
    stored = data.store_outputs(owner, [out])
    folder = data.output_folder(owner)
    assert stored == {"output": f"{folder}/ndvi-2024.tif"}
    assert data.location(stored["output"]) == f"https://gw.example:8446{folder}/ndvi-2024.tif"
    home, _ = _acting(gw, "")
    assert folder == f"{home}/tasks/{'a' * 32}"
    (written,) = (tmp_path / "store" / "home").glob("*/tasks/*/ndvi-2024.tif")
    assert written.read_bytes() == b"ndvi"
