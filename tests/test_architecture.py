"""The tree's own rules: every stage findable by its name (module = state key = summary key) and no
function in dedup/ longer than 80 lines."""
import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "dedup"


def test_no_function_in_dedup_is_longer_than_80_lines():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_no_module_in_dedup_is_longer_than_450_lines():
    """A module that grows past this holds several things: split it along its seams (issue 29)."""
    long = [f"{p.relative_to(ROOT.parent)} ({n} lines)" for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 450]
    assert not long, long


def test_each_stage_lives_in_the_module_of_its_name():
    from dedup.config import DedupConfig
    from dedup.job import stages

    for model in ("sscd", "multihash"):
        for st in stages(DedupConfig(inputs=["x"], model=model).validate()):
            module = importlib.import_module(f"dedup.stages.{st.name}")
            assert type(st).__module__ == module.__name__, (st.name, type(st).__module__)


def test_the_library_does_not_import_the_benchmarks():
    """bench/ is a developer tool beside the package (not installed): nothing in dedup/ may need it."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT.parent)}: {n}" for n in names if n == "bench" or n.startswith(("bench.", "dedup.bench"))]
    assert not found, found
