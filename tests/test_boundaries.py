"""Dependencies point one way: ``media`` and ``cobrowse`` never import ``signaling`` (nor the web
framework it is built on), and every module imports on its own (no import cycles)."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "media": {"signaling", "cobrowse", "aiohttp", "socketio", "engineio"},
    "cobrowse": {"signaling", "media", "aiohttp", "socketio", "engineio", "aiortc", "av"},
}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_leaf_packages_do_not_import_upwards(package: str) -> None:
    offences = []
    for path in modules(package):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offences += [
                f"{path.relative_to(ROOT)}:{line} imports {name}"
                for name in names
                if name.split(".")[0] in FORBIDDEN[package]
            ]
    assert offences == []


@pytest.mark.parametrize(
    "module",
    [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in ("signaling", "media", "cobrowse")
        for path in modules(package)
        if path.name != "__main__.py"
    ],
)
def test_each_module_imports_alone(
    module: str, imported_alone: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = imported_alone[module]
    assert result.returncode == 0, result.stderr


def _import_alone(module: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def imported_alone(request: pytest.FixtureRequest) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every selected module of ``test_each_module_imports_alone`` imported in a fresh interpreter
    of its own, as many at once as there are cores: each is ~1 s of CPU (importing any
    ``signaling`` module imports the app), one after the other they were minutes of the suite."""
    selected = [
        str(item.callspec.params["module"])
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_each_module_imports_alone"
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(selected, pool.map(_import_alone, selected), strict=True))


PROTOCOL_MODULES = sorted((ROOT / "signaling" / "protocol").glob("*.py"))


def test_protocol_is_a_leaf() -> None:
    """The wire contract stands on pydantic and the standard library alone (its modules import
    one another, from the base up, and nothing else of Tandem)."""
    assert PROTOCOL_MODULES
    for path in PROTOCOL_MODULES:
        tree = ast.parse(path.read_text(), filename=str(path))
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        outside = {
            module
            for module in imported
            if module.split(".")[0] not in {"__future__", "json", "typing", "pydantic"}
            and not module.startswith("signaling.protocol.")
        }
        assert outside == set(), path
    protocol = importlib.import_module("signaling.protocol")
    assert (protocol.MIN_PROTOCOL_VERSION, protocol.PROTOCOL_VERSION) == (1, 2)


INWARD = {
    # package of signaling -> the parts of signaling it may import (dependencies point inward,
    # from the edge to the store; app, cli and keys compose everything and are not listed;
    # background is a leaf every part may use to stop its tasks)
    "store": {"store"},
    "live": {"live", "protocol", "background"},
    "routing": {"routing"},
    "auth": {"auth", "store"},
    "assets": {"assets", "auth", "store", "protocol"},
    "desk": {"desk", "auth", "live", "routing", "store", "protocol", "background"},
    "hubs": {
        "hubs", "desk", "assets", "auth", "live", "store", "protocol", "settings", "background"
    },
    "edge": {
        "edge", "hubs", "desk", "assets", "auth", "live", "store", "protocol", "settings", "keys",
        "background",
    },
}  # fmt: skip


def signaling_imports(path: Path) -> set[str]:
    """The parts of signaling a module imports (``from signaling import x`` counts as ``x``)."""
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = node.module.split(".")
            if names[0] != "signaling":
                continue
            if len(names) > 1:
                parts.add(names[1])
            else:
                parts.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == "signaling" and len(names) > 1:
                    parts.add(names[1])
    return parts


@pytest.mark.parametrize("package", sorted(INWARD))
def test_signaling_dependencies_point_inward(package: str) -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports signaling.{part}"
        for path in sorted((ROOT / "signaling" / package).rglob("*.py"))
        for part in sorted(signaling_imports(path) - INWARD[package])
    ]
    assert offences == []


def test_protocol_imports_nothing_of_signaling() -> None:
    for path in PROTOCOL_MODULES:
        assert signaling_imports(path) <= {"protocol"}, path
