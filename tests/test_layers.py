"""The package's layers: the ground floor imports nothing above it, the file format knows
nothing of the registries, nothing in the library imports `fewshot.tools`, and the modules that
were untangled sit in no import circle. Imports are read from the source (at the top, in
functions and under TYPE_CHECKING alike), so a lazy import cannot hide a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fewshot

ROOT = Path(fewshot.__file__).parent
GROUND_FLOOR = "errors registry lazy device inputs seeding faults locking outputs progress scoring fileio"
GROUND = {f"fewshot.{name}" for name in GROUND_FLOOR.split()}
# modules taken out of circles; each must stay outside every circle
UNTANGLED = {
    "fewshot.checkpoints",
    "fewshot.fileio",
    "fewshot.model_loading",
    "fewshot.training",
    "fewshot.training_state",
    "fewshot.runs",
    "fewshot.sampling",
    "fewshot.data.download",
    "fewshot.data.embeddings",
    "fewshot.data.folders",
    "fewshot.data.omniglot_files",
    "fewshot.transfer.compare",
    "fewshot.transfer.finetune",
    "fewshot.transfer.finetune_loop",
    "fewshot.run_loop",
    "fewshot.build",
    "fewshot.transfer.sources",
    "fewshot.zeroshot.micro_clip",
    "fewshot.tools.shapes",
    "fewshot.tools.micro_clip_train",
}
# the circles left (docs/ARCHITECTURE.md); a new one fails, removing one is welcome
KNOWN_CIRCLES: list[set[str]] = []  # none left: every module of the package is in no circle


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in ROOT.rglob("*.py")}


def _imported(name: str) -> set[str]:
    """The fewshot modules `name` imports (``from a import b`` counts as ``a.b`` if a module)."""
    path = MODULES[name]
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in found if module in MODULES} - {name}


GRAPH = {name: _imported(name) for name in MODULES}


def _circles() -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(name: str) -> None:
        order[name] = low[name] = len(order)
        stack.append(name)
        for dep in sorted(GRAPH[name]):
            if dep not in order:
                visit(dep)
                low[name] = min(low[name], low[dep])
            elif dep in stack:
                low[name] = min(low[name], order[dep])
        if low[name] == order[name]:
            component = set(stack[stack.index(name) :])
            del stack[stack.index(name) :]
            if len(component) > 1:
                circles.append(component)

    for name in sorted(GRAPH):
        if name not in order:
            visit(name)
    return circles


def test_the_graph_sees_the_package():
    assert set(MODULES) >= GROUND | UNTANGLED
    assert "fewshot.fileio" in GRAPH["fewshot.checkpoints"]
    assert "fewshot.learners" in GRAPH["fewshot.model_loading"]  # a function-level import counts


@pytest.mark.parametrize("name", sorted(GROUND))
def test_the_ground_floor_imports_nothing_above_it(name):
    assert GRAPH[name] <= GROUND, f"{name} imports {sorted(GRAPH[name] - GROUND)}"


def test_the_checkpoint_format_knows_nothing_of_the_registries():
    assert GRAPH["fewshot.checkpoints"] <= GROUND | {"fewshot"}, GRAPH["fewshot.checkpoints"]


def test_nothing_in_the_library_imports_the_tools():
    importers = {name for name, deps in GRAPH.items() if any(d.startswith("fewshot.tools") for d in deps)}
    assert {name for name in importers if not name.startswith("fewshot.tools")} == set()


@pytest.mark.parametrize("name", sorted(UNTANGLED))
def test_an_untangled_module_is_in_no_import_circle(name):
    for circle in _circles():
        assert name not in circle, f"{name} is in an import circle: {sorted(circle)}"


def test_no_import_circle():
    for circle in _circles():
        assert any(circle <= known for known in KNOWN_CIRCLES), f"import circle: {sorted(circle)}"


def test_moved_names_stay_importable_where_they_were():
    import fewshot.checkpoints as checkpoints
    import fewshot.zeroshot.micro_clip as micro_clip
    from fewshot.fileio import atomic_write_bytes
    from fewshot.model_loading import load_learner
    from fewshot.tools import micro_clip_train, shapes

    assert checkpoints.atomic_write_bytes is atomic_write_bytes
    assert checkpoints.load_learner is load_learner is fewshot.load_learner
    assert micro_clip.make_folder is shapes.make_folder
    assert micro_clip.CLASS_NAMES is shapes.CLASS_NAMES
    assert micro_clip.train is micro_clip_train.train
    assert micro_clip.main is micro_clip_train.main


def test_the_file_format_and_the_micro_clip_names_load_light():
    code = (
        "import sys, fewshot.checkpoints, fewshot.zeroshot.micro_clip; "
        "print(sorted(m for m in sys.modules if m.startswith(('fewshot.learners', "
        "'fewshot.encoders', 'fewshot.tools'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
