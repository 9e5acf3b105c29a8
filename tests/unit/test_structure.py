"""The shape of the code: no import circle between the modules of gateway/ and pipeline/.

Every import counts: one inside a function (a circle that only closes at run time is still
a circle) and one under ``if TYPE_CHECKING:`` (a type named across a circle ties the two
modules as much as a call does; an interface, a ``Protocol``, breaks it).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "pipeline")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, wherever the import statement is."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m in known}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_circle():
    graph = import_graph()
    assert "gateway.telephony.sip" in graph and "pipeline.session" in graph
    assert cycles(graph) == []


def test_the_parts_of_the_gateway_do_not_reach_back_into_its_process():
    # app.py builds them; a part importing it (or the CLI) would tie it to every other part
    process = {"gateway.app", "gateway.cli", "gateway.workers"}
    parts = ("gateway.telephony", "gateway.calls", "gateway.views", "gateway.inbox",
             "gateway.notify")
    graph = import_graph()
    assert {m for m in graph if m.startswith(parts)} >= {"gateway.telephony.sip",
                                                         "gateway.calls.records"}
    assert {(m, d) for m, deps in graph.items() if m.startswith(parts)
            for d in deps if d in process} == set()


def test_the_pipeline_knows_nothing_of_the_gateway():
    graph = import_graph()
    assert not {(m, d) for m, deps in graph.items() if m.startswith("pipeline")
                for d in deps if d.startswith("gateway")}


def test_the_checker_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _imported_packages(folder: str) -> set[tuple[str, str]]:
    """(file, top-level package) of every import of ``tests`` or ``bench`` in ``folder``."""
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else [])
            found |= {(path.name, n.split(".")[0]) for n in names
                      if n.split(".")[0] in ("tests", "bench")}
    return found


def test_the_benchmarks_share_the_testbed_not_the_tests():
    assert {(f, p) for f, p in _imported_packages("bench") if p == "tests"} == set()
    assert _imported_packages("testbed") == set()
    # the benchmarks' own unit tests live beside them, in bench/tests
    assert {(f, p) for f, p in _imported_packages("tests") if p == "bench"} == set()
