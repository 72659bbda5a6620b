"""padlib report: one self-contained HTML page for one model, from the book's own methods.

A real run on a small model (a resnet18 checkpoint written here, 8 images at 64 px, through the command line),
checked for its sections, inline figures, evidence levels and the absence of outside references. The rules and
the generated sentences on planted numbers: tests/test_report_text.py."""
import re
import subprocess
import sys

import pytest
import torch

import padlib


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("report") / "resnet18-mine.pth"
    torch.save(padlib.load_model("resnet18", pretrained=False).state_dict(), path)
    return path


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "padlib", "report", *args], capture_output=True, text=True,
                          timeout=280, cwd=cwd)


def test_report_command_writes_a_self_contained_page(checkpoint, tmp_path):
    out = tmp_path / "r.html"
    res = _run(f"resnet18={checkpoint}", "--images", "8", "--size", "64", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "recommendations:" in res.stdout and f"wrote {out}" in res.stdout
    page = out.read_text()
    for section in ("Summary", "Recommendations", "1. Padding audit", "2. Padding Aware Neurons",
                    "3. Spatial bias of the feature maps", "4. Predictions under a padding swap",
                "5. Objects at every position"):  # the position stage runs by default (--positions 5)
        assert section in page
    # 4 figures: the position stage says why it did not run (a random-init network recognises no object centred)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 4
    assert not re.search(r"(?:src|href)=[\"'](?!data:)", page)  # no file, page or script fetched from anywhere
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    summary = page.split("<div class='summary'>", 1)[1].split("</div>", 1)[0]
    assert "<a " not in summary and "pads evenly at 65" in summary  # resnet18 at 64 px: 65 = 1 (mod 32)
    assert "65 px (even)" in page and "63 px (uneven control)" in page
    recs = page.split("<div class='recs'>", 1)[1].split("</div>", 1)[0]
    assert "<span class='level level-arithmetic'>arithmetic only</span> At 65 px every padding layer pads evenly" in recs
    assert "level-measured'>measured on this model</span>" in recs and "Train and evaluate at" not in recs
    assert "learned PANs on 8 probe images at a 1% false-positive rate" in summary
    assert ("Objects at every position: not run (objects recognised centred on 0 of 40 object-background pairs, on "
            "0 of 8 backgrounds (at least 3 backgrounds needed;") in summary


def test_report_command_never_overwrites_a_file(checkpoint, tmp_path):
    mine = tmp_path / "padding-report-resnet18-resnet18-mine.html"
    mine.write_text("mine")
    res = _run(f"resnet18={checkpoint}", "--images", "8", "--size", "64", cwd=tmp_path)  # the default name
    assert res.returncode == 2 and "already exists; pass --force" in res.stderr and "Traceback" not in res.stderr
    assert mine.read_text() == "mine"
    res = _run("resnet18", "--out", str(tmp_path / "r.txt"))
    assert res.returncode == 2 and "must end in .html" in res.stderr


def test_report_refuses_bad_input_clearly():
    with pytest.raises(padlib.PadlibError, match="at least 8"):
        padlib.report("mobilenet_v2", images=4)
    with pytest.raises(padlib.PadlibTypeError, match="images must be int"):
        padlib.report("mobilenet_v2", images="many")
    with pytest.raises(padlib.NoPaddedLayersError):
        padlib.report(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Flatten()), images=8)

