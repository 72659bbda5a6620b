"""padlib report: one self-contained HTML page for one model, from the book's own methods.

A real run on a small model (a resnet18 checkpoint written here, 8 images at 64 px, through the command line),
checked for its sections, inline figures and the absence of outside references; the recommendation rules on
planted numbers, each branch against its control."""
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

import padlib
from padlib import model_report


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
                    "3. Spatial bias of the feature maps", "4. Predictions under a padding swap"):
        assert section in page
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 4
    assert not re.search(r"(?:src|href)=[\"'](?!data:)", page)  # no file, page or script fetched from anywhere
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    summary = page.split("<div class='summary'>", 1)[1].split("</div>", 1)[0]
    assert "<a " not in summary and "pads evenly at 65" in summary  # resnet18 at 64 px: 65 = 1 (mod 32)
    assert "65 px (even)" in page and "63 px (uneven control)" in page


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


def _planted(even_agree, control_agree, swap_agree, learned_pct, init_pct, lean_tb=("",) * 4,
             predicted_tb="top"):
    """A PaddingReport holding chosen numbers (no model run): each rule's input planted."""
    def row(name, v, half=0.02):
        return {"intervention": name, "metric": "agreement", "value": v, "ci_low": v - half, "ci_high": v + half, "n": 64}

    preds = pd.DataFrame([row(f"{m} padding", swap_agree, 0.005) for m in model_report.SWAP_MODES]
                         + [row("225 px (even)", even_agree), row("223 px (uneven control)", control_agree)])
    control = pd.DataFrame([{"init": "trained", "seed": None, "filters": 1000, "padding_caused": 300, "learned": 10 * learned_pct,
                             "padding_caused_pct": 30.0, "learned_pct": learned_pct, "tau": 1.5},
                            {"init": "random init", "seed": 10, "filters": 1000, "padding_caused": 600, "learned": 10 * init_pct,
                             "padding_caused_pct": 60.0, "learned_pct": init_pct, "tau": 0.5}])
    bias = pd.DataFrame({"input": "natural", "network": "trained", "lean_tb": list(lean_tb), "lean_lr": "",
                         "predicted_tb": predicted_tb, "predicted_lr": "left"})
    summary = {"n_padding_layers": 18, "n_uneven": 5, "unread_sides": "bottom,right", "extra_sides": "top,left"}
    return model_report.PaddingReport("planted", 224, 64, "planted", pd.DataFrame(), summary, [225], control,
                                      pd.DataFrame(), pd.DataFrame(), bias, preds, {"even": 225, "control": 223}, [])


def _texts(rep):
    return " ".join(r.text for r in model_report.recommendations(rep))


def test_recommendation_rules_on_planted_numbers():
    tuned = _texts(_planted(0.40, 0.80, 0.5, 19.0, 1.0, ("bottom",) * 3 + ("",)))
    assert "Train and evaluate at 225 px instead of 224 px" in tuned and "bottom and right" in tuned
    assert "tuned to the uneven padding" in tuned  # even size moves predictions beyond the control
    assert "Do not swap the padding at inference" in tuned
    assert "learned to detect the border" in tuned
    assert "lean to the bottom (top/bottom) at 3 of 4 depths, not the side the padding audit predicts" in tuned
    control = _texts(_planted(0.80, 0.81, 0.999, 1.2, 1.0))  # the controls: every effect absent
    assert "the change is the resize, not the padding" in control
    assert "Do not swap" not in control and "leave the top-1 class unchanged" in control
    assert "Learned PANs are few" in control and "lean to" not in control
    better = _texts(_planted(0.95, 0.80, 0.5, 19.0, 1.0))
    assert "even padding suits these weights better" in better


@pytest.mark.parametrize("even, control, word", [(0.40, 0.80, "more"), (0.95, 0.80, "fewer"), (0.80, 0.81, "about as many")])
def test_the_size_comparison_word_agrees_with_the_numbers_it_prints(even, control, word):
    """The sentence compares two printed shares; its word must say what the two numbers say, on both sides."""
    text = _texts(_planted(even, control, 0.5, 19.0, 1.0))
    m = re.search(r"changes its top-1 class on ([\d.]+)% \[([\d.]+), ([\d.]+)\] of the images, (more|fewer|about as many) "
                  r"(?:than|as) the equally small resize to 223 px changes \(([\d.]+)%", text)
    assert m, text
    ours, lo, hi, said, theirs = float(m[1]), float(m[2]), float(m[3]), m[4], float(m[5])
    assert said == word and lo <= ours <= hi
    assert {"more": ours > theirs, "fewer": ours < theirs, "about as many": abs(ours - theirs) < 5}[said]
