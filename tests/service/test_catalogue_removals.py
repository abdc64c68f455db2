"""A file deleted or renamed through a real gateway front (HTTPS) has its catalogue
entry marked missing at once, not at the next scan (the gateway's removal listener,
wired by ``build_parts`` when a catalogue is configured)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gproc.catalogue.engines import open_engine
from gproc.catalogue.model import Fields
from gproc.catalogue.service import Catalogue
from gproc.services.catalogue_tasks import CatalogueRemovals
from gproc.settings import CatalogueSettings, GatewaySettings, Settings
from tests.catalogue_rasters import write_raster
from tests.fixtures.gateway import GatewayServer, identity_of, posix_namespace, start_gateway


@pytest.fixture
def served(test_pki, tmp_path: Path) -> Iterator[tuple[GatewayServer, Catalogue]]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    settings = Settings(  # type: ignore[call-arg]
        state_dir=tmp_path / "state",
        gateway=GatewaySettings(sshkeys_dir=tmp_path / "sshkeys"),
        catalogue=CatalogueSettings(database_url=url, quicklooks=False),
    )
    engine = open_engine(url)
    engine.create_schema()
    gw = start_gateway(test_pki, tmp_path, posix_namespace(tmp_path), settings=settings)
    try:
        yield gw, Catalogue(engine, gw.parts.gateway, quicklooks=False)
    finally:
        gw.server.stop()
        engine.close()


def test_the_gateway_is_given_the_catalogue_listener(served) -> None:  # type: ignore[no-untyped-def]
    gw, _cat = served
    assert isinstance(gw.parts.gateway.removals, CatalogueRemovals)


def test_delete_and_rename_mark_the_entry_missing_at_once(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw, cat = served
    alice = identity_of(gw, "alice-voms")
    home = gw.home()
    raster = write_raster(tmp_path / "r.tif", "utm34").read_bytes()
    ids = {}
    with gw.session() as s:
        for name in ("a", "b", "c"):
            assert s.put(f"{gw.url}{home}/{name}.tif", data=raster).status_code in (200, 201)
            ids[name] = cat.register(alice, f"{home}/{name}.tif", Fields("mine", name)).id
        assert s.delete(f"{gw.url}{home}/a.tif").status_code == 200
        moved = s.post(f"{gw.url}{home}/b.tif", params={"op": "rename", "to": f"{home}/z.tif"})
        assert moved.status_code == 200
    missing = {name: cat.engine.get(i).missing for name, i in ids.items()}
    assert missing == {"a": True, "b": True, "c": False}
