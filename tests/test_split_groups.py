"""mean_feature_maps(groups=...): splits made of whole groups (crops of one photograph stay in one split), and the
lean test's unit of the interval in its attrs and in chapter 4's readings."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import padlib
from padlib.chapters import ch4_blind_spots as ch4
from padlib.errors import PadlibError
from padlib.experiments import ch4_blind_spots as design
from padlib.preprocess import Preprocessing
from padlib.spatial_bias import FeatureMaps, deal_groups, mean_feature_maps


def tiny(size=16):
    """Two convolutions, fixed weights: maps (N, 4, S/2, S/2) and (N, 4, S/4, S/4)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1)).eval()
    model.padlib_preprocessing = Preprocessing(size, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return model


def image_id_model():
    """A 1x1 conv reading channel 0: each image's map is its own constant, so a split map's value is the mean
    of the constants of the images in that split (which images went where can be read off the maps)."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
    return nn.Sequential(conv).eval()


def test_planted_groups_never_straddle_splits():
    # image i has the constant value v[i]; groups planted in a shuffled order, with unequal sizes
    rng = np.random.default_rng(0)
    labels = list(rng.permutation(["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 3 + ["e"] * 2 + ["f"] * 1))
    n = len(labels)
    v = torch.arange(1, n + 1, dtype=torch.float32)
    x = v.view(-1, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    fm = mean_feature_maps(image_id_model(), x, ["0"], splits=3, batch_size=2, groups=labels, progress=False)
    # every group in exactly one split, all groups present
    flat = [g for s in fm.split_groups for g in s]
    assert sorted(flat) == sorted(set(labels)) and len(flat) == len(set(flat)) and fm.n_groups == 6
    assert fm.group_kind == "groups"
    index = deal_groups(labels, 3)
    assert sorted(i for ix in index for i in ix) == list(range(n))
    for k, ix in enumerate(index):
        assert {labels[i] for i in ix} == set(fm.split_groups[k])
        # the split's map is the mean of exactly its images' constants
        np.testing.assert_allclose(fm.split_maps["0"][k], np.full((4, 4), v[ix].mean().item()), rtol=1e-6)
    # balanced: 18 images in 3 splits of 6 (5+1, 4+2, 3+3)
    assert sorted(map(len, index)) == [6, 6, 6]
    np.testing.assert_allclose(fm["0"], np.full((4, 4), v.mean().item()), rtol=1e-6)
    assert fm.n == n
    # deterministic, and the same with flips (4x the images, each flip in its image's split)
    again = mean_feature_maps(image_id_model(), x, ["0"], splits=3, batch_size=5, groups=labels, flips=True,
                              progress=False)
    assert again.split_groups == fm.split_groups and again.n == 4 * n
    np.testing.assert_allclose(again.split_maps["0"], fm.split_maps["0"], rtol=1e-6)


def test_groups_work_with_a_list_of_batches_and_labels_as_an_array():
    x = torch.rand(6, 3, 16, 16)
    labels = np.array([0, 0, 1, 1, 2, 2])
    a = mean_feature_maps(tiny(), x, splits=3, groups=labels, progress=False)
    b = mean_feature_maps(tiny(), [x[:4], x[4:]], splits=3, groups=list(labels), progress=False)
    assert a.split_groups == b.split_groups == [[0], [1], [2]]
    for layer in a.layers:
        np.testing.assert_allclose(a.split_maps[layer], b.split_maps[layer], rtol=1e-5, atol=1e-7)
        # one group per split, in order: split k is the mean of images 2k and 2k + 1
        per_image = mean_feature_maps(tiny(), x[2:4], [layer], progress=False)[layer]
        np.testing.assert_allclose(a.split_maps[layer][1], per_image, rtol=1e-5, atol=1e-7)


def test_without_groups_the_maps_are_as_before():
    """Round-robin batches as before: a fixed input gives the maps computed by hand from that assignment."""
    model = tiny()
    torch.manual_seed(1)
    x = torch.rand(10, 3, 16, 16)
    fm = mean_feature_maps(model, x, splits=2, batch_size=4, progress=False)
    assert fm.split_groups == [] and fm.group_kind == "" and fm.n_groups == 0
    # batches of 4 (under the cap ceil(10 / 2) = 5) dealt round-robin: [0:4] and [8:10] to split 0, [4:8] to split 1
    outs = {}
    hooks = [model.get_submodule(l).register_forward_hook(lambda m, i, o, l=l: outs.__setitem__(l, o))
             for l in fm.layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for l in fm.layers:
        per_image = outs[l].abs().mean(1).numpy()
        first, second = per_image[[0, 1, 2, 3, 8, 9]].mean(0), per_image[4:8].mean(0)
        np.testing.assert_allclose(fm.split_maps[l], np.stack([first, second]), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(fm[l], per_image.mean(0), rtol=1e-5, atol=1e-7)
    same = mean_feature_maps(model, x, splits=2, batch_size=4, progress=False, groups=None)
    for l in fm.layers:
        np.testing.assert_array_equal(same.split_maps[l], fm.split_maps[l])


@pytest.mark.parametrize("groups, words", [
    ([0, 1, 2], "3 label(s) for 6 image(s)"),
    ([0, 0, 0, 1, 1, 1], "2 distinct group(s), fewer than splits=3"),
    ("photos", "'source' or one label per image"),
    (5, "sequence of one label per image"),
    ([[0], [1], [2], [3], [4], [5]], "groups[0] is a list"),
])
def test_bad_groups_are_refused_in_one_line_naming_groups(groups, words):
    with pytest.raises(PadlibError) as e:
        mean_feature_maps(tiny(), torch.rand(6, 3, 16, 16), splits=3, groups=groups, progress=False)
    msg = str(e.value)
    assert "groups" in msg and words in msg and "\n" not in msg
    if "fewer than splits" in msg:
        assert "splits=2" in msg


def test_groups_source_needs_probe_images_and_a_known_number_of_images():
    with pytest.raises(PadlibError, match="groups='source' needs a ProbeImages"):
        mean_feature_maps(tiny(), torch.rand(4, 3, 16, 16), splits=2, groups="source", progress=False)
    with pytest.raises(PadlibError, match="groups= needs images whose number is known"):
        mean_feature_maps(tiny(), (b for b in [torch.rand(2, 3, 16, 16)]), splits=1, groups=[0, 1], progress=False)


def test_groups_source_keeps_each_photograph_in_one_split():
    probe = padlib.probe_images(24, size=32, seed=0)
    source = [probe.source_names[probe.crop_box(i)[0]] for i in range(len(probe))]
    assert len(set(source)) >= 4  # several crops share a photograph
    fm = mean_feature_maps(tiny(32), probe, splits=4, flips=True, batch_size=4, groups="source", progress=False)
    assert fm.group_kind == "photographs" and fm.n == 4 * 24 and fm.n_groups == len(set(source))
    photos = [set(g) for g in fm.split_groups]
    for k in range(4):
        for j in range(k + 1, 4):
            assert not photos[k] & photos[j]
    # every crop's photograph sits in the split the dealing put the crop in
    for k, ix in enumerate(deal_groups(source, 4)):
        assert {source[i] for i in ix} == photos[k]
    assert all(fm.split_maps[l].shape[0] == 4 for l in fm.layers)


def _maps(edge, seed, n=6, groups=None):
    rng = np.random.default_rng(seed)
    m = 1.0 + 0.01 * rng.standard_normal((n, 8, 8))
    m[:, 0, 1:-1] += edge
    split = {"l1": m}
    fm = FeatureMaps({"l1": m.mean(0)}, split, n)
    if groups is not None:
        fm.split_groups, fm.group_kind = groups, "photographs"
    return fm


def _lean_maps(grouped):
    g = [[3 * k, 3 * k + 1, 3 * k + 2] for k in range(6)] if grouped else None  # 18 photographs in 6 splits
    return {("m", 10, "natural"): _maps(0.5, 0, groups=g), ("m", 10, "random init"): _maps(0.0, 1, 4),
            ("m", 11, "natural"): _maps(0.0, 2, groups=g), ("m", 11, "random init"): _maps(0.0, 3, 4)}


def test_lean_tests_name_the_unit_and_the_readings_say_it():
    t = design.lean_tests(_lean_maps(True), {"m": {"tb": "top", "lr": ""}}, {"m": 10}, {"m": 11})
    assert t.attrs["unit"] == "splits of whole photographs" and t.attrs["groups"] == {"m": 18}
    scale = ch4.lean_finding(t).scale
    assert "6 splits of whole photographs (18 photographs) per model" in scale and "image splits" not in scale
    t = design.lean_tests(_lean_maps(False), {"m": {"tb": "top", "lr": ""}}, {"m": 10}, {"m": 11})
    assert t.attrs["unit"] == "image splits" and t.attrs["groups"] == {"m": 0}
    scale = ch4.lean_finding(t).scale
    assert "6 image splits per model" in scale and "photograph" not in scale
    # a table made before the attr existed reads as image splits
    t.attrs.pop("unit")
    assert "6 image splits per model" in ch4.lean_finding(t).scale


def test_readings_give_a_range_of_photographs_when_models_differ():
    t = pd.DataFrame([{"model": m, "pre_train_n": 8} for m in ("a", "b")])
    t.attrs.update(unit="splits of whole photographs", groups={"a": 17, "b": 18})
    assert ch4._lean_splits(t, t) == "8 splits of whole photographs (17 to 18 photographs)"
