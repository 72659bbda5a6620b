"""Data sets, small models and the training loop: deterministic, placement metadata true to the pixels."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from padlib.errors import PadlibError, ProbeDataError
from padlib.padding import padding_scheme_of, padded_convs
from padlib.training import (
    REGION_NAMES,
    accuracy_by_seed,
    accuracy_summary,
    cifar10,
    digits_on_canvas,
    digits_train_test,
    evaluate,
    image_folder,
    learning_curves,
    load_dataset,
    paired_comparison,
    resnet_small,
    small_model,
    step_cost,
    train,
    train_schemes,
    vgg_small,
)


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
