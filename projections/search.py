"""Text search over the read models of grid cases, hotline tickets and incidents: by
description (and an incident's title), by address — the places of the city named in the query
("the pipe on Reservoir Road": the items in the cells of that street, or whose text names it)
— and by ids, on SQLite and PostgreSQL alike.

A query is cut into the places it names (found by the city's gazetteer, longest names first)
and words. Every word must occur in one of the item's searched fields (a case-insensitive
substring, so it works the same for Chinese text, which has no spaces, and for English or
pinyin); every place must hold the item (its unit grid cell is one of the place's cells) or
be named in its text. Small words ("the", "on", "的") are not searched for. The conditions
are SQL over the read-model rows, added to the same `ReadModels.page` query the lists use, so
a search sees exactly what the lists show to the same person. Incidents carry no grid cell:
their places are tested on their located points, then paged.

Caller personal data is never searched (a ticket is found by what it is about, not by who
called).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cityops.domain.errors import InvalidValue
from cityops.maps.gazetteer import CellSelection, Gazetteer, Mention, Place, normalised
from cityops.maps.hierarchy import CODE_SEPARATOR
from cityops.projections.views import Page, ReadModels

STOPWORDS = frozenset({
    "the", "a", "an", "on", "at", "in", "of", "near", "by", "to", "from", "and", "with",
    "for", "around", "along", "off", "is", "was", "there",
    "的", "在", "附近", "和", "与",
})
"""Words a dispatcher types around what they look for, not searched for themselves."""
_CJK_PARTICLES = re.compile(r"^(?:的|在|附近|和|与)+|(?:的|在|附近|和|与)+$")
_CJK_PARTICLES_INSIDE = re.compile(
    r"(?<=[\u3400-\u9fff])(?:的|在|附近|和|与)+(?=[\u3400-\u9fff])")
"""Chinese has no spaces: a particle between two words separates them ("中山路的水管")."""
# Applied to NFKC-normalised text: full-width punctuation has become ASCII by then.
_SEPARATORS = re.compile("[\\s,;:.!?\"()\u201c\u201d\u3001\u3002]+")
MAX_QUERY_LENGTH = 200
MAX_WORDS = 8
PLACE_FILTERED_ROWS = 5000
"""Rows examined at most when places are tested in Python (incidents: few per city)."""


@dataclass(frozen=True)
class SearchTarget:
    """A read model searched: its table and the fields the words are looked for in."""

    table: str
    fields: tuple[str, ...]
    columns: frozenset[str]
    """Fields that are columns of the table (the others are keys of the row's document)."""
    cell_column: str | None
    """The column holding the row's unit grid cell, if the table has one."""


GRID_CASES = SearchTarget(
    "rm_grid_cases", ("id", "description", "grid_cell", "category", "ticket_id", "result"),
    frozenset({"id", "grid_cell", "category"}), "grid_cell")
HOTLINE_TICKETS = SearchTarget(
    "rm_tickets", ("id", "description", "grid_cell", "topic", "case_id", "incident_id",
                   "answer", "reply"),
    frozenset({"id", "grid_cell", "topic"}), "grid_cell")
INCIDENTS = SearchTarget(
    "rm_incidents", ("id", "title", "description", "source_ref", "incident_type"),
    frozenset({"id", "incident_type"}), None)


@dataclass(frozen=True)
class PlaceCondition:
    """A place named in the query: the item is in its cells, or its text names it."""

    place: Place
    form: str
    cells: CellSelection


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: the words to find and the places to be in."""

    text: str
    words: tuple[str, ...]
    places: tuple[PlaceCondition, ...]


def parse_query(text: str, gazetteer: Gazetteer) -> SearchQuery:
    """Cut a query into the places it names and the words left; refuse one with nothing
    to look for."""
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidValue(f"a search is at most {MAX_QUERY_LENGTH} characters, got "
                           f"{len(text)}")
    wanted = normalised(text)
    if not wanted:
        raise InvalidValue("the search text is empty: type words, a place or an id")
    mentions: list[Mention] = gazetteer.mentions(wanted)
    rest = wanted
    for mention in sorted(mentions, key=lambda m: -m.start):
        rest = rest[: mention.start] + " " + rest[mention.end:]
    rest = _CJK_PARTICLES_INSIDE.sub(" ", rest)
    tokens = [_CJK_PARTICLES.sub("", t) for t in _SEPARATORS.split(rest)]
    tokens = [t for t in tokens if t]
    words = [t for t in tokens if t not in STOPWORDS]
    if not words and not mentions:
        words = tokens  # only small words: look for them after all
    if not words and not mentions:
        raise InvalidValue(f"nothing to search for in {text!r}")
    if len(words) > MAX_WORDS:
        raise InvalidValue(f"a search has at most {MAX_WORDS} words, got {len(words)}")
    seen: set[tuple[str, str | None, str]] = set()
    places = []
    for mention in mentions:
        key = (mention.place.kind.value, mention.place.code, mention.place.name)
        if key not in seen:
            seen.add(key)
            places.append(PlaceCondition(mention.place, mention.form,
                                         gazetteer.cells_of(mention.place)))
    return SearchQuery(text=text, words=tuple(dict.fromkeys(words)), places=tuple(places))


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _field_text(target: SearchTarget, dialect: str, name: str) -> str:
    if name in target.columns:
        return f"lower({name})"
    if dialect == "postgres":
        return f"lower(doc->>'{name}')"
    return f"lower(json_extract(doc, '$.{name}'))"


def contains(target: SearchTarget, dialect: str, needle: str) -> tuple[str, list[Any]]:
    """SQL: one of the target's fields contains `needle` (already normalised)."""
    parts = [f"{_field_text(target, dialect, name)} LIKE %s ESCAPE '\\'"
             for name in target.fields]
    return f"({' OR '.join(parts)})", [_like(needle)] * len(parts)


def in_cells(column: str, cells: CellSelection) -> tuple[str, list[Any]]:
    """SQL: the row's cell is one of the place's cells."""
    if cells.prefix is not None:
        prefix = cells.prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return (f"({column} = %s OR {column} LIKE %s ESCAPE '\\')",
                [cells.prefix, f"{prefix}{CODE_SEPARATOR}%"])
    if not cells.cells:
        return "1 = 0", []
    codes = sorted(cells.cells)
    return f"{column} IN ({', '.join(['%s'] * len(codes))})", codes


def where(target: SearchTarget, dialect: str, query: SearchQuery, *,
          with_places: bool = True) -> list[tuple[str, list[Any]]]:
    """The SQL conditions of a query on a target (its places only if `with_places` and the
    table has a cell column)."""
    clauses = [contains(target, dialect, word) for word in query.words]
    if with_places and target.cell_column is not None:
        for condition in query.places:
            cell_sql, cell_params = in_cells(target.cell_column, condition.cells)
            text_sql, text_params = contains(target, dialect, condition.form)
            clauses.append((f"({cell_sql} OR {text_sql})", [*cell_params, *text_params]))
    return clauses


def _doc_text(target: SearchTarget, doc: dict[str, Any]) -> str:
    return " ".join(str(doc.get(name) or "").lower() for name in target.fields)


def search(read_models: ReadModels, target: SearchTarget, query: SearchQuery, *,
           filters: dict[str, Any], extra_where: Sequence[tuple[str, Sequence[Any]]],
           limit: int, offset: int,
           locate: Callable[[list[dict[str, Any]]], list[str | None]]) -> Page:
    """One page of the target's rows matching the query (newest first), within the same
    `filters` and `extra_where` as the target's list for the same person. `locate` gives
    the unit grid cells of documents, for a table without a cell column."""
    dialect = read_models.store.dialect
    clauses = [*extra_where, *where(target, dialect, query)]
    if target.cell_column is not None or not query.places:
        return read_models.page(target.table, filters=filters, extra_where=clauses,
                                limit=limit, offset=offset)
    # No cell column (incidents): the words are SQL, the places are tested on the points.
    candidates = read_models.page(target.table, filters=filters, extra_where=clauses,
                                  limit=PLACE_FILTERED_ROWS, offset=0).items
    cells = locate(candidates)
    matched = [doc for doc, cell in zip(candidates, cells, strict=True)
               if all(condition.cells.covers(cell)
                      or condition.form in _doc_text(target, doc)
                      for condition in query.places)]
    return Page(items=matched[offset:offset + limit], total=len(matched))
