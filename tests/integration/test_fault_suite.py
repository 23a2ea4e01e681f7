"""The fault suite's quick mode (bench/fault_suite.py --quick) as CI runs it: the production
shape (two ingest workers, the projection process, two API servers, the feed publisher) under
a small steady load; SIGKILL of an ingest worker, SIGKILL of the projection process and an
event store that refuses writes for a while. After each, with no human action, every
acknowledged input is in the store exactly once and the read models equal a fresh rebuild.

The suite starts a PostgreSQL cluster of its own (the read-only simulation revokes the app
role's write privileges, and six processes need more connections than the shared test
server allows) and uses the test broker with topics, group and feed prefix of its own.
The full suite (broker and PostgreSQL restarts, every process kind) is a bench command:
`python bench/fault_suite.py` (bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REPO = Path(__file__).resolve().parents[2]


def test_the_quick_fault_suite_loses_and_duplicates_nothing(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    results_file = tmp_path / "faults.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fault_suite.py"), "--quick",
         "--kafka-bootstrap", kafka_bootstrap, "--json", str(results_file)],
        capture_output=True, text=True, timeout=900, check=False)
    output = done.stdout[-6000:] + done.stderr[-4000:]
    assert done.returncode == 0, output
    report = json.loads(results_file.read_text())
    results = {r["fault"]: r for r in report["results"]}
    assert list(results) == ["kill-ingest", "kill-projections", "store-read-only"], output
    for fault, result in results.items():
        assert result["ok"], f"{fault}: {result['detail']}\n{output}"
        assert result["recovery_s"] is not None, output
        checks = result["checks"]
        # The checks ran on real data: inputs acknowledged, read models non-empty.
        assert checks["acknowledged"] > 0 and checks["receipts"] >= checks["acknowledged"]
        assert checks["read_model_rows"] > 0 and checks["feed_events"] > 0
        assert not [k for k in checks if k.startswith("problem")], checks
