"""Response norms: how many minutes after the first report each milestone of an incident's
response should be reached, by incident category and level. Data (`response_norms.json`,
beside the catalogue's files), loaded and validated against the catalogue at start-up; an
after-action review compares what happened with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import Field

from cityops.domain.catalogue import Catalogue, StrictModel, read_data_file
from cityops.domain.errors import CatalogueError

NORMS_FILE = "response_norms.json"


class Milestone(StrEnum):
    """The milestones of a response, in their order, each counted from the first report."""

    VERIFIED = "verified"
    DISPATCHED = "dispatched"
    """The first resource dispatched."""
    ON_SCENE = "on_scene"
    """The first resource on scene."""
    CONTAINED = "contained"
    CLOSED = "closed"


class _NormFile(StrictModel):
    category: str
    levels: list[str] = Field(min_length=1)
    minutes: dict[Milestone, float]


class _NormsFile(StrictModel):
    version: int
    source: str = ""
    norms: list[_NormFile] = Field(min_length=1)


@dataclass(frozen=True)
class ResponseNorm:
    """The targets of one entry: minutes from the report to each milestone it names."""

    category: str
    levels: frozenset[str]
    targets: dict[Milestone, timedelta]

    @property
    def specificity(self) -> tuple[int, int]:
        return (0 if self.category == "*" else 1, -len(self.levels))


@dataclass(frozen=True)
class ResponseNorms:
    """Every norm; `for_incident` finds the one that applies."""

    norms: tuple[ResponseNorm, ...]
    source: str = ""

    @classmethod
    def load(cls, catalogue: Catalogue, directory: Path | None = None) -> ResponseNorms:
        """Read and check the norms (`directory`: the catalogue's, else the built-in file);
        codes are checked against the catalogue."""
        data = read_data_file(directory, NORMS_FILE, _NormsFile)
        found = []
        for index, entry in enumerate(data.norms):
            label = f"{NORMS_FILE} norm {index + 1}"
            if entry.category != "*" and entry.category not in catalogue.incident_categories:
                raise CatalogueError(f"{label}: unknown incident category {entry.category!r}")
            for level in entry.levels:
                if level not in catalogue.incident_levels:
                    raise CatalogueError(f"{label}: unknown incident level {level!r}")
            for milestone, minutes in entry.minutes.items():
                if minutes <= 0:
                    raise CatalogueError(f"{label}: {milestone.value} must be more than 0 "
                                         "minutes")
            found.append(ResponseNorm(
                category=entry.category, levels=frozenset(entry.levels),
                targets={m: timedelta(minutes=v) for m, v in entry.minutes.items()}))
        return cls(norms=tuple(found), source=data.source)

    def for_incident(self, category: str, level: str) -> dict[Milestone, timedelta]:
        """The target of each milestone for an incident of `category` at `level`: per
        milestone, the most specific entry that names it (a category's own before '*', a
        narrower list of levels before a wider one)."""
        matching = sorted((n for n in self.norms
                           if n.category in ("*", category) and level in n.levels),
                          key=lambda n: n.specificity)
        targets: dict[Milestone, timedelta] = {}
        for norm in matching:  # least specific first: the more specific overwrite
            targets.update(norm.targets)
        return targets
