"""padlib is a real package: a wheel that carries it, a `padlib` console script, and NAME=PATH through the command
line and through papermill (a chapter's `models` parameter)."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import padlib
from padlib.chapters import site

REPO = Path(__file__).resolve().parent.parent


def test_wheel_carries_padlib_and_its_console_script(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "padlib", src / "padlib", ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    wheels = list((tmp_path / "dist").glob("padlib-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    modules = {p.name for p in (REPO / "padlib").glob("*.py")}
    assert modules <= {Path(n).name for n in names if n.startswith("padlib/")}
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "padlib = padlib.cli:main" in zipfile.ZipFile(wheels[0]).read(entry).decode()
    meta = zipfile.ZipFile(wheels[0]).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: torch" in meta and "Requires-Dist: timm" in meta


def test_console_script_runs_the_command_line():
    script = shutil.which("padlib", path=os.path.dirname(sys.executable))
    assert script, "no padlib console script next to this Python: run `make setup` (pip install -e .)"
    out = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: padlib")
    for command in ("report", "scan", "audit", "ablate", "book"):
        assert command in out.stdout
    out = subprocess.run([script, "audit", "resnet18=/no/such/file.pth"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip() == "error: checkpoint '/no/such/file.pth' does not exist"


@pytest.fixture(scope="module")
def mobilenet_checkpoint(tmp_path_factory):
    """The offline mobilenet_v2 weights re-saved as a user's checkpoint (wrapped, as training scripts do)."""
    path = tmp_path_factory.mktemp("own") / "my mobilenet.pth"
    torch.save({"epoch": 1, "state_dict": padlib.load_model("mobilenet_v2").state_dict()}, path)
    return path


def test_name_equals_path_through_the_command_line(mobilenet_checkpoint, capsys):
    """The checkpoint holds the offline weights, so every command must print what it prints for the plain name
    (in this process: the console script itself is tested above)."""
    from padlib import cli

    spec = f"mobilenet_v2={mobilenet_checkpoint}"
    for args in (["audit"], ["scan", "--images", "8", "--size", "96"]):
        assert cli.main([*args, spec]) == 0
        mine = capsys.readouterr().out
        assert cli.main([*args, "mobilenet_v2"]) == 0
        ref = capsys.readouterr().out
        assert spec in mine
        assert mine.replace(spec, "mobilenet_v2") == ref


def test_name_equals_path_through_papermill(mobilenet_checkpoint, tmp_path):
    """Chapter 2 in smoke mode with a checkpoint spec as one of its models: it runs, and its tables name the spec."""
    import nbformat


    spec = f"mobilenet_v2={mobilenet_checkpoint}"
    out = tmp_path / "02.ipynb"
    site.execute_notebook(site.find_chapter("2"), out, {"smoke": True, "models": [spec, "tf_efficientnet_lite0"]})
    nb = nbformat.read(out, as_version=4)
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "my mobilenet.pth" in text
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
