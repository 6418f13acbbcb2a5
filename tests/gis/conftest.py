"""Fixtures for the gis tests: the real Helsinki OSM extract, fetched on first use."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gis.osm import AddressedBuilding, DrivableWay, iter_addressed_buildings, iter_drivable_ways

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "var" / "data"
FETCH_SCRIPT = REPO_ROOT / "scripts" / "fetch-demo-data.sh"


@pytest.fixture(scope="session")
def helsinki_pbf() -> Path:
    """Path to Helsinki.osm.pbf, running scripts/fetch-demo-data.sh when it is not there yet."""
    path = DATA_DIR / "Helsinki.osm.pbf"
    if not path.is_file():
        result = subprocess.run(
            ["bash", str(FETCH_SCRIPT), str(DATA_DIR)],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if result.returncode != 0 or not path.is_file():
            pytest.fail(
                f"could not obtain the Helsinki extract (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
    return path


@pytest.fixture(scope="session")
def helsinki_buildings(helsinki_pbf: Path) -> list[AddressedBuilding]:
    """Addressed buildings (polygons only) of the Helsinki extract."""
    return list(iter_addressed_buildings(helsinki_pbf))


@pytest.fixture(scope="session")
def helsinki_places(helsinki_pbf: Path) -> list[AddressedBuilding]:
    """Addressed buildings plus address nodes of the Helsinki extract."""
    return list(iter_addressed_buildings(helsinki_pbf, include_address_nodes=True))


@pytest.fixture(scope="session")
def helsinki_ways(helsinki_pbf: Path) -> list[DrivableWay]:
    """Drivable ways of the Helsinki extract."""
    return list(iter_drivable_ways(helsinki_pbf))
