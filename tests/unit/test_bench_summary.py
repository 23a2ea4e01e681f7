"""bench/summary.py: the JSON summaries benchmarks write and the one table bench/run-all
prints from them (benchmarks are never tests; this is only the table's formatting)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_summary", BENCH / "summary.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_summary"] = module
    spec.loader.exec_module(module)
    return module


summary = load_summary()


def test_a_summary_round_trips_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "s.json"
    rows = [summary.Row(name="rebuild, SQLite", figure="25,872 events/s",
                        baseline="raw read 73,699/s", ratio=0.351, target=">= 0.5x", met=False)]
    summary.write(path, "projection_rebuild.py", rows)
    read = summary.read(path)
    assert read.benchmark == "projection_rebuild.py"
    assert read.rows == rows
    assert len(read.load_at_end) == 3


def test_no_path_writes_nothing(tmp_path: Path) -> None:
    summary.write(None, "x.py", [summary.Row(name="a", figure="1")])
    assert list(tmp_path.iterdir()) == []


def test_the_table_has_one_line_per_row_and_the_load_on_the_first() -> None:
    entries = [
        ("projection_rebuild", [
            summary.Row(name="rebuild, SQLite", figure="25,872/s", baseline="raw 73,699/s",
                        ratio=0.351, target=">= 0.5x", met=False),
            summary.Row(name="rebuild, PG", figure="40,000/s", baseline="raw 73,087/s",
                        ratio=0.547, target=">= 0.5x", met=True),
        ], [3.0, 5.0, 4.0]),
        ("ingest reports", [summary.Row(name="", figure="3,106 msg/s",
                                        ratio_text="29 % of 1/txn")], [2.0, 2.0]),
        ("fault_suite", "failed (exit 1): see x.log", [7.25]),
    ]
    lines = summary.table(entries).splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == list(summary.HEADERS)
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
    assert cells == [
        ["projection_rebuild: rebuild, SQLite", "raw 73,699/s", "25,872/s", "0.35x",
         ">= 0.5x", "NO", "3.0-5.0 (mean 4.0)"],
        ["projection_rebuild: rebuild, PG", "raw 73,087/s", "40,000/s", "0.55x", ">= 0.5x",
         "yes", ""],
        ["ingest reports", "", "3,106 msg/s", "29 % of 1/txn", "", "", "2.0"],
        ["fault_suite", "", "failed (exit 1): see x.log", "", "", "", "7.2"],
    ]
    # Every line is as wide as the header (the columns line up).
    assert len({len(line) for line in lines}) == 1


def test_ratios_and_loads_are_shown_briefly() -> None:
    assert summary.ratio_text(None) == ""
    assert summary.ratio_text(4.31) == "4.31x"
    assert summary.ratio_text(3587.2) == "3,587x"
    assert summary.load_text([]) == ""
    assert summary.met_text(None) == "" and summary.met_text(True) == "yes"
