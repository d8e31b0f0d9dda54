"""The library's layers import downwards only (docs/internals.md, "Layers").

Every module of ``gradiend`` is parsed (imports inside functions count too) and each import of
another ``gradiend`` package must go to the same or a lower layer; ``evaluation`` never imports
``training``; only the trainer facade in ``training`` reaches into ``evaluation``; the packages
import each other without cycles.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "gradiend"

# lowest first; a module may import its own layer and the layers below it
LAYERS = [
    {"_version", "util", "cells", "schema_validation", "config_files"},
    {"objectives"},
    {"model", "data"},
    {"plots", "demo"},
    {"evaluation"},
    {"training"},
    {"stages"},
    {"workflow_config", "workflow_checks"},
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}

# (importing module, imported module) pairs that break the rule on purpose, each with its reason
ALLOWED: dict[tuple[str, str], str] = {}

# the only modules of `training` that may import `evaluation` (the facade forwards evaluation)
TRAINING_TO_EVALUATION = {"gradiend.training.trainer"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """The ``gradiend`` modules ``path`` imports anywhere in its body (``from a import b`` is ``a.b``
    when ``b`` is a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "gradiend")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "gradiend":
                continue
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if _is_module(f"{target}.{alias.name}") else target)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "_version"  # the root package only re-exports lazily


def edges() -> list[tuple[str, str]]:
    return [(_module_name(p), target) for p in sorted(ROOT.rglob("*.py")) for target in sorted(imports_of(p))]


def test_every_package_has_a_layer():
    packages = {package_of(_module_name(p)) for p in ROOT.rglob("*.py")}
    assert packages - set(RANK) == set(), "add the new package to LAYERS here and in docs/internals.md"


def test_root_package_is_imported_only_for_modules_and_the_version():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "gradiend" and not node.level:
                bad += [f"{_module_name(path)}: {a.name}" for a in node.names
                        if a.name != "__version__" and not _is_module(f"gradiend.{a.name}")]
    assert bad == [], "import these names from the module that defines them (the layer test sees no lazy export)"


def test_imports_go_downwards():
    upward = [f"{src} -> {dst} ({package_of(src)} is layer {RANK[package_of(src)]}, "
              f"{package_of(dst)} is layer {RANK[package_of(dst)]})"
              for src, dst in edges()
              if RANK[package_of(dst)] > RANK[package_of(src)] and (src, dst) not in ALLOWED]
    assert upward == []


def test_evaluation_never_imports_training_and_only_the_trainer_imports_evaluation():
    bad = [f"{src} -> {dst}" for src, dst in edges()
           if (package_of(src), package_of(dst)) == ("evaluation", "training")
           or ((package_of(src), package_of(dst)) == ("training", "evaluation") and src not in TRAINING_TO_EVALUATION)]
    assert bad == []


def test_no_package_cycles():
    graph: dict[str, set[str]] = {}
    for src, dst in edges():
        if package_of(src) != package_of(dst):
            graph.setdefault(package_of(src), set()).add(package_of(dst))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    assert sorted(p for p in graph if reaches(p, p, set())) == []


def test_the_checker_sees_imports_inside_functions(tmp_path):
    # a guard against a checker that passes vacuously: the lazy imports in the trainer are found
    assert "gradiend.evaluation.evaluator" in imports_of(ROOT / "training" / "trainer.py")
    assert "gradiend.cells" in imports_of(ROOT / "model" / "with_gradiend.py")


def test_workflow_scripts_reach_the_library_only_through_stages():
    scripts = sorted((ROOT.parent / "workflow" / "scripts").glob("*.py"))
    assert scripts
    bad = []
    for path in scripts:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gradiend":
                bad += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                        if f"{node.module}.{a.name}" != "gradiend.stages" and node.module != "gradiend.stages"]
            elif isinstance(node, ast.Import):
                bad += [f"{path.name}: {a.name}" for a in node.names
                        if a.name.split(".")[0] == "gradiend" and a.name != "gradiend.stages"]
    assert bad == []
