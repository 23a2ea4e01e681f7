"""The composition root builds the system right once (issue 11, trip-over 5): ingest used
to re-wire the locators and lookups of already built applications and hang its lookups on
the system with `object.__setattr__`; the adapters imported the whole `CitySystem`."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from cityops.bootstrap import CitySystem, build_system
from cityops.ingest.composition import build_embedded_ingest
from cityops.ingest.handlers import IngestTarget
from cityops.ingest.tracks import ResourceTracks
from cityops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ("command-center/routers", "command-center/live.py", "command-center/sharing.py",
            "command-center/scopes.py", "command-center/feature_requests.py",
            "command-center/dependencies.py", "ingest/handlers.py", "ingest/composition.py",
            "ingest/prefetch.py", "feeds/service.py")
"""Modules that take the system as a narrow protocol of what they use (the entry points
and the web app's own composition, command-center/app.py, may name `CitySystem`)."""


def test_the_applications_are_built_with_the_batch_lookups_and_never_rewired(
        tmp_path: Path, demo_city: Any) -> None:
    system = build_system(Settings(data_dir=tmp_path / "data"), city=demo_city)
    try:
        lookups = system.batch_lookups
        wired = (system.grid_cases.locator, system.grid_cases.open_reports,
                 system.hotline.locator, system.hotline.open_tickets,
                 system.hazards.latest_readings)
        assert wired == (lookups.locator, lookups.open_cases, lookups.locator,
                         lookups.open_tickets, lookups.latest_readings)
        # Ingest (twice, as two pipelines over one system) takes them as they are.
        for _ in range(2):
            ingest = build_embedded_ingest(system, system.settings.ingest)
            assert ingest.pipeline.target.lookups is lookups
            ingest.pipeline.close()
        target = IngestTarget.of(system, ResourceTracks(system.generations.storage.base()))
        assert target.lookups is lookups and target.city_map is lookups.locator
        assert (system.grid_cases.locator, system.grid_cases.open_reports,
                system.hotline.locator, system.hotline.open_tickets,
                system.hazards.latest_readings) == wired
        assert not [name for name in vars(system) if name.startswith("_")]
    finally:
        system.close()


def test_the_system_says_what_its_city_is() -> None:
    assert CitySystem.__annotations__["city"] == "City"


def test_adapters_take_narrow_protocols_not_the_system() -> None:
    importing = []
    for entry in ADAPTERS:
        path = ROOT / entry
        for module in ([path] if path.is_file() else sorted(path.glob("*.py"))):
            tree = ast.parse(module.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "cityops.bootstrap":
                    importing.append(f"{module.relative_to(ROOT)}:{node.lineno}")
    assert not importing, f"adapters importing the composition root: {importing}"
