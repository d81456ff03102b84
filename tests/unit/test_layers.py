"""The package's layers depend one way: no import cycle, and the platform never imports pytest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest_sagemaker_contract

PACKAGE = Path(pytest_sagemaker_contract.__file__).parent
NAME = "pytest_sagemaker_contract"
#: The layer that must run without pytest: the local training platform and what it builds on.
PLATFORM_LAYER = ("platform", "spec", "errors", "jobs", "diagnosis", "image_facts", "api")


def _module_name(path: Path) -> str:
    parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every package module `module` imports, at the top or inside functions (explicit targets only)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    out.add(sub)
                elif target in known:
                    out.add(target)
    out.discard(module)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_among_the_package_modules() -> None:
    modules = _modules()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    assert len(graph) > 20
    assert f"{NAME}.session" in graph[f"{NAME}.fixtures"]  # the scan sees real edges
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_scan_finds_a_cycle_held_apart_by_a_function_level_import(tmp_path: Path) -> None:
    pkg = tmp_path / NAME
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from .a import other\n")
    known = {f"{NAME}.a", f"{NAME}.b", NAME}
    graph = {
        f"{NAME}.a": _imports(f"{NAME}.a", pkg / "a.py", known),
        f"{NAME}.b": _imports(f"{NAME}.b", pkg / "b.py", known),
    }
    assert _cycle(graph) == [f"{NAME}.a", f"{NAME}.b", f"{NAME}.a"]


def test_the_platform_layer_imports_without_pytest() -> None:
    imports = "; ".join(f"import {NAME}.{m}" for m in PLATFORM_LAYER)
    code = f"import sys; {imports}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugin_modules_import_their_session_state_from_one_module() -> None:
    modules = _modules()
    for name in ("fixtures", "gpu_support", "contract.suite", "plugin"):
        edges = _imports(f"{NAME}.{name}", modules[f"{NAME}.{name}"], set(modules))
        assert f"{NAME}.session" in edges, name
    session_edges = _imports(f"{NAME}.session", modules[f"{NAME}.session"], set(modules))
    assert not session_edges & {f"{NAME}.{m}" for m in ("fixtures", "plugin", "contract", "report", "gpu_support")}


def test_no_function_level_import_of_a_package_module() -> None:
    """Imports inside functions are only for slow or optional third-party modules, never to dodge a cycle."""
    found = []
    for module, path in _modules().items():
        for func in ast.walk(ast.parse(path.read_text())):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if _imports_package(node):
                    found.append(f"{module}.{func.name}")
    assert found == []


def _imports_package(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").startswith(NAME)
    return isinstance(node, ast.Import) and any(a.name.startswith(NAME) for a in node.names)


#: The one module that talks to docker-py (design.md, "Two layers"): every other module goes through `Engine`.
DOCKER_DOOR = f"{NAME}.platform.engine"


def _docker_uses(source: str) -> list[str]:
    """Where `source` imports docker or reaches into an engine's docker-py client (`engine.api`, `.client`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "docker"]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "docker":
            found.append(f"line {node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Attribute) and node.attr in ("api", "client"):
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if "engine" in name.lower():
                found.append(f"line {node.lineno}: {name}.{node.attr}")
    return found


def test_only_the_engine_module_talks_to_docker() -> None:
    found = [
        f"{module} {use}"
        for module, path in sorted(_modules().items())
        if module != DOCKER_DOOR
        for use in _docker_uses(path.read_text())
    ]
    assert found == [], "docker-py outside platform/engine.py; add an Engine method instead"
    assert _docker_uses(_modules()[DOCKER_DOOR].read_text())  # the scan sees the door's own uses


def test_the_docker_scan_finds_imports_and_client_reaches() -> None:
    source = (
        "import docker.errors\nfrom docker.types import Mount\n"
        "def f(platform, engine):\n    platform.engine.api.start('x')\n    return engine.client.info()\n"
    )
    assert [use.split(":")[0] for use in _docker_uses(source)] == ["line 1", "line 2", "line 4", "line 5"]
    assert _docker_uses("def f(s3):\n    return s3.client().get_object()\n") == []
