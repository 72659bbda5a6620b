"""Data sets, small models and the training loop: deterministic, placement metadata true to the pixels."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from padlib.errors import PadlibError, ProbeDataError
from padlib.layers import padding_scheme_of
from padlib.padding import padded_convs
from padlib.experiments.digits import REGION_NAMES, ImageSet, describe_source_digits, source_digits, cifar10, digits_on_canvas, digits_train_test, image_folder, load_dataset
from padlib.experiments.training import accuracy_by_seed, accuracy_summary, evaluate, learning_curves, paired_comparison, step_cost, train, default_workers, interleaved_step_cost, train_schemes, training_memory_format, training_step
from padlib.experiments.ch5_schemes import border_concentration, border_split, border_table
from padlib.chapters.ch5_schemes import pan_findings, paired_lines, paired_word
from padlib.experiments.smallnets import resnet_small, small_model, vgg_small
from tests.isolation import run_isolated


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_digits_on_canvas_is_deterministic_and_seeded():
    a, b = digits_on_canvas(64, seed=3), digits_on_canvas(64, seed=3)
    assert torch.equal(a.images, b.images) and a.meta.equals(b.meta)
    assert not torch.equal(a.images, digits_on_canvas(64, seed=4).images)
    assert a.images.shape == (64, 1, 32, 32) and a.images.min() >= 0 and a.images.max() <= 1


def test_placement_metadata_matches_the_pixels():
    d = digits_on_canvas(200, canvas_size=32, digit_size=16, seed=0, border_fraction=0.5)
    ink = d.images[:, 0] > 0.2
    for i in range(len(d)):
        rows = torch.nonzero(ink[i].any(1)).flatten()
        cols = torch.nonzero(ink[i].any(0)).flatten()
        m = d.meta.iloc[i]
        assert m.top_gap == rows.min() and m.bottom_gap == 31 - rows.max()
        assert m.left_gap == cols.min() and m.right_gap == 31 - cols.max()
        assert m.border_distance == min(m.top_gap, m.bottom_gap, m.left_gap, m.right_gap)
        assert m.region == 2 * int(m.cy >= 15.5) + int(m.cx >= 15.5)
    touching = (d.meta.border_distance == 0).mean()
    assert touching >= 0.4  # half pushed against a side, plus those placed there by chance
    assert set(d.meta.region) == {0, 1, 2, 3} and len(REGION_NAMES) == 4


def test_train_and_test_use_disjoint_source_digits_and_share_normalisation():
    train_set, test_set = digits_train_test(300, 100, seed=0)
    assert not set(train_set.meta.digit_index) & set(test_set.meta.digit_index)
    assert test_set.mean == train_set.mean and test_set.std == train_set.std
    assert test_set.targets("region").shape == (100,)
    with pytest.raises(PadlibError, match="no 'nope' column"):
        test_set.targets("nope")


@pytest.mark.parametrize("builder", [vgg_small, resnet_small])
@pytest.mark.parametrize("depth", [2, 3])
def test_small_models_shapes_and_padded_convs(builder, depth):
    model = builder(in_channels=3, num_classes=7, width=4, depth=depth)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    convs = padded_convs(model)
    assert convs and all(padding_scheme_of(c) == "zero" for _, c in convs)


def test_training_is_deterministic_and_learns():
    data = digits_on_canvas(64, canvas_size=24, digit_size=12, seed=0)  # small enough to fit quickly
    runs = []
    for _ in range(2):
        model = small_model("vgg", data, seed=1, width=8, depth=2)
        runs.append(train(model, data, epochs=12, batch_size=16, lr=1e-2, seed=5, progress=False, eval_data=data))
    h0, h1 = runs[0].history, runs[1].history
    assert h0["loss"].tolist() == h1["loss"].tolist()
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(p, q)
    assert h0["loss"].tail(8).mean() < 0.85 * h0["loss"].head(4).mean()
    assert (h0["seconds"] > 0).all() and runs[0].seconds_per_step > 0
    ev = runs[0].evaluations
    assert ev["step"].iloc[0] == 0 and ev["accuracy"].iloc[-1] > ev["accuracy"].iloc[0]


def test_train_schemes_share_the_initialisation_per_seed():
    data = digits_on_canvas(64, canvas_size=24, digit_size=12, seed=0)
    runs = train_schemes(["zero", "circular", "padding_module"], [0, 1], data, model="resnet",
                         model_kwargs={"width": 4, "depth": 2}, epochs=1, batch_size=32, progress=False)
    assert [(r.scheme, r.seed) for r in runs] == [(s, seed) for seed in (0, 1) for s in
                                                  ("zero", "circular", "padding_module")]
    w = {(r.scheme, r.seed): r.init_model[1].weight for r in runs}  # the stem conv, before training
    assert torch.equal(w["zero", 0], w["circular", 0]) and torch.equal(w["zero", 0], w["padding_module", 0])
    assert not torch.equal(w["zero", 0], w["zero", 1])
    assert all(padding_scheme_of(c) == "circular" for _, c in padded_convs(runs[1].model))
    costs = step_cost(runs)
    assert costs.set_index("scheme").loc["zero", "ratio_to_zero"] == 1.0
    assert set(learning_curves(runs).columns) >= {"scheme", "seed", "step", "accuracy"}


def test_train_schemes_in_worker_processes_gives_the_same_networks():
    """Runs are independent and seeded: two spawned worker processes train exactly what one process trains."""
    data = digits_on_canvas(48, canvas_size=16, digit_size=8, seed=0)
    kwargs = dict(model="resnet", model_kwargs={"width": 4, "depth": 2}, epochs=1, batch_size=16, progress=False)
    serial = train_schemes(["zero", "padding_module"], [0, 1], data, **kwargs)
    parallel = train_schemes(["zero", "padding_module"], [0, 1], data, workers=2, **kwargs)
    assert [(r.scheme, r.seed) for r in parallel] == [(r.scheme, r.seed) for r in serial]
    for a, b in zip(serial, parallel):
        assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
        assert a.result.history["loss"].tolist() == b.result.history["loss"].tolist()
    assert padding_scheme_of(padded_convs(parallel[1].model)[0][1]) == "padding_module"
    with pytest.raises(PadlibError, match="workers must be >= 1"):
        train_schemes(["zero"], [0], data, workers=0, **kwargs)
    assert default_workers("cuda") == 1 and 1 <= default_workers("cpu", threads=1) <= 4
    assert default_workers("cpu", threads=10_000) == 1


def test_interleaved_step_cost_times_every_scheme_against_zero():
    data = digits_on_canvas(16, canvas_size=16, digit_size=8, seed=0)
    cost = interleaved_step_cost(["zero", "circular", "padding_module"], data, model="resnet",
                                 model_kwargs={"width": 4, "depth": 2}, batch_size=8, repeats=2).set_index("scheme")
    assert list(cost.index) == ["zero", "circular", "padding_module"]
    assert cost.loc["zero", "ratio_to_zero"] == 1.0 and (cost["seconds_per_step"] > 0).all()
    assert "ratio_to_zero" not in interleaved_step_cost("circular", data, model="resnet", repeats=1,
                                                        model_kwargs={"width": 4, "depth": 2}).columns
    with pytest.raises(PadlibError, match="repeats"):
        interleaved_step_cost(["zero"], data, repeats=0)


def _train_thin_stride_two_shortcut(steps: int, user_channels_last: bool) -> int:
    """The pattern that corrupts oneDNN's heap on some CPUs in channels-last memory (weight gradient of a 1x1
    stride-2 conv from 4 channels, a ResNet shortcut), through padlib's own training step; with
    ``user_channels_last`` the caller hands over a model and batches already in channels-last. Then a small
    ResNet whose shortcut has that shape, trained by padlib.experiments.training.train. Returns the steps taken."""
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 8, 1, 2, 0, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if user_channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    for _ in range(steps):
        x = torch.randn(32, 4, 24, 24)
        if user_channels_last:
            x = x.to(memory_format=torch.channels_last)
        training_step(net, opt, x, torch.randint(0, 8, (32,)))
    assert net[0].weight.stride() == (4, 1, 1, 1)  # trained in (N, C, H, W) on CPU, whatever the caller handed over
    data = digits_on_canvas(64, canvas_size=24, digit_size=12, seed=0)
    model = small_model("resnet", data, width=4, depth=2)
    result = train(model, data, epochs=2, batch_size=32, progress=False)
    return steps + len(result.history)


@pytest.mark.parametrize("user_channels_last", [False, True])
def test_cpu_training_never_takes_the_channels_last_onednn_weight_gradient(user_channels_last):
    """Regression (an abort, a bus error or a hang on AMD EPYC, torch 2.14.1): in its own process with a time
    limit, so that on an affected CPU a crash fails this test and not the whole run."""
    steps = run_isolated(_train_thin_stride_two_shortcut, 200, user_channels_last, timeout=180,
                         what="padlib's training step on a 1x1 stride-2 conv from 4 channels")
    assert steps == 204


def test_training_memory_format_is_nchw_on_cpu_and_channels_last_is_refused_there():
    assert training_memory_format("cpu") == torch.contiguous_format
    assert training_memory_format("cuda") == torch.channels_last
    net = vgg_small(width=4, depth=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    with pytest.raises(PadlibError, match="channels_last=True is refused on CPU"):
        training_step(net, opt, x, y, channels_last=True)
    with pytest.raises(PadlibError, match="channels_last must be bool"):
        training_step(net, opt, x, y, channels_last="yes")
    loss, _ = training_step(net, opt, x, y, channels_last=False)
    assert np.isfinite(loss)


def test_paired_comparison_and_summaries_on_known_numbers():
    per_seed = pd.DataFrame({"scheme": ["zero"] * 3 + ["reflect"] * 3, "seed": [0, 1, 2] * 2,
                             "accuracy": [0.80, 0.70, 0.90, 0.82, 0.721, 0.919]})
    pc = paired_comparison(per_seed).set_index("scheme")
    assert pc.loc["reflect", "mean_diff_vs_zero"] == pytest.approx(0.02)
    assert pc.loc["reflect", "wins"] == 3 and pc.loc["reflect", "ci_low"] > 0  # small, consistent gain
    summ = accuracy_summary(per_seed).set_index("scheme")
    assert summ.loc["zero", "mean"] == pytest.approx(0.8) and summ.loc["zero", "n_seeds"] == 3
    preds = pd.DataFrame({"scheme": "zero", "seed": 0, "border_distance": [0, 0, 5, 9],
                          "correct": [True, False, True, True]})
    by = accuracy_by_seed(preds, "border_distance", bins=[0, 1, 100])
    assert by["accuracy"].tolist() == [0.5, 1.0]
    with pytest.raises(PadlibError, match="baseline"):
        paired_comparison(per_seed[per_seed.scheme == "reflect"])


def test_evaluate_returns_one_row_per_sample():
    data = digits_on_canvas(20, seed=0)
    model = small_model("vgg", data, width=4, depth=2)
    df = evaluate(model, data, "region")
    assert len(df) == 20 and set(df.columns) >= {"target", "prediction", "correct", "border_distance"}
    assert (df["target"] == data.meta["region"]).all()


def test_image_folder_and_load_dataset(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = image_folder(tmp_path, size=16)
    assert d.images.shape == (10, 3, 16, 16) and d.classes == ["cats", "dogs"] and len(d.mean) == 3
    tr, te = load_dataset(str(tmp_path), n_train=6, n_test=4, size=16)
    assert len(tr) == 6 and len(te) == 4 and te.mean == tr.mean
    with pytest.raises(ProbeDataError, match="does not exist"):
        image_folder(tmp_path / "missing")


def test_cifar10_offline_fails_with_a_clear_message(tmp_path):
    with pytest.raises(ProbeDataError, match="CIFAR-10"):
        cifar10(root=tmp_path, download=False)


def test_bad_parameters_raise():
    with pytest.raises(ProbeDataError):
        digits_on_canvas(0)
    with pytest.raises(ProbeDataError):
        digits_on_canvas(4, canvas_size=16, digit_size=20)
    with pytest.raises(PadlibError, match="unknown small model"):
        small_model("alexnet", digits_on_canvas(4))


def _fake_run(scheme, seed, seconds=0.1):
    from padlib.experiments.training import SchemeRun, TrainResult

    hist = pd.DataFrame({"step": [1, 2, 3], "seconds": [seconds] * 3})
    return SchemeRun(scheme, seed, None, None, TrainResult(None, hist, pd.DataFrame()))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.mark.parametrize("call, error, match", [
    (lambda d, f: train_schemes("zeroo", [0], d, epochs=0.1, progress=False), PadlibError, "'zeroo'"),
    (lambda d, f: train_schemes(["zero"], "0", d, progress=False), PadlibError, "seeds must be"),
    (lambda d, f: train(small_model("vgg", d, width=4, depth=2), d, epochs="2", progress=False), PadlibError,
     "epochs must be"),
    (lambda d, f: train(small_model("vgg", d, width=4, depth=2), d, epochs=0, progress=False), PadlibError,
     "epochs must be > 0"),
    (lambda d, f: load_dataset(None, 10, 5), PadlibError, "dataset must be"),
    (lambda d, f: load_dataset("digits", "10", 5), PadlibError, "n_train must be"),
    (lambda d, f: cifar10(split="val", download=False), ProbeDataError, "split must be"),
    (lambda d, f: load_dataset(str(f), n_train=5, n_test=4, size=8), ProbeDataError, "holds 6 images"),
    (lambda d, f: step_cost([_fake_run("reflect", 0)]), PadlibError, "baseline scheme 'zero'"),
])
def test_bad_input_gives_one_line_errors(call, error, match, tiny_folder):
    data = digits_on_canvas(16, canvas_size=16, digit_size=8)
    with pytest.raises(error, match=match):
        call(data, tiny_folder)


def test_a_single_scheme_name_is_one_scheme():
    data = digits_on_canvas(16, canvas_size=16, digit_size=8)
    runs = train_schemes("circular", 0, data, model_kwargs={"width": 4, "depth": 2}, epochs=0.5, progress=False)
    assert [(r.scheme, r.seed) for r in runs] == [("circular", 0)]


def test_corrupt_image_in_a_folder_names_the_file(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "a" / "ok.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ProbeDataError, match="broken.png"):
        image_folder(tmp_path, size=8)


def test_source_digits_describes_the_data():
    images, labels, about = source_digits(4, seed=0)
    assert len(images) == 4 and all(0 <= im.min() and im.max() <= 1 for im in images)
    assert about["n_digits"] == 1797 and about["height"] == 8 and about["classes"] == 10
    assert "1797 handwritten digits of 8x8" in describe_source_digits(about)


def test_paired_word_and_lines_follow_the_interval():
    paired = pd.DataFrame({"scheme": ["a", "b", "c"], "mean_diff_vs_zero": [0.05, -0.04, 0.01],
                           "ci_low": [0.01, -0.07, -0.02], "ci_high": [0.09, -0.01, 0.04], "wins": [3, 0, 2],
                           "n_seeds": [3, 3, 3], "p_holm": [0.02, 0.04, 0.6]})
    assert paired_word(0.01, 0.09, 0.05) == "interval above 0" and paired_word(-0.07, -0.01, -0.04) == "interval below 0"
    assert paired_word(-0.02, 0.04, 0.01) == "interval includes 0"
    assert paired_word(float("nan"), float("nan"), 0.1) == "unknown (one seed)"
    lines = paired_lines(paired)
    assert lines[0].endswith("interval above 0") and lines[1].endswith("interval below 0")
    assert lines[2].endswith("interval includes 0") and "wins 3/3, Holm p 0.02" in lines[0]
    assert not any(w in " ".join(lines) for w in ("better", "worse", "supported", "holds"))


def test_border_helpers():
    # scheme "edge" gains only on touching digits (border_distance 0), scheme "flat" everywhere alike
    rows = []
    for seed, bump in ((0, 0.0), (1, 0.1), (2, 0.05)):
        for scheme in ("zero", "edge", "flat"):
            for i in range(40):
                touching = i < 20
                p = 0.5 + bump + (0.3 if scheme == "edge" and touching else 0) + (0.15 if scheme == "flat" else 0)
                rows.append({"scheme": scheme, "seed": seed, "border_distance": 0 if touching else 5,
                             "correct": (i % 20) < round(20 * p) + (seed if scheme == "edge" else 0)})
    preds = pd.DataFrame(rows)
    conc = border_concentration(preds).set_index("scheme")
    assert conc.loc["edge", "verdict"] == "concentrated at the border" and conc.loc["edge", "ci_low"] > 0
    assert conc.loc["flat", "verdict"].startswith("not concentrated")
    by_bin, summary, touching = border_split(preds, [0, 1, 100])
    assert list(dict.fromkeys(summary.border_distance.astype(str))) == ["[0, 1)", "[1, 100)"]
    assert set(touching.columns) == {"scheme", "seed", "accuracy"} and len(touching) == 9
    table = border_table(summary)
    assert "±" in table.iloc[0, 0] and list(table.index) == ["zero", "edge", "flat"]


def test_pan_findings_name_the_constructed_zeros():
    rows = []
    for scheme, init, trained in (("zero", 60, 50), ("replicate", 0, 0), ("circular", 0, 1), ("padding_module", 0, 0)):
        for seed in (0, 1):
            rows += [{"scheme": scheme, "seed": seed, "state": "init", "filters": 100, "pans": init + seed * (init > 0),
                      "share_pct": init},
                     {"scheme": scheme, "seed": seed, "state": "trained", "filters": 100, "pans": trained,
                      "share_pct": trained}]
    lines = {l.split()[0]: l for l in pan_findings(pd.DataFrame(rows))}
    assert "fewer after training" in lines["zero"] and "by construction" not in lines["zero"]
    assert "by construction" in lines["replicate"] and "by construction" in lines["circular"]
    assert "pads exactly as replicate" in lines["padding_module"] and "is a measurement" in lines["padding_module"]
    assert "no filter's border response" in lines["padding_module"]
    assert lines["PANs"].endswith("zero 60.5") and lines["training"].startswith("training lowered the count in every "
                                                                                 "seed for: zero;")


def test_image_set_head():
    d = digits_on_canvas(10, canvas_size=16, digit_size=8)
    assert len(d.head(4)) == 4 and len(d.head(50)) == 10 and isinstance(d.head(1), ImageSet)


def test_textured_canvases_cut_digits_and_keep_train_and_test_photographs_apart():
    from padlib.experiments.digits import digits_on_canvas, texture_backgrounds

    tex_train, names_train = texture_backgrounds(40, 32, seed=0, split="train")
    tex_test, names_test = texture_backgrounds(40, 32, seed=0, split="test")
    assert not set(names_train) & set(names_test)  # disjoint photographs
    assert float(tex_train.min()) >= 0.0 and float(tex_train.max()) <= 0.6 + 1e-6
    plain = digits_on_canvas(400, 40, 12, seed=1, border_fraction=0.2, cut_fraction=0.3)
    textured = digits_on_canvas(400, 40, 12, seed=1, border_fraction=0.2, cut_fraction=0.3, background="texture")
    cut = plain.meta["cut"]
    assert 0.22 < cut.mean() < 0.38 and (plain.meta.loc[cut, "border_distance"] < 0).all()
    assert (plain.meta.loc[~cut, "border_distance"] >= 0).all()
    assert plain.meta.equals(textured.meta)  # the placement does not depend on the background
    ink = plain.images > 0
    assert torch.allclose(textured.images[ink], torch.maximum(textured.images[ink], plain.images[ink]))
    assert float((textured.images[~ink] > 0).float().mean()) > 0.9  # the background is no longer black
    with pytest.raises(ProbeDataError, match="background must be"):
        digits_on_canvas(4, background="noise")
    with pytest.raises(ProbeDataError, match="add up to at most 1"):
        digits_on_canvas(4, border_fraction=0.6, cut_fraction=0.6)


def _curves(shapes: dict, seeds=(0, 1, 2), epochs: int = 8, noise: float = 0.0) -> pd.DataFrame:
    """Tidy learning curves from {scheme: f(epoch) -> accuracy}, one evaluation per epoch."""
    rng = np.random.default_rng(0)
    rows = [{"scheme": s, "seed": seed, "step": e, "epoch": float(e), "accuracy": f(e) + noise * rng.standard_normal()}
            for s, f in shapes.items() for seed in seeds for e in range(epochs + 1)]
    return pd.DataFrame(rows)


def test_curve_stats_and_convergence_find_a_curve_that_still_rises():
    from padlib.chapters.ch5_schemes import convergence_lines
    from padlib.experiments.training import convergence_table, curve_stats

    curves = _curves({"flat": lambda e: 0.9 if e >= 4 else 0.2 * e + 0.1,   # learns, then flat
                      "rising": lambda e: 0.1 * e,                          # still rising 0.1 per epoch at the end
                      "fast": lambda e: 0.9 if e >= 1 else 0.1})            # same end as flat, learned sooner
    st = curve_stats(curves, last_fraction=0.25).set_index(["scheme", "seed"])
    assert st.loc[("flat", 0), "final"] == pytest.approx(0.9) and st.loc[("flat", 0), "late_gain"] == pytest.approx(0)
    assert st.loc[("rising", 1), "late_gain"] == pytest.approx(0.2)  # slope 0.1 over the last 2 of 8 epochs
    assert st.loc[("rising", 1), "auc"] == pytest.approx(0.4)  # a straight line from 0 to 0.8
    assert st.loc[("fast", 0), "auc"] > st.loc[("flat", 0), "auc"] and st.loc[("fast", 0), "final"] == pytest.approx(0.9)
    noisy = curve_stats(_curves({"flat": lambda e: 0.9, "rising": lambda e: 0.1 * e}, noise=0.002))
    conv = convergence_table(noisy, tolerance=0.01)
    table = conv.set_index("scheme")
    assert bool(table.loc["flat", "flat"]) and not bool(table.loc["rising", "flat"])
    assert not bool(table.loc["all", "flat"]) and table.loc["all", "n_runs"] == 6
    text = "\n".join(convergence_lines(conv))
    catching = convergence_table(curve_stats(_curves({"zero": lambda e: 0.9, "catching": lambda e: 0.1 * e},
                                                     noise=0.002)), tolerance=0.01).set_index("scheme")
    assert catching.loc["catching", "vs_baseline"] == pytest.approx(0.2, abs=0.01)
    assert catching.loc["catching", "vs_ci_low"] > 0 and np.isnan(catching.loc["zero"].get("vs_baseline", np.nan))
    assert "NOT shown flat" in text and "flat at the end" in text and "last 25% of training" in text
    with pytest.raises(PadlibError, match="last_fraction"):
        curve_stats(curves, last_fraction=1.5)
    from padlib.experiments.training import slowest_to_converge

    assert slowest_to_converge(curve_stats(curves)) == "rising"  # the smallest area under its curve
    assert slowest_to_converge(curve_stats(curves), exclude=("rising",)) == "flat"


def test_holm_paired_comparison_and_resolvable_effect():
    from padlib.stats import holm_adjust
    from padlib.stats import resolvable_effect

    assert holm_adjust([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, float("nan")]).tolist() == [1.0, 1.0]
    # "big" gains 0.02 at every seed (small spread), "none" nothing; "other" is left out of the family
    rows = []
    for seed, jitter in enumerate([0.001, -0.002, 0.0015, -0.001, 0.0005]):
        for scheme, acc in (("zero", 0.90), ("big", 0.92 + jitter), ("none", 0.90 - jitter),
                            ("replicate", 0.91 + jitter), ("other", 0.91 - jitter)):
            rows.append({"scheme": scheme, "seed": seed, "accuracy": acc})
    per_seed = pd.DataFrame(rows)
    paired = paired_comparison(per_seed, exclude=("other",)).set_index("scheme")
    assert "other" not in paired.index and len(paired) == 3
    assert paired.loc["big", "p_holm"] < 0.05 and paired.loc["none", "p_holm"] > 0.05
    assert paired.loc["big", "p_holm"] >= paired.loc["big", "p_value"]
    # Holm over a smaller family adjusts less
    two = paired_comparison(per_seed, exclude=("other", "replicate")).set_index("scheme")
    assert two.loc["big", "p_holm"] <= paired.loc["big", "p_holm"] and len(two) == 2
    res = resolvable_effect(paired.reset_index(), per_seed)
    d = np.array([0.001, -0.002, 0.0015, -0.001, 0.0005])
    assert res["sd"] == pytest.approx(np.sqrt(3 * (d ** 2).sum() / (15 - 3)))  # 'replicate' shares the jitter
    from scipy import stats

    assert res["half_width"] == pytest.approx(stats.t.ppf(0.975, 4) * res["sd"] / np.sqrt(5))
    assert res["mde"] > res["half_width"] and res["n_schemes"] == 3


def _paired_row(scheme, mean, low, high, p_holm, n=20):
    return {"scheme": scheme, "mean_diff_vs_zero": mean, "ci_low": low, "ci_high": high, "half_width": (high - low) / 2,
            "wins": n // 2, "losses": n // 2, "n_seeds": n, "p_value": p_holm / 2, "p_holm": p_holm}


@pytest.mark.parametrize("pm, partial, expected", [
    # the Padding Module (claimed +0.0123) and partial padding (claimed +0.0032): both sides of every boundary
    ((0.008, 0.003, 0.013, 0.01), (0.004, 0.001, 0.007, 0.02), ("supported", "supported")),
    ((0.008, 0.003, 0.013, 0.06), (0.004, 0.001, 0.007, 0.06), ("inconclusive", "inconclusive")),  # p above 0.05
    ((-0.008, -0.013, -0.003, 0.01), (-0.009, -0.014, -0.004, 0.01), ("contradicted", "contradicted")),
    ((0.002, -0.004, 0.012, 0.4), (0.000, -0.004, 0.003, 0.9), ("contradicted", "contradicted")),  # short of claim
    ((0.004, -0.004, 0.0125, 0.4), (0.000, -0.004, 0.0033, 0.9), ("inconclusive", "inconclusive")),  # reaches it
])
def test_scheme_tests_judge_each_primary_test_against_the_papers_number(pm, partial, expected):
    from padlib.chapters.ch5_schemes import CLAIMED_GAIN, chapter_findings_box, scheme_tests

    paired = pd.DataFrame([_paired_row("padding_module", *pm), _paired_row("partial", *partial)])
    tests = scheme_tests(paired).set_index("scheme")
    assert tuple(tests.loc[["padding_module", "partial"], "verdict"]) == expected
    assert tests.loc["partial", "claimed"] == CLAIMED_GAIN["partial"] == 0.0032
    # the detectable effect: at the first Holm step of two tests (alpha 0.025), larger than the interval's half-width
    from padlib.stats import detectable_effect
    assert tests.loc["partial", "detectable"] == pytest.approx(
        detectable_effect(partial[1], partial[2], n=20, alpha=0.025))
    box = chapter_findings_box(tests.reset_index(), scale="planted")
    assert [f.verdict for f in box] == list(expected)
    assert "Holm over the 2 primary tests (padding_module, partial)" in box[0].test
    assert "1.23" in box[0].claimed and "74.00" in box[1].claimed and "ImageNet" in box[1].claimed
    assert f"adjusted p {pm[3]:.2g}" in box[0].test and f"{pm[0]:+.4f} [{pm[1]:+.4f}, {pm[2]:+.4f}]" in box[0].observed
    assert "not a test of the paper's own number" in box[0].note and box[0].detectable
    from padlib.chapters.ch5_schemes import scheme_tests_table
    table = scheme_tests_table(tests.reset_index())
    assert list(table.index) == ["padding module", "partial"] and table.loc["partial", "claimed"] == 0.0032
    assert table.loc["padding module", "Holm p"] == f"{pm[3]:.2g}" and "verdict" not in table.columns


def test_findings_box_quotes_the_longer_runs_and_one_seed_is_inconclusive():
    from padlib.chapters.ch5_schemes import chapter_findings_box, scheme_tests

    paired = pd.DataFrame([_paired_row("padding_module", 0.008, 0.003, 0.013, 0.01),
                           _paired_row("partial", -0.01, -0.02, 0.0, 0.2)])
    longer = pd.DataFrame({"scheme": ["zero", "partial", "padding_module"], "factor": [2.0] * 3,
                           "gain": [0.004, 0.012, 0.001], "ci_low": [-0.01] * 3, "ci_high": [0.03] * 3,
                           "n_seeds": [2, 2, 1], "p_value": [0.1] * 3,
                           "per_seed": [[0.002, 0.006], [0.010, 0.014], [0.001]],
                           "vs_baseline": [np.nan, 0.008, -0.002], "vs_baseline_per_seed": [[], [0.008, 0.008], [-0.002]]})
    longer.attrs["baseline"] = "zero"
    box = chapter_findings_box(scheme_tests(paired), longer=longer)
    assert ("not converged at this budget: trained 2x as long (2 seeds) its accuracy changed by +0.0120 (per seed "
            "+0.0100, +0.0140) and its difference to zero by +0.0080") in box[1].note
    assert "(1 seed) its accuracy changed by +0.0010" in box[0].note
    mixed = longer.assign(per_seed=[[0.002, 0.006], [0.010, -0.014], [0.001]])
    mixed.attrs["baseline"] = "zero"
    assert "not converged" not in chapter_findings_box(scheme_tests(paired), longer=mixed)[1].note
    # rows in the order asked for
    assert list(scheme_tests(paired, order=["partial", "padding_module"]).scheme) == ["partial", "padding_module"]
    assert list(scheme_tests(paired.iloc[::-1], order=["padding_module", "partial"]).scheme) == ["padding_module",
                                                                                               "partial"]
    one = pd.DataFrame([_paired_row("padding_module", 0.008, np.nan, np.nan, np.nan, n=1)])
    box = chapter_findings_box(scheme_tests(one))
    assert box[0].verdict == "inconclusive" and "one seed" in box[0].detectable
    assert chapter_findings_box() == []


def test_cost_benefit_lines_say_where_the_interval_lies():
    from padlib.chapters.ch5_schemes import cost_benefit, cost_benefit_lines

    paired = pd.DataFrame([_paired_row("padding_module", 0.02, 0.01, 0.03, 0.003),
                           _paired_row("partial", 0.001, -0.004, 0.006, 0.6),
                           _paired_row("circular", -0.03, -0.05, -0.01, 0.008, n=5)])
    cost = pd.DataFrame({"scheme": ["zero", "padding_module", "partial", "circular"],
                         "seconds_per_step": [0.01, 0.02, 0.011, 0.012], "ratio_to_zero": [1.0, 2.0, 1.1, 1.2]})
    table = cost_benefit(cost, paired).set_index("scheme")
    assert table.loc["padding_module", "step_ratio"] == 2.0 and "zero" not in table.index
    assert table.loc["circular", "n_seeds"] == 5
    lines = cost_benefit_lines(table.reset_index())
    assert "costs 2.00x" in lines[0] and lines[0].endswith("interval above 0")
    assert lines[1].endswith("interval includes 0") and lines[2].endswith("interval below 0")
    with pytest.raises(PadlibError, match="relative to zero"):
        cost_benefit(cost.drop(columns="ratio_to_zero"), paired)


def test_run_cost_lines_count_a_paired_seed_and_the_whole_design():
    from padlib.chapters.ch5_schemes import run_cost_lines
    from padlib.experiments.training import run_cost

    runs = [_fake_run(s, seed) for s in ("zero", "padding_module") for seed in (0, 1, 2)] + [_fake_run("circular", 0)]
    for r, cpu in zip(runs, [2, 3, 4, 8, 9, 10, 5]):
        r.cpu_seconds, r.epochs = float(cpu), 12.0
    cost = run_cost(runs).set_index("scheme")
    assert cost.loc["zero", "median"] == 3 and cost.loc["padding_module", "total"] == 27 and cost.loc["circular", "runs"] == 1
    lines = run_cost_lines(cost.reset_index(), {"zero": 3, "padding_module": 3, "circular": 1})
    assert lines[0].startswith("zero") and "3.0 CPU s per run (median of 3)" in lines[0]
    assert lines[-1] == ("one paired seed of zero, padding_module: 12 CPU s (about 6 s on 2 idle cores); all 7 runs: "
                         "41 CPU s (about 20 s on 2 idle cores)")


def test_border_concentration_counts_cut_digits_as_at_the_border():
    rows = []
    for seed in (0, 1, 2):
        for scheme in ("zero", "extrapolates", "symmetric"):
            for i, dist in enumerate([-3] * 20 + [5] * 20):
                gain = 0.4 if scheme == "extrapolates" and dist < 0 else 0.0
                rows.append({"scheme": scheme, "seed": seed, "border_distance": dist,
                             "correct": (i % 20) < round(20 * (0.5 + gain)) + (seed if dist < 0 and gain else 0)})
    conc = border_concentration(pd.DataFrame(rows), exclude=("symmetric",)).set_index("scheme")
    assert list(conc.index) == ["extrapolates"] and conc.loc["extrapolates", "verdict"] == "concentrated at the border"
    with pytest.raises(PadlibError, match="at the border and away"):
        border_concentration(pd.DataFrame(rows), near_max=-10)


def test_longer_training_check_pairs_by_seed():
    from padlib.experiments.training import longer_training_check
    from padlib.chapters.ch5_schemes import longer_training_lines

    per_seed = pd.DataFrame({"scheme": ["zero"] * 3 + ["circular"] * 3, "seed": [0, 1, 2] * 2,
                             "accuracy": [0.90, 0.91, 0.92, 0.80, 0.81, 0.82]})
    flat = pd.DataFrame({"scheme": ["zero"] * 2, "seed": [0, 1], "accuracy": [0.901, 0.909]})
    rising = pd.DataFrame({"scheme": ["zero"] * 3, "seed": [0, 1, 2], "accuracy": [0.95, 0.97, 0.975]})
    a = longer_training_check(per_seed, flat).iloc[0]
    assert a.scheme == "zero" and a.gain == pytest.approx(0.0) and a.n_seeds == 2 and a.factor == 2.0
    assert a.per_seed == [0.001, -0.001]
    b = longer_training_check(per_seed, rising).iloc[0]
    assert b.gain == pytest.approx(0.055) and b.ci_low > 0 and b.n_seeds == 3
    assert "gained, more training may still change it" in longer_training_lines(longer_training_check(per_seed, rising), 0.01)[0]
    falling = rising.assign(accuracy=[0.85, 0.86, 0.875])
    assert "lost, more training" in longer_training_lines(longer_training_check(per_seed, falling), 0.01)[0]
    three = pd.DataFrame({"scheme": ["zero"] * 3, "seed": [0, 1, 2], "accuracy": [0.9005, 0.9095, 0.9201]})
    assert "within the resolvable effect" in longer_training_lines(longer_training_check(per_seed, three), 0.05)[0]
    # against the baseline: circular gains 0.03 more than zero at seed 0 and 0.01 less at seed 1
    both = pd.DataFrame({"scheme": ["zero", "zero", "circular", "circular"], "seed": [0, 1, 0, 1],
                         "accuracy": [0.91, 0.92, 0.84, 0.81]})
    c = longer_training_check(per_seed, both).set_index("scheme")
    assert c.loc["circular", "vs_baseline_per_seed"] == [0.03, -0.01]
    assert c.loc["circular", "vs_baseline"] == pytest.approx(0.01) and np.isnan(c.loc["zero", "vs_baseline"])
    lines = longer_training_lines(longer_training_check(per_seed, both))
    assert "minus zero's gain at the same seed +0.0100 (per seed +0.0300, -0.0100)" in lines[1]
    assert "vs_baseline" not in longer_training_check(per_seed, both, baseline=None).columns


def test_train_plan_trains_an_uneven_design_in_plan_order():
    from padlib.experiments.ch5_schemes import seed_plan
    from padlib.experiments.training import train_plan

    plan = seed_plan(["zero", "circular", "padding_module"], [0, 1, 2], primary=["padding_module"], n_other=1,
                     epochs=0.5, longer_seeds=1)
    assert plan == [("zero", 0, 0.5), ("circular", 0, 0.5), ("padding_module", 0, 0.5), ("zero", 1, 0.5),
                    ("padding_module", 1, 0.5), ("zero", 2, 0.5), ("padding_module", 2, 0.5),
                    ("zero", 0, 1.0), ("circular", 0, 1.0), ("padding_module", 0, 1.0)]
    data = digits_on_canvas(32, canvas_size=16, digit_size=8, seed=0)
    small = [("zero", 0, 0.5), ("circular", 0, 1.0)]
    runs = train_plan(small, data, model_kwargs={"width": 4, "depth": 2}, batch_size=16, progress=False)
    assert [(r.scheme, r.seed, r.epochs) for r in runs] == small
    assert len(runs[1].result.history) == 2 * len(runs[0].result.history) and runs[0].cpu_seconds > 0
    assert torch.equal(runs[0].init_model[1].weight, runs[1].init_model[1].weight)  # same seed, same start
    with pytest.raises(PadlibError, match="plan entry"):
        train_plan([("zero", 0)], data)
    with pytest.raises(PadlibError, match="at least one"):
        seed_plan(["zero"], [])
