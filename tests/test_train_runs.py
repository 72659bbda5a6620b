"""Training runs in folders (``padlib train``) and the chapters that read them instead of training.

A run folder's network is the network chapter 5 trains inline at that seed, bit for bit; its checkpoint loads by
name (``vgg=PATH``) in the padding scheme it was trained with; a grid is checked (one set of settings, every run
of the plan present) with one line naming what is wrong; nothing is overwritten. Two processes under ``torchrun``
train the one-process run (the last test).
"""
import json
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist

from padlib import _distributed as D
from padlib import cli
from padlib.errors import PadlibError
from padlib.experiments import runs as R
from padlib.experiments.training import train_plan
from padlib.models import load_model

from .test_distributed_scan import _env

TINY = dict(width=4, depth=2, n_train=96, n_test=40, n_eval=24, batch_size=32, epochs=1)


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    """Two schemes x two seeds of a tiny network, the second seed of zero padding also trained twice as long."""
    folder = tmp_path_factory.mktemp("runs")
    for scheme, seed, epochs in [("zero", 0, 1), ("padding_module", 0, 1), ("zero", 1, 1), ("padding_module", 1, 1),
                                 ("zero", 1, 2)]:
        R.train_run(R.RunSpec(**{**TINY, "scheme": scheme, "seed": seed, "epochs": epochs}), folder, progress=False)
    return folder


def test_a_run_is_the_inline_run_and_its_checkpoint_loads_by_name(tiny_grid):
    grid = R.read_grid(tiny_grid)
    spec = R.RunSpec(**{**TINY, "scheme": "padding_module", "seed": 1})
    (run,) = grid.select([("padding_module", 1, 1)])
    train_set, test_set = spec.data()
    (inline,) = train_plan([("padding_module", 1, 1)], train_set, "vgg", {"width": 4, "depth": 2}, batch_size=32,
                           lr=spec.lr, progress=False, eval_data=test_set.head(24))
    for got, want in ((run.model, inline.model), (run.init_model, inline.init_model)):
        a, b = got.state_dict(), want.state_dict()
        assert a.keys() == b.keys() and any(".scheme.weight" in k for k in a)  # the Padding Module's own weights too
        assert all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(run.result.evaluations, inline.result.evaluations)
    assert not torch.equal(run.model.state_dict()["1.weight"], run.init_model.state_dict()["1.weight"])
    # the checkpoint rebuilds the scheme: zero padding's weights in a Padding Module network give other outputs
    path = tiny_grid / spec.name / "model.pt"
    model = load_model(f"vgg={path}")
    x = test_set.images[:4]
    with torch.no_grad():
        assert torch.equal(model(x), inline.model.eval()(x))
    assert model.padlib_preprocessing.input_size == 16 and model.padlib_preprocessing.mean == (0.0,)
    fresh = load_model(f"vgg={path}", pretrained=False)  # the random-init control of that architecture
    assert fresh.state_dict().keys() == model.state_dict().keys()
    assert not torch.equal(fresh.state_dict()["1.weight"], model.state_dict()["1.weight"])
    m = json.loads((tiny_grid / spec.name / "metrics.json").read_text())
    assert m["processes"] == 1 and m["n_test"] == 40 and m["steps"] == 3 and 0 <= m["test_accuracy"] <= 1


