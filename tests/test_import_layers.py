"""The import graph (read with ``ast``): no import loops, and no package imports one above it.

Layers follow DESIGN.md ("Layers") and STYLE.md: network below perf; perf below energy, simulate and
search; search below place, emit, sweep and validate; report, cli and service on top. Every import
counts, including lazy ones inside functions and those under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fleetwise"
# rank of each top-level package or module; an import must go to a strictly lower rank or stay inside
LAYERS: dict[str, int] = {
    "errors": 0, "units": 0, "version": 0, "progress": 0,
    "catalog": 1,
    "plan": 2, "workload": 2,
    "network": 3,
    "perf": 4,
    "energy": 5,
    "simulate": 6,
    "search": 7,
    "study": 8, "place": 8, "emit": 8, "validate": 8,
    "sweep": 9, "calibrate": 9,
    "api": 10,
    "report": 11, "__init__": 11, "service": 12, "cli": 13, "__main__": 13,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets.update(found or ([node.module] if node.module in modules else []))
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        edges[name] = {t for t in targets if t != name}
    return edges


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer() -> None:
    missing = sorted({_top(m) for m in _graph()} - set(LAYERS))
    assert not missing, f"add these packages to LAYERS (DESIGN.md 'Layers'): {missing}"


def test_no_package_imports_a_layer_above_or_beside_it() -> None:
    bad = []
    for src, targets in _graph().items():
        for dst in targets:
            a, b = _top(src), _top(dst)
            if a != b and LAYERS.get(b, 99) >= LAYERS.get(a, -1):
                bad.append(f"{src} -> {dst}")
    assert not bad, "upward or sideways imports:\n" + "\n".join(sorted(bad))


def test_the_import_graph_has_no_loops() -> None:
    edges = _graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    loops: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                loops.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not loops, "import loops:\n" + "\n".join(loops)
