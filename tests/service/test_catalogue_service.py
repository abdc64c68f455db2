"""The catalogue over a real storage gateway (POSIX areas): registration reads the
file through the gateway with the caller's rights, visibility follows the areas'
rules across users and groups, scans find new, changed and vanished files, and
task inputs name datasets."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from shapely import wkt
from shapely.geometry import Point

from gproc.catalogue.engines.sqlite import SqliteEngine
from gproc.catalogue.extract import read_info
from gproc.catalogue.model import DatasetNotFound, Fields, NotARaster
from gproc.catalogue.query import Eq, Query, Spatial
from gproc.catalogue.service import Catalogue, TypeMismatch
from gproc.errors import NotAuthorised
from gproc.storage_gateway.access import user_key
from gproc.storage_gateway.backends.base import NotFound as StorageNotFound
from gproc.storage_gateway.backends.base import PermissionDenied
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace
from tests.catalogue_data import identity
from tests.catalogue_rasters import write_raster
from tests.fixtures.gateway import posix_namespace

ALICE = identity("/O=Grid/CN=Alice", ("/testvo",))
BOB = identity("/O=Grid/CN=Bob", ("/testvo", "/testvo/grid"))
DM = identity("/O=Grid/CN=Dora", ("/testvo", "/testvo/Role=datamanager"))
CAROL = identity("/O=Other/CN=Carol", ("/othervo",), vo="othervo")
ADMIN = identity("/O=Grid/CN=Root", ())


@pytest.fixture
def cat(tmp_path: Path) -> Catalogue:
    gw = StorageGateway(Namespace.from_dict(posix_namespace(tmp_path)))
    engine = SqliteEngine(f"sqlite:///{tmp_path / 'cat.db'}")
    engine.create_schema()
    return Catalogue(engine, gw, quicklooks=True, is_admin=lambda i: i is ADMIN)


def put(cat: Catalogue, who, path: str, name: str, tmp: Path) -> None:
    local = write_raster(tmp / f"{name}-{abs(hash(path))}.tif", name)
    with contextlib.suppress(PermissionDenied):  # the area root exists already
        cat.gateway.mkdir(who, path.rsplit("/", 1)[0], parents=True)
    cat.gateway.write(who, path, [local.read_bytes()], overwrite=True)


def home(who) -> str:
    return f"/private/{user_key(who)}"


def test_register_reads_metadata_and_checksums_through_the_gateway(cat, tmp_path) -> None:
    put(cat, DM, "/public/dem/banat.tif", "utm34", tmp_path)
    ds = cat.register(DM, "/public/dem/banat.tif", Fields("srtm", "banat", "DEM", "NASA"))
    assert ds.area == "/public" and ds.owner == DM.subject_grid
    local = write_raster(tmp_path / "ref.tif", "utm34")
    assert ds.raster == read_info(local)
    sums = cat.gateway.checksum(DM, "/public/dem/banat.tif")
    assert (ds.adler32, ds.sha256) == (sums.adler32, sums.sha256)
    assert ds.size == local.stat().st_size
    # the quicklook is kept in the gateway beside the raster, under the area's rules
    assert ds.quicklook == "/public/dem/.quicklooks/banat.tif.png"
    png = b"".join(cat.gateway.open_read(ALICE, ds.quicklook))
    assert png.startswith(b"\x89PNG") and b"".join(cat.quicklook(ALICE, ds.id)) == png
    assert wkt.loads(ds.raster.footprint_wkt).contains(Point(21.2257, 45.7537))
    again = cat.register(DM, "/public/dem/banat.tif", Fields("srtm", "banat", "DEM", "ESA"))
    assert again.id == ds.id and again.registered == ds.registered
    assert cat.get(ALICE, "srtm/banat").fields.vendor == "ESA"


def test_visibility_across_users_and_groups(cat, tmp_path) -> None:
    put(cat, DM, "/public/a.tif", "geo", tmp_path)
    put(cat, BOB, "/groups/grid/b.tif", "geo", tmp_path)
    put(cat, ALICE, f"{home(ALICE)}/c.tif", "geo", tmp_path)
    put(cat, BOB, f"{home(BOB)}/d.tif", "geo", tmp_path)
    cat.register(DM, "/public/a.tif", Fields("g", "public"))
    cat.register(BOB, "/groups/grid/b.tif", Fields("g", "grid"))
    cat.register(ALICE, f"{home(ALICE)}/c.tif", Fields("g", "alice"))
    cat.register(BOB, f"{home(BOB)}/d.tif", Fields("g", "bob"))
    everything = Query(Spatial.bbox(-180, -90, 180, 90))

    def names(who) -> list[str]:
        return [d.fields.dataset for d in cat.search(who, everything).items]

    assert names(ALICE) == ["alice", "public"]
    assert names(BOB) == ["bob", "grid", "public"]
    assert names(DM) == ["public"]
    assert names(CAROL) == []
    assert names(ADMIN) == ["alice", "bob", "grid", "public"]
    assert dict(cat.datagroups(ALICE)) == {"g": 2}
    for ref in ("g/bob", cat.get(BOB, "g/bob").id, "dataset:g/bob"):
        with pytest.raises(DatasetNotFound):
            cat.get(ALICE, ref)
    with pytest.raises(DatasetNotFound):
        cat.remove(ALICE, "g/bob")  # another's private entry does not even exist


def test_writes_need_the_right_to_write_the_area(cat, tmp_path) -> None:
    put(cat, DM, "/public/a.tif", "geo", tmp_path)
    with pytest.raises(NotAuthorised):
        cat.register(ALICE, "/public/a.tif", Fields("g", "a"))
    cat.register(DM, "/public/a.tif", Fields("g", "a"))
    with pytest.raises(NotAuthorised):
        cat.update(ALICE, "g/a", Fields("g", "a", vendor="me"))
    with pytest.raises(NotAuthorised):
        cat.remove(ALICE, "g/a")
    assert cat.update(DM, "g/a", Fields("g", "a", vendor="USGS")).fields.vendor == "USGS"
    removed = cat.remove(DM, "g/a")
    assert removed.quicklook
    with pytest.raises(StorageNotFound):
        cat.gateway.stat(DM, removed.quicklook)
    with pytest.raises(DatasetNotFound):
        cat.get(DM, "g/a")


def test_register_refuses_what_is_not_a_raster(cat) -> None:
    cat.gateway.write(DM, "/public/notes.tif", [b"hello"])
    with pytest.raises(NotARaster):
        cat.register(DM, "/public/notes.tif", Fields("g", "n"))
    with pytest.raises(DatasetNotFound):
        cat.register(DM, "/public/none.tif", Fields("g", "n"))


def test_scan_adds_updates_and_marks_missing(cat, tmp_path) -> None:
    put(cat, DM, "/public/scan/x/one.tif", "geo", tmp_path)
    put(cat, DM, "/public/scan/two.tif", "merc", tmp_path)
    cat.gateway.write(DM, "/public/scan/broken.tif", [b"nope"])
    cat.gateway.write(DM, "/public/scan/readme.txt", [b"text"])
    template = Fields("survey", "_", "RASTER/AERIAL", "ESA")
    first = cat.scan(DM, "/public/scan", template)
    assert len(first.added) == 2 and first.unchanged == 0
    assert list(first.failed) == ["/public/scan/broken.tif"]
    assert sorted(
        d.fields.dataset for d in cat.search(ALICE, Query(Eq("datagroup", "survey"))).items
    ) == [
        "two",
        "x.one",
    ]
    put(cat, DM, "/public/scan/two.tif", "utm34", tmp_path)  # changed content
    cat.gateway.delete(DM, "/public/scan/x/one.tif")
    second = cat.scan(DM, "/public/scan", template)
    assert (second.added, len(second.updated), second.unchanged) == ([], 1, 0)
    assert second.missing == first.added[:1] or second.missing == first.added[1:]
    left = cat.search(ALICE, Query(Eq("datagroup", "survey"))).items
    assert [d.fields.dataset for d in left] == ["two"]
    assert left[0].raster.crs == "EPSG:32634"
    assert cat.scan(DM, "/public/scan", template).unchanged == 1
    with pytest.raises(NotAuthorised):
        cat.scan(ALICE, "/public/scan", template)


def test_task_inputs_name_datasets_with_the_callers_rights(cat, tmp_path) -> None:
    put(cat, ALICE, f"{home(ALICE)}/dem.tif", "utm34", tmp_path)
    ds = cat.register(ALICE, f"{home(ALICE)}/dem.tif", Fields("mine", "dem", "DEM"))
    assert cat.resolve_input(ALICE, "dataset:mine/dem") == ds
    assert cat.resolve_input(ALICE, f"dataset:{ds.id}") == ds
    with pytest.raises(DatasetNotFound):
        cat.resolve_input(BOB, "dataset:mine/dem")
    Catalogue.check_type(ds, ("DEM",))
    Catalogue.check_type(ds, ())
    with pytest.raises(TypeMismatch) as err:
        Catalogue.check_type(ds, ("MULTISPECTRAL", "RASTER"))
    assert "DEM" in str(err.value)


def test_scan_renders_the_quicklooks_entries_lack(cat, tmp_path) -> None:
    put(cat, DM, "/public/scan/a.tif", "geo", tmp_path)
    bare = Catalogue(cat.engine, cat.gateway, quicklooks=False)
    (first,) = bare.scan(DM, "/public/scan", Fields("s", "x", "DEM")).added
    assert cat.engine.get(first).quicklook is None  # e.g. made before quicklooks moved
    report = cat.scan(DM, "/public/scan", Fields("s", "x", "DEM"))
    assert report.updated == [first] and not report.added  # the hidden folder is skipped
    assert cat.engine.get(first).quicklook == "/public/scan/.quicklooks/a.tif.png"
    assert cat.scan(DM, "/public/scan", Fields("s", "x", "DEM")).unchanged == 1
