"""The small JSON summary every benchmark writes when asked (`--summary PATH`), and the one
table `bench/run-all` prints from them.

A summary is one JSON object: the benchmark's name, its command line, the load average when
it ended, and rows of figures, each row one line of the table:

    {"benchmark": "projection_rebuild.py", "argv": [...], "load_at_end": [1.2, 1.5, 1.7],
     "rows": [{"name": "rebuild, SQLite", "baseline": "raw read 73,699/s",
               "figure": "25,872/s", "ratio": 0.35, "ratio_text": "0.35x",
               "target": ">= 0.5x", "met": false}]}

`ratio` is a number (or null); `met` is true, false or null (no target). Benchmarks call
`add_option(parser)` when they build their parser and `write(args.summary, ...)` at the end
of their main: nothing else of theirs changes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure of CityOps against its baseline(s) and target."""

    name: str
    figure: str
    baseline: str = ""
    ratio: float | None = None
    ratio_text: str = ""
    target: str = ""
    met: bool | None = None


@dataclass
class Summary:
    benchmark: str
    rows: list[Row]
    argv: list[str] = field(default_factory=list)
    load_at_end: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "argv": self.argv, "load_at_end": self.load_at_end,
                "rows": [asdict(row) for row in self.rows]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        return cls(benchmark=str(data["benchmark"]),
                   rows=[Row(**row) for row in data.get("rows", [])],
                   argv=list(data.get("argv", [])),
                   load_at_end=list(data.get("load_at_end", [])))


def add_option(parser: argparse.ArgumentParser) -> None:
    """The common `--summary PATH` option."""
    parser.add_argument("--summary", type=Path, default=None,
                        help="also write a JSON summary of the figures here (bench/run-all)")


def write(path: Path | None, benchmark: str, rows: Iterable[Row]) -> None:
    """Write the summary if a path was given (nothing otherwise)."""
    if path is None:
        return
    summary = Summary(benchmark=benchmark, rows=list(rows), argv=list(sys.argv),
                      load_at_end=[round(v, 2) for v in os.getloadavg()])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.as_dict(), indent=2))


def read(path: Path) -> Summary:
    return Summary.from_dict(json.loads(path.read_text()))


def ratio_text(ratio: float | None) -> str:
    """A ratio as shown: `0.35x`, `4.3x`, `29 %` is the benchmark's own choice (ratio_text)."""
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


def met_text(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


def load_text(samples: Sequence[float]) -> str:
    """The 1-minute load averages sampled during a run: `min-max (mean)`."""
    if not samples:
        return ""
    low, high = min(samples), max(samples)
    mean = sum(samples) / len(samples)
    if high - low < 0.05:
        return f"{mean:.1f}"
    return f"{low:.1f}-{high:.1f} (mean {mean:.1f})"


HEADERS = ("benchmark", "baseline(s)", "CityOps", "ratio", "target", "met?", "load during")


def table(entries: Sequence[tuple[str, Sequence[Row] | str, Sequence[float]]]) -> str:
    """The one table of `bench/run-all`: per benchmark run (its label, its rows or the reason
    it has none, the load averages sampled during it), one line per row."""
    lines: list[tuple[str, ...]] = []
    for label, rows, loads in entries:
        load = load_text(loads)
        if isinstance(rows, str):
            lines.append((label, "", rows, "", "", "", load))
            continue
        for k, row in enumerate(rows):
            name = f"{label}: {row.name}" if row.name else label
            lines.append((name, row.baseline, row.figure,
                          row.ratio_text or ratio_text(row.ratio), row.target,
                          met_text(row.met), load if k == 0 else ""))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(HEADERS)]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(HEADERS), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(line) for line in lines]
    return "\n".join(out)
