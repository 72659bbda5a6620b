"""The report's border-reach stage (dense outputs) and its swaps that cannot run at a size, left out with a reason."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

import padlib
from padlib import model_report
from padlib.report_reach import ReachStage, reach_stage
from padlib.tiling import AS_GIVEN, BorderReach
from padlib.viz.report import report_html

from .test_any_output import _unet

CHEAP = {"progress": False, "n_boot": 20, "positions": 0}


class Stack(nn.Module):
    """k stacked 3x3 convs at stride 1 (zero padding): the reach is exactly k px."""

    def __init__(self, k: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 4, 4, 3, 1, 1) for i in range(k)])

    def forward(self, x):
        return self.body(x)


class TinyDilated(nn.Module):
    """Down to a 4x4 map at 32 px, then a conv of dilation 4 padded by 4: reflect padding cannot pad it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.down = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(4, 4, 3, 2, 1), nn.ReLU())
        self.dilated = nn.Conv2d(4, 2, 3, 1, padding=4, dilation=4)
        self.up = nn.Upsample(scale_factor=8, mode="nearest")

    def forward(self, x):
        return self.up(self.dilated(self.down(x)))


def test_a_dense_report_recommends_the_overlap_border_reach_measures():
    model = Stack(3)
    rep = padlib.report(model, 8, size=32, reach=2, **CHEAP)
    r = rep.reach.result
    assert not rep.reach.skipped and r.tile == 32 and r.n_images == 2
    assert r.margin == 3 and r.overlap == 6  # planted: k stacked 3x3 convs reach k px, top + bottom
    line = rep.summary_lines()[-1]
    assert line.startswith("Border reach (16 tiles from 2 photographs at 64 px): tiles of 32 px need at least 6 px")
    assert "6 between tile rows (3 top + 3 bottom)" in line
    assert "circular 6 px [6, 6], the same as with the model's own padding" in line  # the reach is the convs'
    low, high = rep.reach.result.interval("overlap", "reflect")
    assert f"reflect {rep.reach.result.overlap} px [{low}, {high}]" in line
    rec = [x for x in rep.recommendations if "tile by tile" in x.statement]
    assert len(rec) == 1 and rec[0].evidence == "Figure 5 (border reach)" and "(top 3, bottom 3, left 3, right 3 px)" \
        in rec[0].statement
    record = json.loads(json.dumps(rep.summary_record()))
    assert record["border_reach"]["paddings"]["model"]["overlap"] == 6.0
    assert record["border_reach"]["paddings"]["circular"]["compared_with_model"] == "the same"
    page = report_html(rep)
    assert "<h2>5. Border reach: how much overlap tiles need</h2>" in page and "Figure 5." in page
    assert "near-black: the model&#x27;s own padding; blue: reflect swapped in" in page


def test_the_reach_stage_says_why_it_did_not_run_for_logits_and_can_be_turned_off():
    clf = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    rep = padlib.report(clf, 8, size=32, reach=2, **CHEAP)
    assert rep.reach.skipped == "the model's output is class logits, not a map: there is nothing to tile"
    assert not any("Border reach" in s for s in rep.summary_lines())  # the page says why; the summary is the answers
    assert rep.summary_record()["border_reach"] == {"skipped": rep.reach.skipped}
    assert "Not run: the model&#x27;s output is class logits" in report_html(rep)
    off = padlib.report(clf, 8, size=32, reach=0, **CHEAP)
    assert off.reach is None and "border_reach" not in off.summary_record()
    assert not any("Border reach" in s for s in off.summary_lines())


def test_a_swap_that_cannot_run_at_this_size_is_left_out_with_its_reason():
    model = TinyDilated()
    rep = padlib.report(model, 8, size=32, reach=2, **CHEAP)
    assert set(rep.skipped) == {"reflect padding"}
    assert "reflect padding of (4, 4, 4, 4) is impossible on a 4x4 feature map" in rep.skipped["reflect padding"]
    assert set(rep.predictions["intervention"]) >= {"replicate padding", "circular padding"}
    assert "reflect padding" not in set(rep.predictions["intervention"])
    assert any(s.startswith("reflect padding: not run (reflect padding of (4, 4, 4, 4)") for s in rep.summary_lines())
    assert "reflect" in rep.reach.result.skipped and "reflect" not in set(rep.reach.result.schemes["padding"])
    assert "reflect: not run (" in rep.reach.summary_line()
    assert rep.summary_record()["skipped"] == rep.skipped
    assert "Left out: reflect padding:" in report_html(rep)
    with pytest.raises(padlib.PadlibError, match="padding='reflect' could not be measured: reflect padding of"):
        rep.reach.result.interval("overlap", "reflect")


