"""One clock: no server code reads the wall clock but `cityops.domain.clock`, and the few
places that keep real time on purpose say so (each listed here with its reason). The pages
count time from the server's clock, never from the browser's alone.

Reading `datetime.now()` somewhere new is how the subscriptions came to be stamped with the
wall clock while the events carried the demo's clock, so that no webhook was ever delivered:
this scan fails on the next one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = ("app", "domain", "projections", "ingest", "feeds", "command-center", "maps")
CLOCK_MODULE = "domain/clock.py"

WALL_CLOCK_READS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "time_ns"), ("time", "localtime"), ("time", "gmtime"),
    ("time", "ctime"), ("time", "asctime"), ("time", "strftime"),
}
"""`module_or_class.name` references that read the wall clock (called or passed on)."""

REAL_TIME_ON_PURPOSE = {
    # The clock's defaults: components built outside the composition root (tests, the CLI,
    # a sending system) get real time; build_system hands every one the system's clock.
    "app/bootstrap.py": "build_system's default clock (production: real time)",
    "app/backup_cli.py": "an archive is stamped with the real time the operator made it",
    "domain/application.py": "re-exports the clock as the applications' default",
    "domain/accounts/application.py": "identity is administered in real time, also in a drill",
    "domain/gridcases/application.py": "default of the application's clock parameter",
    "domain/hazards/application.py": "default of the application's clock parameter",
    "domain/hotline/application.py": "default of the application's clock parameter",
    "domain/incidents/application.py": "default of the application's clock parameter",
    "domain/resources/application.py": "default of the application's clock parameter",
    "feeds/subscriptions.py": "default of the application's clock parameter",
    "projections/photos.py": "default of the photo store's clock parameter",
    "projections/follower.py": "an application without a clock of its own",
    "app/simulator.py": "the simulated day starts from real time",
    "app/exercises_cli.py": "an exercise played from the command line starts from real time",
    "ingest/messages.py": "a sending system's own clock when it gives no time",
    # Real time by design, whatever clock the city runs on.
    "command-center/auth.py": "login tokens expire after a real shift",
    "command-center/live.py": "presence expires after real seconds without a ping",
    "projections/live_changes.py": "retention: the real minutes a client may be away",
    "projections/generations.py": "an operator's rebuild stamps and grace period",
    "feeds/service.py": "webhook transport: retry/lease timers, signatures checked by "
                        "receivers against their own clocks",
    "feeds/webhooks.py": "webhook transport (as feeds/service.py)",
    "feeds/kafka_feed.py": "when the feed committed its positions (an operator's record)",
    "feeds/cap_publishing.py": "when a CAP alert's row was written (monitoring, the "
                               "benchmark); what an alert says is the warning's own time",
    "ingest/pipeline.py": "dead letters: the operators' log",
    "ingest/replay.py": "the operators' ledger of replays",
    "ingest/counters.py": "an operator's gauge",
}
"""Modules that name `system_clock` / `real_seconds` (real time) and why."""

REAL_TIME_NAMES = {"system_clock", "real_seconds"}


def _server_modules() -> list[Path]:
    return sorted(p for package in SERVER_PACKAGES for p in (ROOT / package).rglob("*.py"))


def _wall_clock_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = (owner.id if isinstance(owner, ast.Name)
                    else owner.attr if isinstance(owner, ast.Attribute) else None)
            if (name, node.attr) in WALL_CLOCK_READS:
                found.append(f"line {node.lineno}: {name}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            for alias in node.names:
                if (node.module, alias.name) in WALL_CLOCK_READS:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    return found


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    offenders = {}
    for path in _server_modules():
        relative = path.relative_to(ROOT).as_posix()
        if relative == CLOCK_MODULE:
            continue
        reads = _wall_clock_reads(path)
        if reads:
            offenders[relative] = reads
    assert not offenders, (
        "read the system's clock (injected from cityops.bootstrap) instead of the wall "
        f"clock: {offenders}")


def test_the_scan_sees_a_wall_clock_read(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import time\nfrom datetime import UTC, datetime\n"
                      "a = datetime.now(UTC)\nb = time.time\nc = datetime.datetime.utcnow()\n"
                      "from time import time_ns\n")
    assert len(_wall_clock_reads(module)) == 4
    assert _wall_clock_reads(ROOT / CLOCK_MODULE), "the clock module itself reads it"


def test_real_time_is_taken_on_purpose_only_where_listed() -> None:
    users = set()
    for path in _server_modules():
        relative = path.relative_to(ROOT).as_posix()
        if relative == CLOCK_MODULE:
            continue
        tree = ast.parse(path.read_text())
        if any((isinstance(node, ast.Name) and node.id in REAL_TIME_NAMES)
               or (isinstance(node, ast.alias) and node.name in REAL_TIME_NAMES)
               for node in ast.walk(tree)):
            users.add(relative)
    unexplained = sorted(users - set(REAL_TIME_ON_PURPOSE))
    assert not unexplained, (
        f"real time taken where the system's clock is expected: {unexplained} (inject the "
        "system's clock, or list the module here with the reason it keeps real time)")
    stale = sorted(set(REAL_TIME_ON_PURPOSE) - users)
    assert not stale, f"listed but no longer taking real time: {stale}"


STATIC = ROOT / "command-center" / "static"
PAGE_CLOCK = "common/clock.js"
BROWSER_TIME_ON_PURPOSE = {
    "common/api.js": "the login token's expiry is real time (the server's tokens are)",
}
BROWSER_NOW = re.compile(r"Date\.now\(\)|new Date\(\s*\)")


def test_the_pages_count_time_from_the_server_clock() -> None:
    offenders = {}
    for path in sorted(STATIC.rglob("*.js")):
        relative = path.relative_to(STATIC).as_posix()
        if relative.startswith("vendor/") or relative == PAGE_CLOCK:
            continue
        lines = [f"{number}: {line.strip()}"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if BROWSER_NOW.search(line)]
        if lines and relative not in BROWSER_TIME_ON_PURPOSE:
            offenders[relative] = lines
    assert not offenders, f"use serverNow() of {PAGE_CLOCK}, not the browser's clock: {offenders}"
    assert BROWSER_NOW.search((STATIC / PAGE_CLOCK).read_text())
