"""`cityops scenarios validate` prints every problem of a refused file as FILE:LINE: message
and exits non-zero; `cityops scenarios run` plays a scenario in an empty folder of its own
(never in a folder that holds data) and prints its injects and objectives."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityops.cli import app
from cityops.exercises import shipped_scenarios


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name, text in shipped_scenarios().items():
        found[name] = tmp_path / name
        found[name].write_text(text, encoding="utf-8")
    broken = shipped_scenarios()["chemical-leak.yaml"]
    broken = broken.replace("resource: FE-03", "resource: FE-99").replace(
        "at: 20m", "at: 1m")
    found["broken"] = tmp_path / "broken.yaml"
    found["broken"].write_text(broken, encoding="utf-8")
    found["not-yaml"] = tmp_path / "not-yaml.yaml"
    found["not-yaml"].write_text("version: 1\ntitle: [unclosed\n", encoding="utf-8")
    return found


def test_validate_prints_each_problem_by_line_and_fails(files: dict[str, Path]) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["scenarios", "validate", str(files["typhoon.yaml"]),
                               str(files["chemical-leak.yaml"])])
    assert good.exit_code == 0, good.output
    assert "typhoon.yaml: valid: 'Typhoon Haikui makes landfall', 7 injects" in good.output
    bad = runner.invoke(app, ["scenarios", "validate", str(files["typhoon.yaml"]),
                              str(files["broken"]), str(files["not-yaml"])])
    assert bad.exit_code == 1
    lines = files["broken"].read_text().splitlines()
    resource_line = lines.index("    resource: FE-99") + 1
    order_line = lines.index("    at: 1m") + 1
    assert f"{files['broken']}:{resource_line}: unknown resource 'FE-99'" in bad.output
    assert f"{files['broken']}:{order_line}: inject 'dry-hydrant' at 0:01:00 is out of " \
           "order" in bad.output
    assert f"{files['broken']}: refused, 2 problems" in bad.output
    assert f"{files['not-yaml']}:3: not valid YAML" in bad.output
    assert "typhoon.yaml: valid" in bad.output


def test_run_plays_a_scenario_in_a_folder_of_its_own(files: dict[str, Path],
                                                     tmp_path: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "exercise"
    played = runner.invoke(app, ["scenarios", "run", str(files["chemical-leak.yaml"]),
                                 "--data-dir", str(folder)])
    assert played.exit_code == 0, played.output
    assert "+0:03:00 inject gas-alarm applied" in played.output
    assert "+0:20:00 inject dry-hydrant applied" in played.output
    assert "verify-leak" in played.output and "missed" in played.output
    assert (folder / "exercises.sqlite").exists()
    # A folder that holds data is never played into.
    again = runner.invoke(app, ["scenarios", "run", str(files["typhoon.yaml"]),
                                "--data-dir", str(folder)])
    assert again.exit_code == 2
    assert "is not empty" in again.output
    refused = runner.invoke(app, ["scenarios", "run", str(files["broken"]),
                                  "--data-dir", str(tmp_path / "other")])
    assert refused.exit_code == 1
    assert not (tmp_path / "other" / "exercises.sqlite").exists()
    on_history = tmp_path / "on-history.yaml"
    on_history.write_text(files["typhoon.yaml"].read_text().replace(
        "start: empty", "start: {replay: {from: 2026-06-01T08:00:00+08:00, "
                        "to: 2026-06-01T12:00:00+08:00}}"), encoding="utf-8")
    replayed = runner.invoke(app, ["scenarios", "run", str(on_history),
                                   "--data-dir", str(tmp_path / "third")])
    assert replayed.exit_code == 2 and "start a drill with it" in replayed.output
