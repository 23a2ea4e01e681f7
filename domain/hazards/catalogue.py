"""Reference data of hazard-source supervision, loaded and validated at start-up: the types of
hazard source (with a default impact radius) and the kinds of monitoring sensor (with their
units), plus the default alarm deadband. Data (domain/data/hazard_types.json), never
hard-coded in logic; a bad file is refused with the file and the place of the error (the
general catalogue's reader and strict schema base are reused for the same checks and messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from cityops.domain.catalogue import StrictModel, read_data_file, require_unique
from cityops.domain.errors import CatalogueError, InvalidValue

HAZARD_TYPES_FILE = "hazard_types.json"
MAX_DEADBAND = 0.5
"""A deadband of half the threshold or more would keep an alarm from ever clearing in practice."""


@dataclass(frozen=True)
class HazardType:
    """A type of hazard source (chemical plant, LPG depot, reservoir dam...)."""

    code: str
    name: str
    default_impact_radius_m: float


@dataclass(frozen=True)
class SensorKind:
    """What a monitoring sensor measures, and in which units it may report."""

    code: str
    name: str
    units: tuple[str, ...]


class _HazardTypeFile(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str = Field(min_length=1)
    default_impact_radius_m: float = Field(gt=0, le=50_000)


class _SensorKindFile(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str = Field(min_length=1)
    units: list[str] = Field(min_length=1)


class _HazardTypesFile(StrictModel):
    version: int
    alarm_deadband: float = Field(ge=0, lt=MAX_DEADBAND)
    hazard_types: list[_HazardTypeFile] = Field(min_length=1)
    sensor_kinds: list[_SensorKindFile] = Field(min_length=1)


@dataclass(frozen=True)
class HazardCatalogue:
    """Hazard types, sensor kinds and the default alarm deadband of the city."""

    hazard_types: dict[str, HazardType]
    sensor_kinds: dict[str, SensorKind]
    alarm_deadband: float
    """Default share of a threshold by which a value must come back before an alarm level
    is left (hysteresis against flapping); a sensor may be given its own."""

    @classmethod
    def load(cls, directory: Path | None = None) -> HazardCatalogue:
        """Load `hazard_types.json` from `directory` (or the built-in file) and validate it."""
        data = read_data_file(directory, HAZARD_TYPES_FILE, _HazardTypesFile)
        require_unique(HAZARD_TYPES_FILE, (t.code for t in data.hazard_types))
        require_unique(f"{HAZARD_TYPES_FILE} sensor kinds", (k.code for k in data.sensor_kinds))
        for kind in data.sensor_kinds:
            if any(not unit.strip() for unit in kind.units):
                raise CatalogueError(f"{HAZARD_TYPES_FILE} {kind.code}: empty unit")
            require_unique(f"{HAZARD_TYPES_FILE} {kind.code} units", kind.units)
        return cls(
            hazard_types={
                t.code: HazardType(code=t.code, name=t.name,
                                   default_impact_radius_m=t.default_impact_radius_m)
                for t in data.hazard_types
            },
            sensor_kinds={
                k.code: SensorKind(code=k.code, name=k.name, units=tuple(k.units))
                for k in data.sensor_kinds
            },
            alarm_deadband=data.alarm_deadband,
        )

    def hazard_type(self, code: str) -> HazardType:
        try:
            return self.hazard_types[code]
        except KeyError:
            known = ", ".join(self.hazard_types)
            raise InvalidValue(f"unknown hazard type {code!r}; types are {known}") from None

    def sensor_kind(self, code: str) -> SensorKind:
        try:
            return self.sensor_kinds[code]
        except KeyError:
            known = ", ".join(self.sensor_kinds)
            raise InvalidValue(f"unknown sensor kind {code!r}; kinds are {known}") from None

    def check_unit(self, kind_code: str, unit: str) -> str:
        """The unit, if a sensor of that kind may report in it."""
        kind = self.sensor_kind(kind_code)
        if unit not in kind.units:
            raise InvalidValue(
                f"a {kind.code} sensor reports in {', '.join(kind.units)}, not {unit!r}"
            )
        return unit
