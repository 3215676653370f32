"""The import graph: the generation path reads top to bottom, the library never reaches up into the analysis
package or the command line, and nothing imports in a circle (function-level imports included)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ("config", "geometry", "positions", "spectral", "schedule", "plan", "fusion", "processors", "apply", "state",
        "scheduler", "sd3", "tiling", "memory", "families", "families.base", "families.flux", "families.chroma",
        "families.sd3", "families.flux2", "families.flux2_attention", "families.qwenimage",
        "families.qwenimage_attention", "families.zimage", "families.zimage_attention")
NOT_IN_CORE = ("toy", "record", "plots", "widgets", "bench", "cli", "loading", "generate")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Project modules ``path`` imports anywhere in its body (top level or inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if node.module:
                found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from . import pipeline`: the submodule
    modules = _graph_nodes()
    return {m for m in found if m in modules and m != name}


def _graph_nodes() -> set[str]:
    return {_module_name(p) for pkg in ("resdit", "analysis") for p in (ROOT / pkg).rglob("*.py")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for pkg in ("resdit", "analysis") for p in (ROOT / pkg).rglob("*.py")}


def test_the_library_never_imports_the_analysis_package(graph):
    offenders = {m: sorted(d for d in deps if d.startswith("analysis")) for m, deps in graph.items()
                 if m.startswith("resdit")}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_command_line_is_imported_by_nothing(graph):
    assert sorted(m for m, deps in graph.items() if "resdit.cli" in deps) == []


def test_the_core_imports_no_toy_recorder_plots_widgets_bench_or_cli(graph):
    bad = {}
    for core in CORE:
        deps = graph[f"resdit.{core}"]
        hits = sorted(d for d in deps if any(d == f"resdit.{n}" or d.startswith(f"resdit.{n}.") for n in NOT_IN_CORE))
        if hits:
            bad[core] = hits
    assert bad == {}


def test_there_is_no_import_cycle(graph):
    deps = {m: {d for d in ds if d not in ("resdit", "analysis")} for m, ds in graph.items()}
    state, cycle = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == "open":
                cycle.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(deps):
        if node not in state:
            visit(node, [node])
    assert cycle == []


CONTEXT = ("plan", "phase", "step", "num_steps", "call_context", "pe_override", "sd3_pass")


def _state_writes_and_private_reads(path: Path):
    """``(fields of a state the module assigns, private state attributes it touches)``: ``<x>.field = ...`` where
    ``<x>`` is a name holding a state (``state``), and ``state._anything``."""
    writes, private = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
        for t in targets:
            for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                if isinstance(el, ast.Attribute) and isinstance(el.value, ast.Name) and el.value.id == "state" \
                        and el.attr in CONTEXT:
                    writes.add(el.attr)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "state" \
                and node.attr.startswith("_"):
            private.add(node.attr)
    return writes, private


def test_the_per_call_context_is_written_by_the_state_and_the_families_own_fields_only():
    """Phase, plan and step are set by ``ResDiTState.prepare`` / ``begin_call`` (inside state.py); a family writes only
    its own field (FLUX's pre-hook: the CFG half it runs; SD3: the table its patch embedding returns and the branch
    pass running); nothing outside
    state.py touches the state's private fields."""
    writers, touching = {}, {}
    for pkg in ("resdit", "analysis"):
        for path in (ROOT / pkg).rglob("*.py"):
            if path == ROOT / "resdit" / "state.py":
                continue
            writes, private = _state_writes_and_private_reads(path)
            for field in writes:
                writers.setdefault(field, set()).add(_module_name(path))
            if private:
                touching[_module_name(path)] = sorted(private)
    assert writers == {"call_context": {"resdit.families.flux"}, "pe_override": {"resdit.sd3"}, "sd3_pass": {"resdit.sd3"}}
    assert touching == {}
