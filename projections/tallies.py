"""Tallies: counts of a read-model table's rows by a few of their values, kept in the same
transaction as the rows, so that a figure over the whole history is a sum over a few
hundred tally rows instead of a pass over every row (the key figures took 1.8 s at
1,000,000 grid cases, bench/city_scale.py).

How they stay exact. A batch that writes rows of the source table counts the rows it is
about to replace (grouped as the tally groups them, by their keys only), writes them,
counts them again, and adds the difference to the tally: most writes move a row from one
group to another, or leave it where it was (nothing to write then). A replayed batch writes
the same rows, and the tally comes out the same; a rebuilt generation tallies its own rows.

Instants. A figure that depends on the time it is asked at (a case is red because its
`red_at` is earlier than *now*) cannot be a stored count. A tally therefore groups rows by
the hour of such instants (their first 13 characters, `YYYY-MM-DDTHH`, stored times being
UTC ISO text): for a row whose instants all lie in other hours than now's, the hour tells
whether the instant is before or after now. The rows with an instant in now's hour are
counted from the source table itself, through an index on that instant (made by
`Tally.ddl`), in the same statement. `TallyGroup.when` tells the reader, per instant,
before (-1), at (0) or after (+1) now, exactly either way. Every comparison is the
database's, as in the questions that count the rows themselves.

The questions about a past instant read the history instead (`PastStore`), never a tally.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cityops.domain.errors import InvalidValue
from cityops.storage import Transaction, among

HOUR_TEXT = 13
"""Characters of `YYYY-MM-DDTHH`: the hour an instant is tallied by."""


@dataclass(frozen=True)
class Instant:
    """A time column of the source counted by its hour, where `condition` holds (else the
    tally keeps '' for it: the figures do not look at it)."""

    name: str
    condition: str


@dataclass(frozen=True)
class Tally:
    """Counts of the rows of `source` (those matching `where`) grouped by `groups`, each a
    (name, SQL expression never NULL) pair, and by the hour of each of `instants`; `sums`
    are (name, integer SQL expression) pairs summed per group, the first counting rows."""

    table: str
    source: str
    key: str
    """The source column naming the rows one write replaces (its primary key, or the first
    column of it)."""
    groups: Sequence[tuple[str, str]]
    instants: Sequence[Instant]
    sums: Sequence[tuple[str, str]]
    where: str = "TRUE"

    def __post_init__(self) -> None:
        if not self.sums or self.sums[0][1] != "1":
            raise ValueError(f"{self.table}: the first sum counts the rows ('1')")

    @property
    def _keys(self) -> list[str]:
        return [name for name, _ in self.groups] + [i.name for i in self.instants]

    @property
    def _sum_names(self) -> list[str]:
        return [name for name, _ in self.sums]

    def ddl(self, dialect: str) -> list[str]:
        keys = ", ".join(f"{name} TEXT NOT NULL" for name in self._keys)
        sums = ", ".join(f"{name} BIGINT NOT NULL" for name in self._sum_names)
        statements = [f"CREATE TABLE IF NOT EXISTS {self.table} ({keys}, {sums}, "
                      f"PRIMARY KEY ({', '.join(self._keys)}))"]
        # The rows of now's hour are read from the source through these.
        statements += [f"CREATE INDEX IF NOT EXISTS {self.source}_{i.name}_idx "
                       f"ON {self.source} ({i.name})" for i in self.instants]
        return statements

    def _grouped(self, instants: Sequence[str] | None = None) -> tuple[str, str]:
        """The SELECT of the source rows' groups and sums (its WHERE open for more
        conditions), and the GROUP BY ordinals that end it. The instants are their hours,
        unless `instants` gives other SQL for them."""
        if instants is None:
            instants = [f"CASE WHEN {i.condition} AND {i.name} IS NOT NULL "
                        f"THEN substr({i.name}, 1, {HOUR_TEXT}) ELSE '' END"
                        for i in self.instants]
        sums = ", ".join(f"SUM({sql})" for _, sql in self.sums)
        ordinals = ", ".join(str(n) for n in range(1, len(self._keys) + 1))
        columns = ", ".join([*(sql for _, sql in self.groups), *instants])
        return (f"SELECT {columns}, {sums} FROM {self.source} WHERE ({self.where})",
                ordinals)

    def _counts(self, txn: Transaction, keys: Sequence[str]) -> dict[tuple[Any, ...], list[int]]:
        """The sums of the source rows named by `keys`, by tally group."""
        select, ordinals = self._grouped()
        named, param = among(txn, self.key, keys)
        txn.execute(f"{select} AND {named} GROUP BY {ordinals}", [param])
        width = len(self._keys)
        return {tuple(row[:width]): [int(v or 0) for v in row[width:]]
                for row in txn.fetchall()}

    def before_write(self, txn: Transaction, keys: Sequence[str]) -> TallyChange:
        """Count the source rows named by `keys` as they are before being replaced."""
        return TallyChange(self, keys, self._counts(txn, keys) if keys else {})

    def _apply(self, txn: Transaction, change: dict[tuple[Any, ...], list[int]]) -> None:
        names = self._keys + self._sum_names
        updates = ", ".join(f"{n} = {self.table}.{n} + excluded.{n}" for n in self._sum_names)
        txn.executemany(
            f"INSERT INTO {self.table} ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))}) "
            f"ON CONFLICT ({', '.join(self._keys)}) DO UPDATE SET {updates}",
            [[*group, *sums] for group, sums in change.items()])
        if any(sums[0] < 0 for sums in change.values()):
            # Groups left with no row are forgotten (a small table; the question reads all).
            txn.execute(f"DELETE FROM {self.table} WHERE {self._sum_names[0]} = 0")

    def total(self, txn: Transaction) -> int:
        """How many source rows the tally counts (all of them when `where` is TRUE)."""
        txn.execute(f"SELECT COALESCE(SUM({self._sum_names[0]}), 0) FROM {self.table}")
        row = txn.fetchone()
        return int(row[0]) if row else 0

    def recount(self, txn: Transaction) -> None:
        """Count the whole source table again (after rows were written some other way)."""
        select, ordinals = self._grouped()
        txn.execute(f"DELETE FROM {self.table}")
        txn.execute(f"INSERT INTO {self.table} ({', '.join(self._keys + self._sum_names)}) "
                    f"{select} GROUP BY {ordinals}")

    def _folded(self, now: str, *, grouped: bool = True) -> tuple[str, list[Any]]:
        """The SELECT of the groups as of `now` (UTC ISO text), and its parameters. One
        statement (one snapshot of the tally and of the rows it counts): the tally's groups
        away from now's hour, their hours folded into before/after now (a few groups left of
        one per hour of open deadlines), and the source rows with an instant in now's hour,
        compared with now itself. Its columns are named as the groups, the instants (their
        relation to now: -1 before, 0 at, +1 after, NULL none) and the sums. Not `grouped`:
        a row per tally row and source row (for a question that sums them anyway)."""
        hour = now[:HOUR_TEXT]
        ordinals = ", ".join(str(n) for n in range(1, len(self._keys) + 1))
        relations = [f"CASE WHEN {i.name} = '' THEN NULL WHEN {i.name} < %s THEN -1 ELSE 1 "
                     f"END AS {i.name}" for i in self.instants]
        away = " AND ".join([f"{i.name} <> %s" for i in self.instants] or ["TRUE"])
        if grouped:
            sums = ", ".join(f"SUM({name}) AS {name}" for name in self._sum_names)
            sql = (f"SELECT {', '.join([name for name, _ in self.groups] + relations)}, "
                   f"{sums} FROM {self.table} WHERE {away} GROUP BY {ordinals}")
        else:
            sql = (f"SELECT {', '.join([name for name, _ in self.groups] + relations)}, "
                   f"{', '.join(self._sum_names)} FROM {self.table} WHERE {away}")
        params: list[Any] = [hour] * (2 * len(self.instants))
        if self.instants:
            exact = [f"CASE WHEN {i.condition} AND {i.name} IS NOT NULL THEN CASE WHEN "
                     f"{i.name} < %s THEN -1 WHEN {i.name} > %s THEN 1 ELSE 0 END END"
                     for i in self.instants]
            near = " OR ".join(f"({i.condition} AND {i.name} >= %s AND {i.name} < %s)"
                               for i in self.instants)
            if grouped:
                select, ordinals = self._grouped(exact)
                sql += f" UNION ALL {select} AND ({near}) GROUP BY {ordinals}"
            else:
                columns = ", ".join([*(sql for _, sql in self.groups), *exact,
                                     *(sql for _, sql in self.sums)])
                sql += (f" UNION ALL SELECT {columns} FROM {self.source} "
                        f"WHERE ({self.where}) AND ({near})")
            params += [now, now] * len(self.instants)
            params += [hour, _next_hour(now)] * len(self.instants)
        return sql, params

    def read(self, txn: Transaction, now: str) -> list[TallyGroup]:
        """The groups as of `now` (UTC ISO text), each instant before, at or after it."""
        sql, params = self._folded(now)
        txn.execute(sql, params)
        return [TallyGroup.of(self, row) for row in txn.fetchall()]

    def summed(self, txn: Transaction, now: str, figures: Sequence[str],
               by: Sequence[str] = ()) -> dict[tuple[str, ...], list[int]]:
        """`figures`, integer SQL over a group as of `now` (its values, its instants'
        relations to now and its sums, each by its name), summed in the database over the
        groups with the same values of the groups `by` (over all of them when `by` is
        empty). A question gets a row per key it asks about, however many groups the tally
        holds: in a city of few cases a group per open case and cell."""
        unknown = set(by) - {name for name, _ in self.groups}
        if unknown:
            raise ValueError(f"{self.table} has no group {', '.join(sorted(unknown))}")
        folded, params = self._folded(now, grouped=False)
        columns = ", ".join([*by, *(f"SUM({figure})" for figure in figures)])
        grouped = f" GROUP BY {', '.join(by)}" if by else ""
        txn.execute(f"SELECT {columns} FROM ({folded}) AS folded{grouped}", params)
        width = len(by)
        return {tuple(str(value) for value in row[:width]): [int(v or 0) for v in row[width:]]
                for row in txn.fetchall()}


@dataclass(frozen=True)
class TallyChange:
    """A write of source rows under way: their counts before it, taken from the tally after
    it by the difference (most writes move a few rows between groups, or none)."""

    tally: Tally
    keys: Sequence[str]
    before: dict[tuple[Any, ...], list[int]]

    def after_write(self, txn: Transaction) -> None:
        """Count the rows again as written, and apply the difference to the tally."""
        if not self.keys:
            return
        after = self.tally._counts(txn, self.keys)
        change: dict[tuple[Any, ...], list[int]] = {}
        width = len(self.tally.sums)
        for group in self.before.keys() | after.keys():
            old = self.before.get(group, [0] * width)
            new = after.get(group, [0] * width)
            sums = [b - a for a, b in zip(old, new, strict=True)]
            if any(sums):
                change[group] = sums
        if change:
            self.tally._apply(txn, change)


@dataclass(frozen=True)
class TallyGroup:
    """One group of a tally: its values, where each instant stands against now (-1 before,
    0 at, +1 after, None: no instant), and its sums."""

    values: dict[str, str]
    when: dict[str, int | None]
    sums: dict[str, int]

    @classmethod
    def of(cls, tally: Tally, row: Sequence[Any]) -> TallyGroup:
        """A row of `Tally.read`: the groups' values, the instants' relations, the sums."""
        groups, keys = len(tally.groups), len(tally._keys)
        return cls(
            values={name: str(value) for (name, _), value in zip(tally.groups, row[:groups],
                                                                  strict=True)},
            when={i.name: None if value is None else int(value)
                  for i, value in zip(tally.instants, row[groups:keys], strict=True)},
            sums={name: int(value or 0)
                  for name, value in zip(tally._sum_names, row[keys:], strict=True)},
        )

    @property
    def rows(self) -> int:
        return next(iter(self.sums.values()))


@contextmanager
def kept(txn: Transaction, tallies: Sequence[Tally], keys: Sequence[str]) -> Iterator[None]:
    """Keep `tallies` with a write of the source rows named by `keys` (the `with` block):
    counted before it and after it, the difference written."""
    changes = [tally.before_write(txn, keys) for tally in tallies]
    yield
    for change in changes:
        change.after_write(txn)


def _next_hour(now: str) -> str:
    try:
        hour = datetime.fromisoformat(now[:HOUR_TEXT] + ":00:00+00:00")
    except ValueError as error:
        raise InvalidValue(f"{now!r} is not an instant in UTC ISO text") from error
    return (hour + timedelta(hours=1)).isoformat()[:HOUR_TEXT]
