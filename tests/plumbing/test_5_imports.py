"""The layout's rules, read from the source (ast): dependencies point one way.

The six method files at the root import the package (bridgekit/); the package never imports a
method file, except that the speed-ups (bridgekit/fast.py) are built from the naive sampler's
pieces (sample.py); tools/ never imports the experiment folder; and no two modules import each
other, directly or around a circle. The one import that would close a circle is sample.py's command
reaching for the speed-ups when asked (`--fast`): it sits inside main(), and is checked to be there.
"""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METHOD = ["bridge", "model", "sample", "train_sft", "train_grpo", "evaluate"]
PACKAGE = sorted(p.stem for p in (ROOT / "bridgekit").glob("*.py") if p.stem != "__init__")
EXPERIMENTS = sorted(p.stem for folder in ("bench", "studies") for p in (ROOT / "experiments" / folder).glob("*.py"))


def imports(path):
    """[(module imported, the function it is imported in or None)] of one file: the project's modules only."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            names = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module] + ([f"{child.module}.{a.name}" for a in child.names] if child.module == "bridgekit" else [])
            for name in names:
                if name.startswith("bridgekit."):
                    out.append((name, function))
                elif name in METHOD or name in EXPERIMENTS:
                    out.append((name, function))
            visit(child, inner)
    visit(tree, None)
    return out


def module_files():
    files = {m: ROOT / f"{m}.py" for m in METHOD}
    files.update({f"bridgekit.{m}": ROOT / "bridgekit" / f"{m}.py" for m in PACKAGE})
    return files


def edges(skip_main_fast=False):
    out = {}
    for name, path in module_files().items():
        deps = set()
        for dep, function in imports(path):
            if dep == name or dep not in module_files():
                continue
            if skip_main_fast and (name, dep, function) == ("sample", "bridgekit.fast", "main"):
                continue
            deps.add(dep)
        out[name] = deps
    return out


def cycle(graph):
    """One circle of the graph as a list of modules, or None."""
    state = {}

    def walk(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := walk(nxt, path + [nxt])):
                return found
        state[node] = "done"
        return None
    for node in sorted(graph):
        if node not in state and (found := walk(node, [node])):
            return found
    return None


def test_the_top_level_is_the_six_method_files():
    assert sorted(p.stem for p in ROOT.glob("*.py")) == sorted(METHOD + ["conftest"])


def test_no_module_imports_itself_around_a_circle():
    assert cycle(edges(skip_main_fast=True)) is None, " -> ".join(cycle(edges(skip_main_fast=True)))


def test_the_one_import_closing_a_circle_is_the_fast_flag_inside_sample_main():
    assert cycle(edges()) is not None  # sample.main -> bridgekit.fast -> sample
    places = [function for dep, function in imports(ROOT / "sample.py") if dep == "bridgekit.fast"]
    assert places == ["main"], places


def test_the_package_imports_no_method_file_but_the_speed_ups_the_naive_sampler():
    for name in PACKAGE:
        found = {dep for dep, _ in imports(ROOT / "bridgekit" / f"{name}.py") if dep in METHOD}
        assert found <= ({"sample"} if name == "fast" else set()), f"bridgekit/{name}.py imports {found}"


def test_the_method_files_import_the_speed_ups_only_inside_a_function():
    for name in METHOD:
        top = [dep for dep, function in imports(ROOT / f"{name}.py") if dep == "bridgekit.fast" and function is None]
        assert not top, f"{name}.py imports bridgekit.fast when it is imported"


def test_model_loads_without_the_command_line_helpers():
    assert not {dep for dep, _ in imports(ROOT / "model.py")} & {"bridgekit.cli", "bridgekit.train_args"}


def test_tools_never_import_the_experiment_folder():
    for path in sorted((ROOT / "tools").glob("*.py")):
        found = {dep for dep, _ in imports(path) if dep in EXPERIMENTS}
        assert not found, f"tools/{path.name} imports {found} (experiments/)"


def test_the_model_loads_without_the_command_line_helpers_and_sample_py_runs_no_speed_up(tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from tiny import make_tiny_model
from pathlib import Path
path, _ = make_tiny_model(Path({str(tmp_path)!r}), "llama")
import model
model.load_model(str(path))
assert "bridgekit.cli" not in sys.modules, "loading a model imported the command-line helpers"
import sample
sample.main(["--model", str(path), "--width", "4", "--prompt", "hi", "--max-new-tokens", "3"])
assert not [m for m in sys.modules if m.startswith("bridgekit.fast")], "sample.py --width 4 imported a speed-up"
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
