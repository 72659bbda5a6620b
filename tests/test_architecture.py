"""padlib's layout: imports flow one way (base -> core -> methods -> experiments -> viz -> chapters -> top), no
cycles, no module over about 800 lines, and ``import padlib`` loads no matplotlib and changes no global state.

The layers are read from the code with an ``ast`` walk over every import, at module level or inside a function, so
a cycle cannot hide behind a function-level import. The checker is tested on a planted upward import too.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PADLIB = Path(__file__).resolve().parents[1] / "padlib"

# Lower layers may be imported by higher ones, never the other way round; within a layer, imports must not cycle.
LAYERS = {
    "base": ["errors", "_files", "_compat", "stats", "padding", "preprocess", "_hooks", "_memory", "_malloc",
             "_distributed"],
    "core": ["models", "_craft", "data", "layers", "small_nets"],
    "methods": ["_trace", "_pan_stream", "pans", "pan_tables", "kernels", "kernel_types", "interventions", "audit",
                "spatial_bias", "blind_spot_maps", "position", "model_report", "outputs", "evaluation",
                "report_rules", "report_reach", "position_sensitivity", "tiling"],
    "experiments": ["experiments"],
    "viz": ["viz"],
    "chapters": ["chapters"],
    # the command line, benchmarks, the package's re-exports and the old module paths (one release, they warn)
    "top": ["cli", "cli_train", "bench", "__main__", "__init__", "activations", "ablation", "training", "blind_spots",
            "padding_layers", "plots", "book", "findings"],
}
ORDER = list(LAYERS)
MAX_LINES = 800


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def layer_of(module: str) -> str:
    head = module.split(".")[0]
    for layer, names in LAYERS.items():
        if head in names:
            return layer
    raise AssertionError(f"padlib.{module} is in no layer: add it to LAYERS in tests/test_architecture.py")


def import_edges(root: Path) -> dict[str, set[str]]:
    """Every padlib module -> the padlib modules it imports (relative or absolute, at any depth in the file)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    packages = {module_name(p, root) for p in root.rglob("__init__.py")}
    edges: dict[str, set[str]] = {}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py" and mod in packages and mod != "__init__"
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        if mod == "__init__":
            here = []
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                if node.module:
                    targets.append(".".join(base + node.module.split(".")))
                else:
                    targets += [".".join(base + [a.name]) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "padlib":
                rest = node.module.split(".")[1:]
                targets += [".".join(rest)] if rest else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets += [".".join(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == "padlib"]
            for t in targets:
                while t and t not in modules:  # a name imported from a package, or a package's __init__
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != mod:
                    found.add(t if t else "__init__")
        edges[mod] = found
    return edges


def layering_problems(root: Path) -> list[str]:
    """Upward imports, cycles and string imports outside ``_compat``/``__init__``, as sentences."""
    edges = import_edges(root)
    problems = []
    for mod, targets in sorted(edges.items()):
        for t in sorted(targets):
            if ORDER.index(layer_of(t)) > ORDER.index(layer_of(mod)):
                problems.append(f"upward import: padlib.{mod} ({layer_of(mod)}) imports padlib.{t} ({layer_of(t)})")
    # cycles: depth-first search for a back edge
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                problems.append("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    for path in root.rglob("*.py"):
        if path.name in ("_compat.py",) or module_name(path, root) == "__init__":
            continue
        if re.search(r"import_module\(\s*f?[\"']padlib", path.read_text()):
            problems.append(f"padlib.{module_name(path, root)} imports padlib by string (only _compat and __init__ may)")
    return problems


def test_imports_flow_one_way_without_cycles():
    assert layering_problems(PADLIB) == []


def test_the_check_fails_on_a_planted_upward_import_and_a_planted_cycle(tmp_path):
    copy = tmp_path / "padlib"
    shutil.copytree(PADLIB, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "padding.py", "a") as f:  # base importing a reading, inside a function
        f.write("\n\ndef _planted():\n    from .chapters.claims import PAPER_CLAIM\n    return PAPER_CLAIM\n")
    problems = layering_problems(copy)
    assert any("upward import: padlib.padding (base) imports padlib.chapters.claims" in p for p in problems)
    shutil.copytree(PADLIB, tmp_path / "p2", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "p2" / "errors.py", "a") as f:  # errors <-> stats, both base: a cycle, not a layer breach
        f.write("\n\ndef _planted():\n    from .stats import holm_adjust\n    return holm_adjust\n")
    problems = layering_problems(tmp_path / "p2")
    assert any(p.startswith("import cycle:") and "errors" in p and "stats" in p for p in problems)
    assert not any(p.startswith("upward") for p in problems)


def test_every_module_has_a_layer_and_none_is_over_800_lines():
    for path in PADLIB.rglob("*.py"):
        mod = module_name(path, PADLIB)
        layer_of(mod)
        n = len(path.read_text().splitlines())
        assert n <= MAX_LINES, f"padlib.{mod} has {n} lines (split it by concept; at most {MAX_LINES})"


def test_methods_do_not_hold_readings():
    """No method module writes verdicts or findings boxes: those live in padlib.chapters."""
    for mod in LAYERS["methods"] + LAYERS["core"] + LAYERS["base"]:
        for path in [PADLIB / f"{mod}.py"] + sorted((PADLIB / mod).glob("*.py")):
            if not path.exists():
                continue
            defs = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
            readings = {d for d in defs if d.endswith(("_findings", "_findings_box", "_verdicts", "_headline"))
                        or d in ("chapter_findings_box", "judge", "judge_all")}
            assert not readings, f"{path.name} holds readings {sorted(readings)}: move them to padlib.chapters"


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_padlib_loads_no_matplotlib_and_changes_no_global_state():
    state = r"""
import json, sys, warnings, torch
import numpy, pandas, scipy.stats, PIL.Image  # padlib's dependencies set their own warning filters on import
for name in ("torchvision", "timm", "tqdm", "safetensors"):
    __import__(name)
def snapshot():
    return {"threads": torch.get_num_threads(), "dtype": str(torch.get_default_dtype()),
            "grad": torch.is_grad_enabled(), "deterministic": torch.are_deterministic_algorithms_enabled(),
            "filters": len(warnings.filters), "rng": torch.random.get_rng_state().sum().item(),
            "np_rng": __import__("numpy").random.get_state()[1][:4].tolist()}
before = snapshot()
import padlib
after = snapshot()
print(json.dumps({"before": before, "after": after, "matplotlib": "matplotlib" in sys.modules,
                  "warned": [str(w) for w in warnings.filters[:0]]}))
"""
    r = _run(state)
    assert r["matplotlib"] is False, "import padlib loaded matplotlib"
    assert r["before"] == r["after"]


def test_figures_leave_matplotlib_style_alone_until_a_chapter_asks():
    code = r"""
import json, matplotlib
matplotlib.use("Agg")
before = dict(matplotlib.rcParams)
import padlib.viz.ch1_pans, padlib.viz.ch4_blind_spots, padlib.viz.report
unchanged = dict(matplotlib.rcParams) == before
from padlib.viz.style import use_book_style
use_book_style()
print(json.dumps({"unchanged_on_import": unchanged, "changed_by_style": dict(matplotlib.rcParams) != before}))
"""
    r = _run(code)
    assert r == {"unchanged_on_import": True, "changed_by_style": True}


def test_old_module_paths_work_for_one_release_and_warn_once():
    code = r"""
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from padlib.training import vgg_small, resolvable_effect
    from padlib.training import train
    from padlib.pans import chapter_findings_box
    from padlib.pans import pan_findings
    import padlib
    same = (vgg_small is padlib.vgg_small and train is padlib.train
            and resolvable_effect is padlib.stats.resolvable_effect)
    from padlib.chapters.ch1_pans import chapter_findings_box as box
print(json.dumps({"same": same and chapter_findings_box is box,
                  "messages": [str(w.message) for w in caught if w.category.__name__ == "PadlibDeprecationWarning"]}))
"""
    r = _run(code)
    assert r["same"]
    assert len(r["messages"]) == 2, r["messages"]  # one for padlib.training, one for padlib.pans' moved names
    assert "padlib.training moved to" in r["messages"][0] and "padlib.experiments.training" in r["messages"][0]
    assert "padlib.pans.chapter_findings_box moved to padlib.chapters.ch1_pans" in r["messages"][1]


@pytest.mark.parametrize("name", ["plots", "training", "padding_layers"])
def test_the_old_modules_padlib_exported_are_still_attributes(name):
    code = f"import json, warnings; warnings.simplefilter('ignore'); import padlib; m = padlib.{name}; " \
           f"print(json.dumps({{'ok': m.__name__ == 'padlib.{name}'}}))"
    assert _run(code) == {"ok": True}
