"""The pages work with no internet: every vendored library file is exactly the one
dev/vendor-frontend fetched and checked (its sha256 in packages.json), nothing unlisted sits in
vendor/, and no page, script or style of our own points outside the app (the one external
address the dashboard may use is the optional tile server, which comes from the settings)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "command-center" / "static"
VENDOR = STATIC / "vendor"
MANIFEST = json.loads((VENDOR / "packages.json").read_text())
OWN_FILES = sorted(
    path for path in STATIC.rglob("*")
    if path.is_file() and VENDOR not in path.parents and path.suffix in {".html", ".js", ".css"}
)
EXTERNAL_URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[/:"'\s)]""", re.IGNORECASE)
IMPORT = re.compile(r"""(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']""")
HTML_REFERENCE = re.compile(r"""\s(?:src|href)=["']([^"']+)["']""")


@pytest.mark.parametrize("target", sorted(MANIFEST["sha256"]))
def test_each_vendored_file_is_the_one_that_was_checked(target: str) -> None:
    path = VENDOR / target
    assert path.is_file(), f"vendor/{target} is listed in packages.json but missing"
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert actual == MANIFEST["sha256"][target], (
        f"vendor/{target} differs from what dev/vendor-frontend fetched (sha256 {actual}); "
        "re-run dev/vendor-frontend instead of editing vendored files")


def test_every_package_file_has_a_checksum_and_nothing_else_is_vendored() -> None:
    listed = {target for spec in MANIFEST["packages"].values() for target in spec["files"].values()}
    assert listed == set(MANIFEST["sha256"]), "packages.json files and sha256 disagree"
    present = {
        path.relative_to(VENDOR).as_posix() for path in VENDOR.rglob("*")
        if path.is_file() and path.name != "packages.json"
    }
    assert present == listed, f"unlisted files in vendor/: {sorted(present - listed)}"


def test_pinned_packages_carry_sha512_integrity() -> None:
    for name, spec in MANIFEST["packages"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", spec["version"]), f"{name}: pin an exact version"
        assert spec["integrity"].startswith("sha512-"), f"{name}: integrity must be sha512"


def test_there_are_pages_to_check() -> None:
    names = {path.relative_to(STATIC).as_posix() for path in OWN_FILES}
    assert {"dashboard.html", "login.html", "common/api.js", "common/live.js"} <= names


@pytest.mark.parametrize("path", OWN_FILES, ids=lambda p: p.relative_to(STATIC).as_posix())
def test_no_page_or_script_points_outside_the_app(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = EXTERNAL_URL.findall(text)
    assert not found, f"{path.name} refers to another site: {found}"


@pytest.mark.parametrize("path", [p for p in OWN_FILES if p.suffix == ".html"],
                         ids=lambda p: p.relative_to(STATIC).as_posix())
def test_pages_load_only_files_the_app_serves(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "<script>" not in text and " onclick=" not in text, (
        f"{path.name}: inline script is refused by the pages' Content-Security-Policy")
    for reference in HTML_REFERENCE.findall(text):
        if reference.startswith(("data:", "#")):
            continue  # inline, nothing is fetched
        assert reference.startswith("/static/"), f"{path.name} loads {reference}"
        assert (STATIC / reference.removeprefix("/static/")).is_file(), (
            f"{path.name} loads {reference}, which is not in static/")


@pytest.mark.parametrize("path", [p for p in OWN_FILES if p.suffix == ".js"],
                         ids=lambda p: p.relative_to(STATIC).as_posix())
def test_module_imports_resolve_to_served_files(path: Path) -> None:
    for specifier in IMPORT.findall(path.read_text(encoding="utf-8")):
        if specifier.startswith("/static/"):
            target = STATIC / specifier.removeprefix("/static/")
        else:
            assert specifier.startswith("."), (
                f"{path.name} imports {specifier!r}: only app paths, no bare package names "
                "(there is no build step)")
            target = (path.parent / specifier).resolve()
        assert target.is_file(), f"{path.name} imports {specifier}, which does not exist"
