"""The dataset types each connector's input ports declare, and ``[catalogue]
input_types`` overriding them (what RegisterTask and workflows check by default)."""

from __future__ import annotations

import pytest

from gproc.connectors.registry import get_connector, list_connectors
from gproc.services.catalogue_tasks import input_types
from gproc.settings import Settings

pytestmark = pytest.mark.unit

# (tool, port, accepted types; () = any raster)
DECLARED = [
    ("ndvi", "red", ("MULTISPECTRAL",)),
    ("ndvi", "nir", ("MULTISPECTRAL",)),
    ("canny", "image", ()),
    ("hough", "image", ()),
    ("grayscale", "image", ()),
    ("equalize", "image", ()),
    ("threshold", "image", ()),
    ("band", "image", ()),
    ("mosaic", "inputs", ()),
]


@pytest.mark.parametrize(("tool", "port", "types"), DECLARED)
def test_each_port_declares_its_dataset_types(tool: str, port: str, types: tuple) -> None:  # type: ignore[type-arg]
    ports = {p.name: p for p in get_connector(tool).inputs}
    assert ports[port].accepts == types
    assert input_types(Settings()).get(f"{tool}.{port}", ()) == types  # type: ignore[call-arg]


def test_every_declared_type_is_a_well_formed_catalogue_type() -> None:
    from gproc.catalogue.model import TYPE_RE

    for c in list_connectors():
        for p in c.inputs:
            assert all(TYPE_RE.match(t) for t in p.accepts), f"{c.name}.{p.name}"


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ({"ndvi.red": ["DEM"]}, "ndvi.red", ("DEM",)),  # a setting replaces the declaration
        ({"ndvi.red": ["DEM"]}, "ndvi.nir", ("MULTISPECTRAL",)),  # others stay declared
        ({"hough.image": ["RASTER/AERIAL"]}, "hough.image", ("RASTER/AERIAL",)),  # adds one
        ({"ndvi.red": []}, "ndvi.red", ()),  # an empty list lifts the restriction
    ],
)
def test_settings_override_the_declared_types(override: dict, key: str, expected: tuple) -> None:  # type: ignore[type-arg]
    settings = Settings()  # type: ignore[call-arg]
    settings.catalogue.input_types = override
    assert input_types(settings).get(key, ()) == expected
