"""Dependencies point one way: ``media`` and ``cobrowse`` never import ``signaling`` (nor the web
framework it is built on), and every module imports on its own (no import cycles)."""

from __future__ import annotations

import ast
import importlib
import multiprocessing
import multiprocessing.process
import os
import subprocess
import sys
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
def test_each_module_imports_alone(module: str, imported_alone: dict[str, int]) -> None:
    if imported_alone[module] != 0:
        # Once more in a fresh interpreter, for the error to show.
        result = _import_alone(module)
        assert result.returncode == 0, result.stderr
        raise AssertionError(f"{module} failed to import first (exit {imported_alone[module]})")


def _import_alone(module: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True
    )


PROJECT = ("signaling", "media", "cobrowse")


def _imported_from_outside() -> list[str]:
    """Every module the project imports from outside itself (the standard library and the
    dependencies), as its sources name them."""
    names: set[str] = set()
    for package in PROJECT:
        for path in modules(package):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in {*PROJECT, "__future__"})


@pytest.fixture(scope="module")
def imported_alone(request: pytest.FixtureRequest) -> dict[str, int]:
    """The exit code of importing each selected module of ``test_each_module_imports_alone``
    first, in a process of its own that holds none of Tandem's modules yet.

    Each process is forked from a server that has imported the dependencies already (aiohttp,
    aiortc, pydantic, ...: half of the second of CPU that importing any ``signaling`` module
    took, paid once instead of for each module), as many at once as there are cores."""
    selected = [
        str(item.callspec.params["module"])
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_each_module_imports_alone"
    ]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_imported_from_outside())
    codes: dict[str, int] = {}
    running: list[tuple[str, multiprocessing.process.BaseProcess]] = []
    for module in [*selected, None]:
        while running and (module is None or len(running) >= (os.cpu_count() or 1)):
            name, process = running.pop(0)
            process.join()
            codes[name] = process.exitcode if process.exitcode is not None else -1
        if module is not None:
            process = context.Process(target=importlib.import_module, args=(module,))
            process.start()
            running.append((module, process))
    return codes


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
