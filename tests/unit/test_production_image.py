"""The production image and its compose file, checked without a Docker engine: the image's
install step is run on exactly the files the Dockerfile copies (as `.dockerignore` lets them
into the build context), and every compose service's command is checked against the
`cityops` command line. A new package or command can then never leave production behind."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from cityops.cli import app as cityops_app
from cityops.settings import env_names

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


# --- the Dockerfile -----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped), each
    with the number of the build stage it belongs to (0 is the first FROM)."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, arguments.strip()))
    return instructions


def _words(arguments: str) -> list[str]:
    """An instruction's arguments, in exec (JSON) form or shell form."""
    if arguments.startswith("["):
        words: list[str] = json.loads(arguments)
        return words
    return shlex.split(arguments)


def copied_sources(instructions: list[Instruction]) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context (not `--from` a stage)."""
    pairs = []
    for instruction in instructions:
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        words = _words(instruction.arguments)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        *sources, destination = words
        pairs += [(source, destination) for source in sources]
    return pairs


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A `.dockerignore` pattern (Go's filepath.Match plus `**`) as a regular expression."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(excluding, pattern) in order; the last rule that matches a path decides."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((not keep, _pattern_regex(pattern)))
    return rules


def in_build_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether `.dockerignore` lets the file into the build context (a rule matching one of
    its parent folders matches the file too)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for excluding, pattern in rules:
        if any(pattern.match(candidate) for candidate in candidates):
            excluded = excluding
    return not excluded


def build_stage_tree(target: Path) -> list[str]:
    """Copy into `target` exactly what the build stage's COPY lines copy from the build
    context; the paths copied (relative to `target`)."""
    instructions = dockerfile_instructions((REPO / "Dockerfile").read_text())
    rules = dockerignore_rules((REPO / ".dockerignore").read_text())
    copied = []
    build_stage = 0
    for source, destination in copied_sources(
            [i for i in instructions if i.stage == build_stage]):
        origin = REPO / source
        assert origin.exists(), f"the Dockerfile copies {source}, which does not exist"
        files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*")
                                                          if p.is_file())
        for path in files:
            relative = path.relative_to(REPO).as_posix()
            if not in_build_context(relative, rules):
                continue
            if origin.is_file():
                into = destination.rstrip("/") + "/" + path.name if destination.endswith(
                    "/") else destination
            else:
                into = destination.rstrip("/") + "/" + path.relative_to(origin).as_posix()
            landed = target / os.path.normpath(into).lstrip("/")
            landed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, landed)
            copied.append(landed.relative_to(target).as_posix())
    return copied


def test_the_dockerignore_reading_follows_dockers_rules() -> None:
    rules = dockerignore_rules("*\n!app/\n**/__pycache__\n**/*.py[cod]\n")
    assert in_build_context("app/cli.py", rules)
    assert in_build_context("app/demo/city.json", rules)
    assert not in_build_context("app/__pycache__/cli.cpython-311.pyc", rules)
    assert not in_build_context("app/cli.pyc", rules)
    assert not in_build_context("tests/unit/test_x.py", rules)
    assert not in_build_context("feeds/cli.py", rules)


def test_the_build_stage_copies_every_folder_that_pyproject_maps_a_package_onto() -> None:
    instructions = dockerfile_instructions((REPO / "Dockerfile").read_text())
    copied = {os.path.normpath(s) for s, _ in copied_sources(
        [i for i in instructions if i.stage == 0])}
    folders = set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
    assert not folders - copied, (
        f"the Dockerfile's build stage does not copy {sorted(folders - copied)}, which "
        "pyproject.toml maps packages onto: `pip install .` in the image would fail")
    rules = dockerignore_rules((REPO / ".dockerignore").read_text())
    shut_out = sorted(f for f in folders if not in_build_context(f"{f}/__init__.py", rules))
    assert not shut_out, f".dockerignore keeps {shut_out} out of the build context"


def test_the_images_install_step_succeeds_on_exactly_the_files_the_dockerfile_copies(
        tmp_path: Path) -> None:
    instructions = dockerfile_instructions((REPO / "Dockerfile").read_text())
    build = [i for i in instructions if i.stage == 0]
    workdir = next(i.arguments for i in build if i.keyword == "WORKDIR")
    installs = [i.arguments for i in build if i.keyword == "RUN" and "pip install" in i.arguments]
    assert len(installs) == 1, installs
    # The image installs the source folder itself (with its dependencies, from the index).
    assert installs[0].split()[-1] == ".", installs[0]
    source = tmp_path / workdir.lstrip("/")
    build_stage_tree(source)
    target = tmp_path / "installed"
    # The same installation, offline: no dependencies (they are this environment's), and
    # the build backend of this environment instead of an isolated, downloaded one.
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--no-compile", "--target", str(target), "."],
        cwd=source, capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    setuptools = PYPROJECT["tool"]["setuptools"]
    for package in setuptools["packages"]:
        init = target.joinpath(*package.split("."), "__init__.py")
        assert init.is_file(), f"package {package} is missing from the installed image"
    for package, patterns in setuptools["package-data"].items():
        folder = target.joinpath(*package.split("."))
        for pattern in patterns:
            assert any(p.is_file() or any(f.is_file() for f in p.rglob("*"))
                       for p in folder.glob(pattern)), (
                f"no file of {package} matches its package data {pattern!r}")

    # The installed copy, not this checkout, answers the image's commands.
    env = {**os.environ, "PYTHONPATH": str(target)}
    ran = subprocess.run(
        [sys.executable, "-c", "import cityops, cityops.cli as cli, sys; "
         "print(cityops.__file__); sys.argv = ['cityops', '--help']; cli.main()"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines()[0].startswith(str(target)), ran.stdout
    for command in ("serve", "ingest", "projections", "feeds", "users"):
        assert command in ran.stdout


# --- docker-compose.yml -----------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def cityops_services() -> dict[str, dict[str, Any]]:
    """The services run from the CityOps image."""
    return {name: service for name, service in compose()["services"].items()
            if "build" in service or str(service.get("image", "")).startswith("cityops")}


def _is_group(command: Any) -> bool:
    """A command with sub-commands (newer typer versions have groups of their own that are
    not click's `Group` class)."""
    return hasattr(command, "list_commands") and hasattr(command, "get_command")


def resolve_command(words: list[str]) -> tuple[click.Command, list[str]]:
    """The `cityops` command that `words` name, and the words left for it (its options
    and arguments); fails if a command of the path does not exist."""
    command: click.Command = typer.main.get_command(cityops_app)
    path = list(words)
    context = click.Context(command)
    while _is_group(command) and path and not path[0].startswith("-"):
        found = command.get_command(context, path[0])
        assert found is not None, f"`cityops {' '.join(words)}`: no command {path[0]!r}"
        command, path = found, path[1:]
        context = click.Context(command, parent=context)
    assert not _is_group(command), f"`cityops {' '.join(words)}` is a group"
    return command, path


def test_compose_runs_the_cityops_image_for_each_process() -> None:
    services = cityops_services()
    assert set(services) >= {"api", "ingest", "projections", "feeds"}
    instructions = dockerfile_instructions((REPO / "Dockerfile").read_text())
    final = [i for i in instructions if i.stage == max(i.stage for i in instructions)]
    entrypoint = next(_words(i.arguments) for i in final if i.keyword == "ENTRYPOINT")
    assert entrypoint == ["cityops"]
    default = next(_words(i.arguments) for i in final if i.keyword == "CMD")
    resolve_command(default)


@pytest.mark.parametrize("name", sorted(cityops_services()))
def test_each_compose_services_command_exists_with_its_options(name: str) -> None:
    words = [str(w) for w in cityops_services()[name]["command"]]
    command, rest = resolve_command(words)
    known = {option for parameter in command.params for option in parameter.opts}
    for word in rest:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in known, (
                f"`cityops {' '.join(words)}`: no option {word}; options: {sorted(known)}")
    helped = CliRunner().invoke(cityops_app, [*words[:len(words) - len(rest)], "--help"])
    assert helped.exit_code == 0, helped.output


def test_compose_dependencies_and_healthchecks_refer_to_real_services() -> None:
    services = compose()["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        if check is not None:
            test = check["test"]
            assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") \
                and len(test) > 1, (name, test)
        for other, condition in (service.get("depends_on") or {}).items():
            assert other in services, f"{name} depends on {other}, which is no service"
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[other], (
                    f"{name} waits for {other} to be healthy, but {other} has no healthcheck")


def test_compose_sets_only_settings_that_exist() -> None:
    known = env_names()
    for name, service in cityops_services().items():
        unknown = sorted(k for k in service["environment"] if k.startswith("CITYOPS_")
                         and k not in known)
        assert not unknown, f"{name} sets settings that do not exist: {unknown}"