def test_a_run_on_a_folder_of_labelled_images(tmp_path):
    """ImageNet's layout (one sub-folder per class): colour images resized to 32 px, the classes from the folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "images" / cls / f"{i}.png")
    spec = R.RunSpec(scheme="reflect", dataset=str(tmp_path / "images"), n_train=12, n_test=4, n_eval=4, batch_size=4,
                     width=2, depth=2, epochs=1)
    folder = R.train_run(spec, tmp_path / "runs", progress=False)
    grid = R.read_grid(tmp_path / "runs")
    assert grid.settings["dataset"] == str(tmp_path / "images") and "canvases" not in grid.settings
    model = load_model(f"vgg={folder / 'model.pt'}")
    assert model.padlib_preprocessing.input_size == 32 and model.padlib_preprocessing.mean == (0.0, 0.0, 0.0)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 2)
    from padlib.layers.base import PadConv2d

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(isinstance(m, PadConv2d) and m.scheme.name == "reflect" for m in convs)


def test_small_net_names_need_a_padlib_train_checkpoint(tiny_grid, tmp_path):
    run = tiny_grid / "vgg-zero-seed0-e1" / "model.pt"
    with pytest.raises(PadlibError, match=r"^'vgg' is one of the book's small networks.*vgg=PATH"):
        load_model("vgg")
    plain = tmp_path / "plain.pt"
    torch.save(load_model(f"vgg={run}").state_dict(), plain)
    with pytest.raises(PadlibError, match="was not written by 'padlib train'"):
        load_model(f"vgg={plain}")
    with pytest.raises(PadlibError, match=rf"holds a 'vgg' network, not 'resnet': pass vgg={run}"):
        load_model(f"resnet={run}")
    assert cli.main(["audit", f"vgg={run}"]) == 0  # the command line takes it like any NAME=PATH


def test_a_grid_is_checked_and_its_missing_runs_named(tiny_grid, tmp_path):
    grid = R.read_grid(tiny_grid)
    assert len(grid.runs) == 5 and grid.settings["width"] == 4
    s = grid.chapter_settings()  # the chapter's names: the data seed is its seed, the shortest runs its epochs
    assert (s["epochs"], s["seed"], s["n_train"], s["canvas_size"], s["width"]) == (1.0, 0, 96, 16, 4)
    assert grid.describe(grid.runs[:2]).startswith("2 runs read from the runs folder (of 5 in it), trained by padlib "
                                                   "train in 1 process each on cpu")
    plan = [("zero", 0, 1), ("zero", 1, 2), ("zero", 0, 2), ("padding_module", 2, 1)]
    with pytest.raises(PadlibError) as e:
        grid.select(plan)
    msg = str(e.value)
    assert "\n" not in msg and "lacks 2 of the 4 runs" in msg
    assert "zero seed 0 (2 epochs), padding_module seed 2 (1 epochs)" in msg
    assert f"'padlib train --scheme zero --seed 0 --epochs 2 --width 4 --depth 2 --n-train 96 --n-test 40 " \
           f"--batch-size 32 --n-eval 24 --out {tiny_grid}'" in msg
    assert [r.seed for r in grid.select(plan[:2])] == [0, 1]
    # one grid: runs with other settings are refused, naming the setting
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("vgg-zero-seed0-e1", "vgg-zero-seed1-e1"):
        (mixed / name).symlink_to(tiny_grid / name)
    config = json.loads((tiny_grid / "vgg-zero-seed1-e1" / "config.json").read_text())
    other = mixed / "vgg-zero-seed1-e1"
    other.unlink()
    other.mkdir()
    for f in R.RUN_FILES:
        (other / f).symlink_to(tiny_grid / "vgg-zero-seed1-e1" / f)
    (other / "config.json").unlink()
    (other / "config.json").write_text(json.dumps({**config, "lr": 0.001}))
    with pytest.raises(PadlibError, match=r"not one grid: 'vgg-zero-seed0-e1' has lr 0.006, 'vgg-zero-seed1-e1' "
                                          r"has 0.001"):
        R.read_grid(mixed)
    (other / "curve.csv").unlink()
    with pytest.raises(PadlibError, match=r"is not a complete run folder \(no curve.csv\)"):
        R.read_grid(mixed)
    with pytest.raises(PadlibError, match="holds no classification runs; train them with padlib train --out"):
        R.read_grid(_empty(tmp_path))
    with pytest.raises(PadlibError, match="does not exist"):
        R.read_grid(tmp_path / "nowhere")


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".vgg-zero-seed0-e1.tmp1234").mkdir()  # a run still being written is not a run
    return tmp_path / "empty"


def test_runs_are_never_overwritten_and_bad_settings_refused_before_work(tiny_grid, tmp_path, capsys):
    before = (tiny_grid / "vgg-zero-seed0-e1" / "model.pt").read_bytes()
    with pytest.raises(PadlibError, match="exists already; runs are never overwritten"):
        R.train_run(R.RunSpec(**{**TINY, "scheme": "zero", "seed": 0}), tiny_grid)
    assert (tiny_grid / "vgg-zero-seed0-e1" / "model.pt").read_bytes() == before
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PadlibError, match="is a file; pass a folder"):
        R.train_run(R.RunSpec(**TINY), tmp_path / "afile")
    for kwargs, match in [({"scheme": "bogus"}, "unknown padding scheme 'bogus'"),
                          ({"model": "vgg16"}, "unknown small network 'vgg16'"),
                          ({"width": 0}, "width must be a whole number >= 1, got 0"),
                          ({"lr": -1.0}, "lr must be a number > 0"),
                          ({"n_eval": 50, "n_test": 40}, r"n_eval \(50\) .* at most n_test \(40\)"),
                          ({"dataset": str(tmp_path / "none")}, "neither 'digits', 'cifar10' nor a folder")]:
        with pytest.raises(PadlibError, match=match):
            R.RunSpec(**{**TINY, **kwargs})
    spec = R.RunSpec(**TINY)  # 96 + 40 canvases of 16 x 16 in float32: 139 264 bytes
    assert spec.data_bytes() == 136 * 16 * 16 * 4
    spec.check_memory(136 * 16 * 16 * 4)
    with pytest.raises(PadlibError, match=r"would hold 0.0 GB in memory \(136 float32 images\), over the 0.0 GB allowed "
                                          r".*: lower n_train to at most 60"):
        spec.check_memory(100 * 16 * 16 * 4)
    for args, flag in [(["--n-eval", "50", "--n-test", "40"], "--n-eval (50)"), (["--epochs", "0"], "--epochs"),
                       (["--n-train", "10000000000"], "--n-train to at most"),
                       (["--scheme", "bogus"], "--scheme"), (["--batch-size", "0"], "--batch-size")]:
        argv = ["train", "--scheme", "zero", *args, "--out", str(tmp_path / "cli")]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and flag in err, err
    assert not (tmp_path / "cli").exists()


def test_the_commands_summary_counts_steps_and_processes():
    from padlib.cli_train import _count, _processes

    assert (_count(1, "step"), _count(2, "step"), _count(0, "step")) == ("1 step", "2 steps", "0 steps")
    assert (_processes(1), _processes(2)) == ("1 process", "2 processes")


def test_a_specs_command_trains_that_spec():
    spec = R.RunSpec(scheme="partial", seed=7, epochs=3.5, width=16, lr=0.001, data_seed=2,
                     canvases={**R.DIGIT_CANVASES, "cut_range": [0.1, 0.3], "background": "black"})
    argv = shlex.split(spec.command())[1:]
    assert argv[:5] == ["train", "--scheme", "partial", "--seed", "7"]
    args = cli.build_parser().parse_args(argv)
    from padlib.cli_train import spec_from_args

    assert spec_from_args(args) == spec
    assert R.RunSpec().command() == "padlib train --scheme zero --seed 0"


def test_synced_batchnorm_changes_nothing_in_one_process():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    with D.synced_batchnorm(net):
        assert type(net[1]) is torch.nn.BatchNorm2d
    with pytest.raises(RuntimeError), D.synced_batchnorm(net):
        raise RuntimeError("boom")
    assert type(net[1]) is torch.nn.BatchNorm2d


def test_the_global_batch_must_split_over_the_processes(monkeypatch):
    from padlib.experiments import training

    monkeypatch.setattr(training, "world", lambda: (0, 3))
    train_set, _ = R.RunSpec(**TINY).data()
    with pytest.raises(PadlibError, match="batch_size 32 is the global batch and must split evenly over the 3 "
                                          "processes; use a multiple of 3"):
        training.train(torch.nn.Linear(1, 1), train_set, batch_size=32)


def test_chapter_4_tests_detectors_read_from_a_runs_folder_as_if_trained_inline(tmp_path, capsys):
    """``padlib train-detector`` runs (zero and circular padding at two seeds, at two sizes, and the noisy-top control, which
    load_model refuses but chapter 4 rebuilds): the detection study on them equals the study that trains inline,
    table for table; a missing detector is named with its command."""
    from padlib.experiments.ch4_detection import detection_study

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the study trains on one thread per network
    try:
        common = dict(sizes=[96, 97], schemes=["zero", "circular"], seeds=[0, 1], width=2, steps=4, step=48,
                      n_train=64, n_backgrounds=1, workers=1, progress=False, reach=False)
        inline = detection_study(**common)
        runs = tmp_path / "runs"
        for size in (96, 97):
            for scheme in ("zero", "circular"):
                for seed in (0, 1):
                    argv = ["train-detector", "--scheme", scheme, "--size", str(size), "--seed", str(seed),
                            "--width", "2", "--steps", "4", "--n-train", "64", "--out", str(runs)]
                    assert cli.main(argv) == 0
        with pytest.raises(PadlibError, match=r"lacks 2 of the 10 detectors .*: noisy top size 96 seed 0, noisy top "
                                              r"size 96 seed 1; .*'padlib train-detector --scheme noisy-top --size 96 "
                                              r"--seed 0 --width 2 --steps 4 --n-train 64 --out "):
            detection_study(**common, trained=R.read_grid(runs, task="detection"))
        for seed in (0, 1):
            R.train_detector_run(R.DetectorRunSpec(scheme="noisy top", seed=seed, width=2, steps=4, n_train=64), runs,
                                 progress=False)
        read = detection_study(**{**common, "width": 8, "steps": 300, "n_train": 2048}, trained=R.read_grid(runs, task="detection"))
    finally:
        torch.set_num_threads(threads)
    for name in ("summary", "maps", "curves", "energy"):
        got, want = getattr(read, name), getattr(inline, name)
        pd.testing.assert_frame_equal(got.drop(columns="cpu_seconds", errors="ignore"),
                                      want.drop(columns="cpu_seconds", errors="ignore"), obj=name)
    assert (read.settings["width"], read.settings["steps"]) == (2, 4)  # the runs' settings, not the arguments
    assert read.settings["trained_by"].startswith("padlib train-detector") and inline.settings["trained_by"] == "here"
    with pytest.raises(PadlibError, match="noisy top' is not a padding scheme padlib can rebuild"):
        load_model(f"detector={runs / 'detector-noisy-top-size96-seed0' / 'model.pt'}")
    det = load_model(f"detector={runs / 'detector-circular-size97-seed1' / 'model.pt'}")
    assert det.padlib_preprocessing.input_size == 97 and det(torch.rand(1, 1, 97, 97)).shape == (1, 13, 13)


def test_a_detector_with_a_padding_module_trains_the_modules_own_predictors():
    from padlib.experiments.ch4_detection import detector_network, train_detector
    from padlib.layers.padding_module import padding_modules

    net = detector_network("padding_module", 0, width=2)
    before = [p.detach().clone() for _, m in padding_modules(net) for p in m.parameters()]
    train_detector(net, 96, 0, steps=3, n_train=32)
    after = [p.detach() for _, m in padding_modules(net) for p in m.parameters()]
    assert len(before) == len(after) > 0 and all(not torch.equal(a, b) for a, b in zip(before, after))


# ---------------------------------------------------------------------------------------------------------
# Two processes under torchrun.

def test_torchrun_training_equals_the_one_process_run(tmp_path):
    """``torchrun --nproc_per_node 2 -m padlib train`` (each process half of every batch of 32, BatchNorm over the
    whole batch, the Padding Module's own loss too): the one-process run's losses, learning curve and weights."""
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    spec = R.RunSpec(scheme="padding_module", seed=3, model="resnet", width=4, depth=2, n_train=192, n_test=64,
                     n_eval=64, batch_size=32, epochs=2, lr=0.01)
    flags = shlex.split(spec.command())[2:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "padlib",
           "train", *flags, "--out", str(tmp_path / "two")]
    r = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"torchrun failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert r.stdout.count("wrote ") == 1 and "after 12 steps of 32 (2 processes," in r.stdout
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (OMP_NUM_THREADS=1)
    try:
        one = R.train_run(spec, tmp_path / "one", progress=False)
    finally:
        torch.set_num_threads(threads)
    two = tmp_path / "two" / spec.name
    assert json.loads((two / "metrics.json").read_text())["processes"] == 2
    h1, h2 = pd.read_csv(one / "history.csv"), pd.read_csv(two / "history.csv")
    assert len(h1) == len(h2) == 12 and (h1.module_loss > 0).all()
    np.testing.assert_allclose(h2.loss, h1.loss, rtol=1e-4)
    np.testing.assert_allclose(h2.module_loss, h1.module_loss, rtol=1e-4)
    c1, c2 = pd.read_csv(one / "curve.csv"), pd.read_csv(two / "curve.csv")
    assert list(c1.step) == list(c2.step) == [0, 6, 12]
    assert (c1.accuracy - c2.accuracy).abs().max() <= 2 / 64  # at most two of the 64 held-out images flip
    a = load_model(f"resnet={one / 'model.pt'}").state_dict()
    b = load_model(f"resnet={two / 'model.pt'}").state_dict()
    for k in a:  # weights, BatchNorm running statistics and batch counts
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4, msg=k)
