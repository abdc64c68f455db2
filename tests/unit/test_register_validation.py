"""Registration refuses bad requests with errors that name the field, and leaves
nothing behind (a batch is all or none). No pool is contacted: describing a job
is pure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from gproc.connectors import ToolRequest
from gproc.domain import (
    InvalidTaskRequest,
    LimitExceeded,
    NotReady,
    Owner,
    TaskPurged,
    TaskRequest,
)
from gproc.errors import StorageUnavailable
from gproc.lifecycle import TaskService
from gproc.registry import Registry, TaskFilter
from gproc.staging import TaskDirs, local_file_resolver
from gproc.task_data import LocalTaskData
from gproc.wrappers.htcondor.schedd import HTCondorWMS

OWNER = Owner(dn="/C=RO/O=GiSHEO/CN=ann")


@pytest.fixture
def tif(tmp_path: Path) -> Path:
    path = tmp_path / "in.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=4,
        height=4,
        count=1,
        dtype="uint8",
        crs="EPSG:32635",
        transform=from_origin(0, 0, 1, 1),
    ) as ds:
        ds.write(np.zeros((1, 4, 4), dtype="uint8"))
    return path


def _svc(tmp_path: Path, roots: tuple[Path, ...] | None = None, max_batch: int = 10) -> TaskService:
    return TaskService(
        Registry(f"sqlite:///{tmp_path / 'db.sqlite'}"),
        HTCondorWMS(instance="unit", sandbox_root=tmp_path / "sb"),
        TaskDirs(tmp_path / "tasks"),
        LocalTaskData(local_file_resolver(roots)),
        max_batch=max_batch,
        max_inline=64,
    )


def _req(
    tool: str, inputs: dict[str, str], params: dict[str, object] | None = None, **kw: object
) -> TaskRequest:
    return TaskRequest(
        ToolRequest(tool=tool, inputs=inputs, params=params or {}),  # type: ignore[arg-type]
        OWNER,
        **kw,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tool", "params", "field"),
    [
        ("no_such_tool", {}, "tool"),
        ("canny", {"aperture_size": 4}, "params.aperture_size"),
        ("canny", {"canny1": "abc"}, "params.canny1"),
        ("canny", {"canny1": -5}, "params.canny1"),
        ("canny", {"bogus": 1}, "params.bogus"),
        ("quantize", {"levels": 1000}, "params.levels"),
        ("canny", {"canny1": '1"\n+Owner="root'}, "params.canny1"),
    ],
)
def test_bad_requests_name_the_field(
    tmp_path: Path, tif: Path, tool: str, params: dict[str, object], field: str
) -> None:
    svc = _svc(tmp_path)
    with pytest.raises(InvalidTaskRequest) as exc:
        svc.register([_req(tool, {"image": str(tif)}, params)])
    assert exc.value.field == field
    assert svc.registry.list_tasks(TaskFilter())[1] == 0


@pytest.mark.parametrize(
    "source",
    ["relative/path.tif", "/no/such/file.tif", "file://otherhost/etc/passwd", "/etc/\x00x"],
)
def test_bad_input_references_are_refused(tmp_path: Path, source: str) -> None:
    with pytest.raises(InvalidTaskRequest) as exc:
        _svc(tmp_path).register([_req("band", {"image": source})])
    assert exc.value.field.startswith("inputs")


def test_network_entry_points_cannot_read_server_files(tmp_path: Path, tif: Path) -> None:
    svc = _svc(tmp_path, roots=(tmp_path / "allowed",))
    with pytest.raises(InvalidTaskRequest, match="not allowed"):
        svc.register([_req("band", {"image": "/etc/passwd"})])
    (tmp_path / "allowed").mkdir()
    sneaky = tmp_path / "allowed" / ".." / tif.name  # traversal out of the allowed root
    with pytest.raises(InvalidTaskRequest, match="not allowed"):
        svc.register([_req("band", {"image": str(sneaky)})])
    link = tmp_path / "allowed" / "link.tif"
    link.symlink_to("/etc/passwd")
    with pytest.raises(InvalidTaskRequest, match="not allowed"):
        svc.register([_req("band", {"image": str(link)})])


def test_a_batch_is_all_or_none(tmp_path: Path, tif: Path) -> None:
    svc = _svc(tmp_path)
    good = _req("band", {"image": str(tif)})
    bad = _req("band", {"image": "/no/such.tif"})
    with pytest.raises(InvalidTaskRequest):
        svc.register([good, bad])
    assert svc.registry.list_tasks(TaskFilter())[1] == 0
    assert not any((tmp_path / "tasks").iterdir())  # staged files of the good one are gone


def test_batch_and_inline_limits(tmp_path: Path, tif: Path) -> None:
    svc = _svc(tmp_path, max_batch=2)
    with pytest.raises(LimitExceeded):
        svc.register([_req("band", {"image": str(tif)})] * 3)
    with pytest.raises(InvalidTaskRequest):
        svc.register([])
    big = TaskRequest(
        ToolRequest(tool="band", inputs={"image": "inline"}),
        OWNER,
        inline_inputs={"image": b"x" * 65},
    )
    with pytest.raises(LimitExceeded):
        svc.register([big])


@pytest.mark.parametrize("rid", ["", "a b", "abc\n", "x" * 129, "../x", "id\n+Owner=1", "-lead"])
def test_bad_client_request_ids(tmp_path: Path, tif: Path, rid: str) -> None:
    with pytest.raises(InvalidTaskRequest) as exc:
        _svc(tmp_path).register([_req("band", {"image": str(tif)}, client_request_id=rid)])
    assert exc.value.field == "client_request_id"


def test_a_good_registration_records_a_safe_job_description(tmp_path: Path, tif: Path) -> None:
    svc = _svc(tmp_path)
    view = svc.register([_req("canny", {"image": str(tif)}, {"canny1": 50, "canny2": 120})])[0]
    desc = view.job_description
    assert f'GprocTaskId = "{view.id}"' in desc
    assert "--canny1=50" in desc and "--canny2=120" in desc
    staged = sorted(p.name for p in svc.dirs.inputs(view.id).iterdir())
    assert staged == ["in_image.tif"]  # a connector-chosen name, not the caller's
    assert (svc.dirs.inputs(view.id) / "in_image.tif").read_bytes() == tif.read_bytes()


def test_accounting_group_and_delegated_proxy_reach_the_job_description(
    tmp_path: Path, tif: Path
) -> None:
    proxy = tmp_path / "delegated.pem"
    proxy.write_text("not read at registration")
    owner = Owner(dn="/C=RO/O=GiSHEO/CN=ann", vo="testvo", accounting_group="group_testvo.grid")
    req = TaskRequest(ToolRequest(tool="band", inputs={"image": str(tif)}), owner, x509_proxy=proxy)
    desc = _svc(tmp_path).register([req])[0].job_description
    assert f"x509userproxy = {proxy}" in desc
    assert "accounting_group = group_testvo.grid" in desc


def test_a_refused_item_names_its_index_in_the_batch(tmp_path: Path, tif: Path) -> None:
    good = _req("band", {"image": str(tif)})
    reqs = [good] * 3 + [_req("canny", {"image": str(tif)}, {"canny1": -5})] + [good]
    with pytest.raises(InvalidTaskRequest) as exc:
        _svc(tmp_path).register(reqs)
    assert exc.value.index == 3 and exc.value.field == "params.canny1"
    assert str(exc.value).startswith("item 3, params.canny1: ")
    with pytest.raises(InvalidTaskRequest) as exc:
        _svc(tmp_path).register([good, _req("band", {"image": "/no/such.tif"})])
    assert exc.value.index == 1 and exc.value.field == "inputs"  # staging errors too


def _broken_store(svc: TaskService, pragma: str) -> None:
    """Make the real SQLite database refuse writes the way a full disk
    (max_page_count reached: SQLITE_FULL) or a read-only database (SQLITE_READONLY)
    does, on every connection the registry opens from now on."""
    from sqlalchemy import event

    svc.registry.engine.dispose()

    @event.listens_for(svc.registry.engine, "connect")
    def _limit(dbapi_conn: object, _record: object) -> None:
        cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
        if pragma == "full":
            pages = cur.execute("PRAGMA page_count").fetchone()[0]
            cur.execute(f"PRAGMA max_page_count = {pages}")
        else:
            cur.execute("PRAGMA query_only = ON")
        cur.close()


@pytest.mark.parametrize(
    ("pragma", "cause"),
    [("full", "database or disk is full"), ("readonly", "readonly database")],
)
def test_a_store_that_cannot_write_is_unavailable_and_nothing_stays(
    tmp_path: Path, tif: Path, pragma: str, cause: str
) -> None:
    svc = _svc(tmp_path)
    _broken_store(svc, pragma)
    # a payload large enough to need new database pages
    reqs = [_req("band", {"image": str(tif)}, client_request_id=f"r{i}") for i in range(8)]
    with pytest.raises(StorageUnavailable) as exc:
        svc.register(reqs)
    assert exc.value.retryable and exc.value.code == "Server.StorageUnavailable"
    assert cause in str(exc.value)
    assert svc.registry.list_tasks(TaskFilter())[1] == 0  # nothing partial is visible
    assert not any((tmp_path / "tasks").iterdir())  # nor any staged file


def test_outputs_of_a_purged_task_say_it_was_purged(tmp_path: Path, tif: Path) -> None:
    svc = _svc(tmp_path)
    view = svc.register([_req("band", {"image": str(tif)})])[0]
    with pytest.raises(NotReady, match="once it has ended"):
        svc.outputs(view.id)
    assert svc.purge(view.id).state == "purged"
    with pytest.raises(TaskPurged, match="was purged") as exc:
        svc.outputs(view.id)
    assert exc.value.code == "Client.TaskPurged" and "once it has ended" not in str(exc.value)


def test_the_submit_grace_is_a_setting(tmp_path: Path) -> None:
    from datetime import timedelta

    from gproc.app import build_tracker
    from gproc.settings import Settings, TrackerSettings

    settings = Settings(state_dir=tmp_path, tracker=TrackerSettings(submit_grace_s=7))
    assert build_tracker(_svc(tmp_path), settings).submit_grace == timedelta(seconds=7)
