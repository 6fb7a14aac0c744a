"""Data flows one way: settings <- features <- training <- serving <- the ``churn`` command.

Each package is imported, every module of it, in a fresh interpreter, and ``sys.modules`` then
shows what it pulled in; a scan of every import statement (also those inside functions, which
run only when called) catches what importing alone would miss.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("churn_settings", "features", "training", "serving", "churn")
# what each package must never import, directly or through another package
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "churn_settings": ("features", "training", "serving", "churn"),
    "features": ("training", "serving", "churn"),
    "training": ("serving", "churn"),
    "serving": ("churn",),
}

IMPORT_ALL = """
import importlib, json, pkgutil, sys
names = sys.argv[1:]
for name in names:
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
        importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


# one fresh interpreter per check, started together (each imports MLflow, LightGBM, ...)
CHECKS: dict[str, tuple[str, ...]] = {
    "churn_settings": ("churn_settings",),
    "features": ("features",),
    "training": ("training",),
    "serving": ("features", "training", "serving"),  # also: the library loads no CLI module
}


@pytest.fixture(scope="module")
def imported() -> dict[str, set[str]]:
    """Every module in ``sys.modules`` after importing all modules of each check's packages."""
    runs = {
        check: subprocess.Popen(
            [sys.executable, "-c", IMPORT_ALL, *packages],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for check, packages in CHECKS.items()
    }
    loaded = {}
    for check, run in runs.items():
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        loaded[check] = set(json.loads(out.strip().splitlines()[-1]))
    return loaded


def top_package(module: str) -> str:
    return module.partition(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_a_package_loads_none_of_the_packages_above_it(
    package: str, imported: dict[str, set[str]]
) -> None:
    loaded = {top_package(m) for m in imported[package]}
    assert loaded.isdisjoint(FORBIDDEN[package]), sorted(loaded & set(FORBIDDEN[package]))


def test_the_library_imports_no_cli_module(imported: dict[str, set[str]]) -> None:
    loaded = imported["serving"]  # features, training and serving, every module
    assert not {m for m in loaded if top_package(m) == "churn"}
    assert "typer" not in loaded


def imports_of(path: Path) -> set[str]:
    """The modules ``path`` names in any import statement, at top level or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_statement_points_up_the_layers(package: str) -> None:
    folder = ROOT / package
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in folder.rglob("*.py")
        for name in imports_of(path)
        if top_package(name) in FORBIDDEN[package]
    }
    assert not wrong, sorted(wrong)


def test_the_packages_listed_here_are_the_packages_the_wheel_ships() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert sorted(shipped) == sorted(PACKAGES)