def _stage(own, swap) -> ReachStage:
    """A stage with planted overlaps (value, low, high) for the model and a reflect swap."""
    rows = [{"padding": p, "swap": p != AS_GIVEN, "overlap": v, "overlap_low": lo, "overlap_high": hi}
            for p, (v, lo, hi) in ((AS_GIVEN, own), ("reflect", swap))]
    result = BorderReach(table=pd.DataFrame(), sides=pd.DataFrame(), tiles=pd.DataFrame(),
                         schemes=pd.DataFrame(rows), tile=64, stride=1, tolerance=0.01, ci=0.95, n_images=4,
                         n_tiles=32, output="", max_distance=32, align=8)
    return ReachStage(64, 4, result)


@pytest.mark.parametrize("own, swap, word", [
    ((24, 16, 32), (8, 8, 8), "shorter"),  # the swap's interval lies below the model's
    ((24, 16, 24), (16, 8, 16), "not resolved"),  # touching intervals: not told apart
    ((8, 8, 8), (24, 16, 32), "longer"),
    ((8, 8, 16), (16, 16, 24), "not resolved"),
    ((16, 16, 16), (16, 16, 16), "the same"),
    ((16, 8, 16), (16, 16, 24), "not resolved"),  # the same point, other intervals
    ((16, math.nan, math.nan), (8, math.nan, math.nan), "not resolved"),  # one image: no interval
    ((math.inf, math.inf, math.inf), (16, 8, 16), "shorter"),  # beyond the tile against a finite overlap
])
def test_the_swap_comparison_word_follows_the_intervals(own, swap, word):
    stage = _stage(own, swap)
    assert stage.comparison("reflect") == word
    assert stage.swap_words()[0].endswith({"shorter": "shorter than with the model's own padding",
                                           "longer": "longer than with the model's own padding",
                                           "the same": "the same as with the model's own padding",
                                           "not resolved": "not resolved from the model's own padding"}[word])


def test_reach_stage_skips_a_tile_the_model_cannot_take_in_one_line():
    stage = reach_stage(_unet(), 31, "dense", 2, n_boot=10)  # 31 px: not on the U-net's stride-2 lattice
    assert stage.result is None and stage.skipped and "\n" not in stage.skipped


@pytest.mark.parametrize("bad", [1, -1, 65, 2.5, True, "4"])
def test_bad_reach_values_are_refused_before_any_work(bad, monkeypatch):
    monkeypatch.setattr(model_report, "probe_images", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(padlib.PadlibError, match="reach must be 0 or None"):
        padlib.report(Stack(1), 8, size=32, reach=bad, **CHEAP)


@pytest.mark.parametrize("size, n", [(96, 128), (224, 128), (256, 96), (299, 72), (512, 32), (520, 32), (1024, 32)])
def test_default_images_hold_the_pixels_of_128_at_224(size, n):
    assert model_report.default_images(size) == n


def test_the_default_image_count_reaches_the_probe(monkeypatch):
    seen = {}

    def probe(n, **k):
        seen["n"] = n
        raise padlib.PadlibError("stop here")

    monkeypatch.setattr(model_report, "probe_images", probe)
    with pytest.raises(padlib.PadlibError, match="stop here"):
        padlib.report(Stack(1), size=299, **CHEAP)
    assert seen["n"] == 72


def test_keeping_freed_memory_is_the_commands_not_an_imports(tmp_path):
    """``import padlib`` leaves malloc alone; the ``padlib`` command and the chapter kernels keep freed memory."""
    import subprocess
    import sys

    from padlib._malloc import MALLOC_ENV
    from padlib.chapters.site import _kernel_env

    code = ("import sys, padlib._malloc as m; calls = []\n"
            "m.keep_freed_memory = lambda *a: calls.append(1) or True\n"
            "import padlib, padlib.cli as c; c.keep_freed_memory = m.keep_freed_memory\n"
            "assert not calls, 'import changed malloc'\n"
            "c.main([]); assert not calls, 'a caller passing argv keeps its own malloc'\n"
            "sys.argv = ['padlib']; c.main(); assert calls == [1], calls\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    env = _kernel_env()
    assert all(env[k] == v for k, v in MALLOC_ENV.items())
