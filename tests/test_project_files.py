"""What a user checks first: the licence, the package metadata, the pinned sets, the hooks, the schema."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from handler import __version__
from handler.openapi import render, schema

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(name: str) -> dict[str, str]:
    """name -> pinned version of a requirements file, following its `-r` includes."""
    found: dict[str, str] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(line[3:].strip()))
        elif line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier or [None]
            if spec is not None and spec.operator == "==":
                found[requirement.name.lower()] = spec.version
    return found


def declared(requirements: list[str]) -> dict[str, Requirement]:
    return {Requirement(r).name.lower(): Requirement(r) for r in requirements}


def test_the_licence_is_apache_2_and_the_metadata_says_so() -> None:
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    assert "Version 2.0" in (ROOT / "LICENSE").read_text()[:200]
    assert PYPROJECT["project"]["license"] == "Apache-2.0"


@pytest.mark.parametrize(
    ("requirements_file", "sections", "includes"),
    [
        ("requirements-runtime.txt", (), None),
        ("requirements.txt", ("torch", "serve"), "requirements-runtime.txt"),
        ("requirements-build.txt", ("build",), "requirements.txt"),
        ("requirements-tools.txt", ("tools",), "requirements-build.txt"),
    ],
)
def test_pyproject_and_the_pinned_sets_name_the_same_packages_and_agree(
    requirements_file: str, sections: tuple[str, ...], includes: str | None
) -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    ranges = declared(
        [r for section in sections for r in extras[section]]
        if sections
        else PYPROJECT["project"]["dependencies"]
    )
    pinned = pins(requirements_file)
    own = pinned if includes is None else {k: v for k, v in pinned.items() if k not in pins(includes)}
    assert set(own) == set(ranges), "pyproject.toml and the requirements file list different packages"
    for name, version in own.items():
        assert ranges[name].specifier.contains(version), f"{name}=={version} is outside {ranges[name]}"


def test_the_package_version_is_the_projects_and_it_ships_its_type_marker() -> None:
    assert PYPROJECT["project"]["version"] == __version__
    assert (ROOT / "handler" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["handler"]
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"


def test_the_changelog_has_an_unreleased_section_and_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M)


def make_test_commands() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    body = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in body.splitlines()[1:] if line.startswith("\t")]


def tool_of(command: str) -> str:
    """`$(PY) -m ruff check handler tests` -> `ruff check`; `.venv/bin/cfn-lint x.yaml` -> `cfn-lint`."""
    words = shlex.split(command.replace("$(VENV)/bin/", "").replace(".venv/bin/", ""))
    words = [w for w in words if w not in ("$(PY)", "python", "-m")]
    return " ".join(w for w in words[:2] if not w.startswith(("-", "handler", "tests", "template")))


def test_pre_commit_runs_every_linter_that_make_test_runs() -> None:
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {tool_of(hook["entry"]) for repo in config["repos"] for hook in repo["hooks"]}
    linters = {tool_of(c) for c in make_test_commands() if "pytest" not in c}
    assert {"ruff check", "ruff format", "mypy", "lint-imports", "cfn-lint"} <= linters
    assert linters <= hooks, f"`make test` lints with {sorted(linters - hooks)} but no pre-commit hook does"


def test_the_published_openapi_schema_is_the_apps() -> None:
    committed = ROOT / "docs" / "openapi.json"
    assert committed.read_text() == render(schema()), "docs/openapi.json is stale: run `make openapi`"
    assert json.loads(committed.read_text())["info"]["version"] == __version__


@pytest.mark.slow
def test_pip_builds_a_wheel_with_the_type_marker_the_policy_and_the_command(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"  # a copy: the build writes egg-info and build/ next to pyproject.toml
    shutil.copytree(ROOT / "handler", source / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w"]
    subprocess.run([*command, str(tmp_path), "."], cwd=source, check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("clip_moderation-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"handler/py.typed", "handler/default_policy.yaml", "handler/main.py"} <= names
    assert {"handler/console/static/index.html", "handler/console/static/api.js"} <= names, "the console"
    assert not any(name.startswith("tests/") for name in names)
    info = f"clip_moderation-{__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "clip-moderation = handler.cli:main" in entry_points


def test_the_readme_shows_both_commands_and_its_links_reach_existing_docs() -> None:
    """`mkdocs build --strict` checks the links inside docs/; the README is outside the site, so here."""
    from markdown.extensions.toc import slugify

    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make serve" in quick_start
    assert "make test" in quick_start
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README.md links to {path}, which does not exist"
        if anchor:
            headings = re.findall(r"^#{1,6} (.+)$", target.read_text(), re.M)
            slugs = {slugify(h.replace("`", ""), "-") for h in headings}
            assert anchor in slugs, f"README.md links to {link}, but {path} has no heading #{anchor}"
