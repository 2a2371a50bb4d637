"""Installed sizes: the Lambda runtime stage's site-packages, measured by installing its requirements
into a fresh directory, beside what torch and transformers alone take in this environment."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
RUNTIME_REQUIREMENTS = ROOT / "requirements-runtime.txt"


def tree_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def runtime_site_packages_mib(work: Path) -> float | str:
    """pip-installs requirements-runtime.txt into `work/runtime-site` (once) and measures it."""
    target = work / "runtime-site"
    stamp = target / ".complete"
    if not stamp.is_file():
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target)]
        result = subprocess.run(
            [*command, "-r", str(RUNTIME_REQUIREMENTS)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            return f"not measured: pip could not install the runtime requirements ({result.stderr[-200:]})"
        stamp.write_text("")
    return tree_mib(target)


def package_mib(*names: str) -> dict[str, float]:
    """Installed size of each importable package in this environment (its own folder)."""
    sizes = {}
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            sizes[name] = tree_mib(Path(next(iter(spec.submodule_search_locations))))
    return sizes


def model_dir_mib(model_dir: Path) -> dict[str, float]:
    return {p.name: p.stat().st_size / 2**20 for p in sorted(model_dir.rglob("*")) if p.is_file()}
