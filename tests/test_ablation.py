"""Ablation, padding swaps, evaluation and border sensitivity on tiny models with hand-computed answers."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import padlib
from padlib import interventions
from padlib import stats
from padlib import padding
from padlib.chapters import ch3_ablation as ch3_readings
from padlib.experiments import ch3_ablation as ch3_design


def toy_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def images(n=6, size=12, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_ablation_restores_the_model_bit_for_bit_even_after_an_error():
    net, x = toy_net(), images()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    before = net(x)
    channels = [("0", 1), ("0", 4), ("5", 2)]
    for mode in ("mean", "zero"):
        for region in ("all", "border"):
            with interventions.ablate_channels(net, channels, mode, region, images=x) as m:
                assert m is net
                assert not torch.allclose(net(x), before)
    with pytest.raises(RuntimeError, match="boom"):
        with interventions.ablate_channels(net, channels, "zero"):
            raise RuntimeError("boom")
    assert no_hooks(net)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert torch.equal(net(x), before)


def test_ablating_nothing_changes_nothing():
    net, x = toy_net(), images()
    before = net(x)
    for nothing in ([], {}, pd.DataFrame(columns=["layer", "channel", "is_pan"])):
        with interventions.ablate_channels(net, nothing, "mean"):  # no means needed: nothing to replace
            assert torch.equal(net(x), before)


def test_zero_ablating_every_channel_of_a_layer_equals_zeroing_its_output():
    net, x = toy_net(), images()
    zeroed = toy_net()
    with torch.no_grad():  # an independent construction: the conv's weights and bias set to zero
        zeroed[5].weight.zero_()
        zeroed[5].bias.zero_()
    with interventions.ablate_channels(net, [("5", c) for c in range(8)], "zero"):
        assert torch.equal(net(x), zeroed(x))
    # and a find_pans-style table of PAN rows selects the same thing
    table = pd.DataFrame({"layer": ["5"] * 8, "channel": range(8), "is_pan": True})
    with interventions.ablate_channels(net, table, "zero"):
        assert torch.equal(net(x), zeroed(x))


def test_zero_ablation_zeroes_the_preactivation_the_scanner_measured():
    net, x = toy_net(), images()
    captured = {}
    handle = net[2].register_forward_pre_hook(lambda m, i: captured.__setitem__("bn_out", i[0]))
    try:
        assert interventions.consuming_norms(net, ["0", "3", "5"]) == {"0": "1", "3": "", "5": ""}
        with interventions.ablate_channels(net, [("0", 1), ("0", 4)], "zero"):  # space="preact": through BN "1"
            net(x)
        assert captured["bn_out"][:, [1, 4]].abs().max() < 1e-5
        assert captured["bn_out"][:, [0, 2]].abs().min() > 0
        with interventions.ablate_channels(net, [("0", 1)], "zero", space="output"):  # the conv output itself
            net(x)
        expected = net[1].bias[1] - net[1].running_mean[1] * net[1].weight[1] / (net[1].running_var[1] + net[1].eps).sqrt()
        assert torch.allclose(captured["bn_out"][:, 1], expected.expand(6, 12, 12))
    finally:
        handle.remove()


def test_mean_ablation_sets_the_interior_mean_everywhere_or_on_the_padding_ring_only():
    net, x = toy_net(), images(8, 12)
    means = interventions.channel_means(net, x, ["0", "3"])
    # by hand: on a 12x12 map the scanner's interior margin is max(ceil(12 / 8), ring 1) = 2
    out0 = net[0](x).double()
    assert torch.allclose(means["0"], out0[..., 2:-2, 2:-2].mean((0, 2, 3)))
    captured = {}
    # what the next layer receives (forward hooks run in registration order, so read it downstream)
    handle = net[1].register_forward_pre_hook(lambda m, i: captured.__setitem__("out", i[0]))
    try:
        with interventions.ablate_channels(net, [("0", 2)], "mean", "all", means=means):
            net(x)
        assert torch.allclose(captured["out"][:, 2], means["0"][2].float().expand(8, 12, 12))
        with interventions.ablate_channels(net, [("0", 2)], "mean", "border", means=means):
            net(x)
    finally:
        handle.remove()
    y = captured["out"]
    ring = padding.ring_mask((12, 12), {"top": 1, "bottom": 1, "left": 1, "right": 1})
    assert torch.allclose(y[:, 2][:, ring], means["0"][2].float().expand(8, int(ring.sum())))
    assert torch.equal(y[:, 2][:, ~ring], out0[:, 2][:, ~ring].float())  # interior untouched
    assert torch.equal(y[:, 3], out0[:, 3].float())  # other channels untouched


def test_padding_ring_follows_where_each_conv_reads_padding():
    from timm.layers import Conv2dSame

    # PyTorch k3 s2 p1 at an even size reads the top/left padding only; TF SAME the bottom/right only
    assert padding.padding_ring(nn.Conv2d(1, 1, 3, stride=2, padding=1), (8, 8)) == {"top": 1, "bottom": 0, "left": 1, "right": 0}
    assert padding.padding_ring(nn.Conv2d(1, 1, 3, stride=2, padding=1), (9, 9)) == {"top": 1, "bottom": 1, "left": 1, "right": 1}
    assert padding.padding_ring(Conv2dSame(1, 1, 3, stride=2), (8, 8)) == {"top": 0, "bottom": 1, "left": 0, "right": 1}
    assert padding.padding_ring(nn.Conv2d(1, 1, 5, padding=2), (10, 7)) == {"top": 2, "bottom": 2, "left": 2, "right": 2}
    assert padding.ring_mask((4, 5), {"top": 0, "bottom": 1, "left": 0, "right": 2}).sum() == 5 + 2 * 3


def test_ablation_rejects_bad_channel_choices_clearly():
    net = toy_net()
    full = pd.DataFrame({"layer": ["0", "0"], "channel": [0, 1], "is_pan": [True, False]})
    with pytest.raises(padlib.PadlibError, match="non-PAN rows"):
        interventions.channel_selection(full)
    with pytest.raises(padlib.PadlibError, match="no layer named 'nope'"):
        with interventions.ablate_channels(net, [("nope", 0)], "zero"):
            pass
    with pytest.raises(padlib.PadlibError, match="out of range"):
        with interventions.ablate_channels(net, [("0", 6)], "zero"):
            pass
    with pytest.raises(padlib.PadlibError, match="needs the probe-set means"):
        with interventions.ablate_channels(net, [("0", 1)], "mean"):
            pass
    with pytest.raises(padlib.PadlibError, match="mode must be"):
        with interventions.ablate_channels(net, [("0", 1)], "noise"):
            pass


def test_random_controls_match_pan_counts_per_layer_and_avoid_pans():
    rng = np.random.default_rng(1)
    rows = []
    for layer, c in (("0", 6), ("3", 6), ("5", 8)):
        pan = set(rng.choice(c, {"0": 2, "3": 1, "5": 3}[layer], replace=False).tolist())
        rows += [{"layer": layer, "channel": i, "is_pan": i in pan} for i in range(c)]
    table = pd.DataFrame(rows)
    pans = table[table.is_pan]
    controls = interventions.random_control(table, k=5, seed=3)
    assert sorted(controls.control.unique()) == list(range(5))
    want = pans.groupby("layer").size()
    for _, ctrl in controls.groupby("control"):
        assert ctrl.groupby("layer").size().equals(want)
        merged = ctrl.merge(pans, on=["layer", "channel"])
        assert merged.empty  # never a PAN
    # from PAN pairs plus the model: the same rule; seeded, deterministic
    pairs = list(zip(pans.layer, pans.channel))
    c2 = interventions.random_control(pairs, toy_net(), k=5, seed=3)
    assert c2.equals(interventions.random_control(pairs, toy_net(), k=5, seed=3))
    assert not c2.equals(interventions.random_control(pairs, toy_net(), k=5, seed=4))
    assert all(g.groupby("layer").size().equals(want) for _, g in c2.groupby("control"))
    with pytest.raises(padlib.PadlibError, match="needs the model"):
        interventions.random_control(pairs)


def test_swap_padding_on_a_circular_safe_toy_gives_the_hand_computed_output():
    from timm.layers import Conv2dSame

    x = torch.arange(16.0).view(1, 1, 4, 4)
    # a 3x3 conv that picks the top-left tap: output[i, j] = padded input[i - 1, j - 1]
    pick = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        pick.weight.zero_()
        pick.weight[0, 0, 0, 0] = 1
    circular = interventions.swap_padding(nn.Sequential(pick), "circular")
    assert torch.equal(circular(x)[0, 0], torch.tensor([[15., 12, 13, 14], [3, 0, 1, 2], [7, 4, 5, 6], [11, 8, 9, 10]]))
    assert torch.equal(interventions.swap_padding(nn.Sequential(pick), "replicate")(x)[0, 0][0], torch.tensor([0., 0, 1, 2]))
    assert torch.equal(interventions.swap_padding(nn.Sequential(pick), "reflect")(x)[0, 0][0], torch.tensor([5., 4, 5, 6]))
    # timm's dynamic TF SAME stride-2 conv at an even size pads (0, 1): circular wraps row/column 0 in
    ones = Conv2dSame(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        ones.weight.fill_(1)
    net = nn.Sequential(ones)
    assert torch.equal(net(x)[0, 0], torch.tensor([[45., 39], [66, 50]]))  # zero padding, by hand
    swapped = interventions.swap_padding(net, "circular")
    assert torch.equal(swapped(x)[0, 0], torch.tensor([[45., 51], [69, 75]]))
    assert torch.equal(net(x)[0, 0], torch.tensor([[45., 39], [66, 50]]))  # original untouched
    assert swapped.padlib_padding == "circular"
    with pytest.raises(padlib.PadlibError, match="unknown padding mode"):
        interventions.swap_padding(net, "mirror")


def colour_classifier():
    """Predicts the dominant colour channel: class 0 red, 1 green, 2 blue (parameter-free)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


def write_colour_folder(root, wrong=3):
    """10 solid-colour images in class folders red/green/blue; ``wrong`` of them filed in the wrong folder."""
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    plan = [("red", "red")] * 4 + [("green", "green")] * 3 + [("blue", "blue")] * 3
    plan = [(folder if i >= wrong else {"red": "green", "green": "blue", "blue": "red"}[folder], colour)
            for i, (folder, colour) in enumerate(plan)]
    for i, (folder, colour) in enumerate(plan):
        (root / folder).mkdir(exist_ok=True)
        Image.new("RGB", (40, 30), colours[colour]).save(root / folder / f"img{i}.png")


def test_evaluate_on_a_labelled_toy_folder_gives_the_known_accuracy(tmp_path):
    write_colour_folder(tmp_path, wrong=3)
    mapping = tmp_path / "classes.json"
    mapping.write_text(json.dumps({"0": ["red", "rouge"], "1": ["green", "vert"], "2": ["blue", "bleu"]}))
    data = padlib.labelled_images(tmp_path, class_index=str(mapping), model="mobilenet_v2")
    assert len(data) == 10 and sorted(data.labels) == [0] + [1] * 6 + [2] * 3  # three red images filed under green
    ev = interventions.evaluate(colour_classifier(), data, n_boot=200)
    assert ev.value("top1_accuracy") == pytest.approx(0.7)
    assert ev.value("top5_accuracy") == 1.0  # only three classes
    row = ev.summary.set_index("metric").loc["top1_accuracy"]
    assert row.ci_low <= 0.7 <= row.ci_high and row.ci_low < row.ci_high
    # a text mapping file (LOC_synset_mapping style: line number = index) gives the same labels
    text = tmp_path / "synsets.txt"
    text.write_text("red rouge, scarlet\ngreen vert\nblue bleu\n")
    assert padlib.labelled_images(tmp_path, class_index=str(text)).labels == data.labels
    with pytest.raises(padlib.ProbeDataError, match="no class index"):
        padlib.labelled_images(tmp_path)
    # evaluate() also takes the folder path and its mapping file directly
    direct = interventions.evaluate(colour_classifier(), str(tmp_path), labels=str(text), n_boot=200)
    assert direct.value("top1_accuracy") == pytest.approx(0.7)
    # integer folder names need no mapping file
    for folder, idx in (("red", "0"), ("green", "1"), ("blue", "2")):
        (tmp_path / folder).rename(tmp_path / idx)
    assert interventions.evaluate(colour_classifier(), padlib.labelled_images(tmp_path), n_boot=50).value("top1_accuracy") == pytest.approx(0.7)


def test_evaluate_against_a_reference_agreement_kl_and_counts():
    x = torch.zeros(4, 3, 8, 8)
    for i, c in enumerate((0, 1, 2, 2)):
        x[i, c] = 1.0  # images 0..3 dominated by red, green, blue, blue
    model = colour_classifier()
    swap_gb = nn.Sequential(colour_classifier(), Permute([0, 2, 1]))
    ev = interventions.evaluate(model, x, reference=swap_gb, n_boot=200, seed=1)
    assert ev.value("agreement") == 0.25  # only the red image keeps its class
    same = interventions.evaluate(model, x, reference=model)
    assert same.value("agreement") == 1.0 and same.value("kl") == pytest.approx(0.0, abs=1e-12)
    # KL(reference || model) by hand for image 1: model logits (0, 1, 0), reference (0, 0, 1)
    p = torch.softmax(torch.tensor([0.0, 1, 0], dtype=torch.float64), 0)
    q = torch.softmax(torch.tensor([0.0, 0, 1], dtype=torch.float64), 0)
    assert ev.per_image.kl[1] == pytest.approx(float((q * (q / p).log()).sum()))
    counts = ev.class_counts.set_index("class_index")
    assert counts["count"].tolist() == [1, 1, 2] and counts["reference_count"].tolist() == [1, 2, 1]
    assert counts["count_change"].tolist() == [0, -1, 1]
    # bootstrap intervals are seeded
    assert ev.summary.equals(interventions.evaluate(model, x, reference=swap_gb, n_boot=200, seed=1).summary)
    with pytest.raises(padlib.PadlibError, match="same images"):
        interventions.compare_logits(torch.zeros(3, 3), torch.zeros(4, 3))


class Permute(nn.Module):
    def __init__(self, order):
        super().__init__()
        self.order = order

    def forward(self, x):
        return x[:, self.order]


def test_pan_ablation_beats_random_controls_when_only_the_pans_matter():
    # a head that reads only channels 0 and 1 of the last conv: ablating them must move predictions,
    # ablating any other channels must not (the controls are drawn from those)
    net, x = toy_net(), images(16, 12)
    with torch.no_grad():
        net[9].weight[:, 2:] = 0
        net[9].weight[:, :2] *= 100  # so that predictions differ between images
    table = pd.DataFrame({"layer": ["5"] * 8, "channel": range(8), "is_pan": [True, True] + [False] * 6})
    controls = interventions.random_control(table, k=3, seed=0)
    study = ch3_design.pan_ablation(net, x, table[table.is_pan], controls, modes=("zero",), regions=("all",),
                           n_boot=200, progress=False)
    assert set(study.summary.n_channels) == {2}
    comp = study.comparison.set_index("metric")
    assert comp.loc["kl", "controls_max"] == pytest.approx(0.0, abs=1e-12)
    assert comp.loc["kl", "pans"] > 0 and comp.loc["kl", "diff_ci_low"] > 0
    assert comp.loc["kl", "controls_below_pans"] == 3
    assert comp.loc["kl", "p"] < 0.05 and comp.loc["kl", "excess"] > 0  # the bootstrap's p agrees with its interval
    verdicts = ch3_readings.pan_verdicts(study.comparison.assign(model="toy"), "kl")
    assert verdicts.direction.tolist() == ["more disruptive"]
    assert verdicts.more_disruptive_than.tolist() == [3]
    assert ch3_readings.pan_verdicts(study.comparison.assign(model="toy"), "agreement").direction.tolist() == ["more disruptive"]
    ctrl = study.summary.query("channels == 'random' and metric == 'agreement'")
    assert (ctrl.value == 1.0).all() and len(ctrl) == 3
    assert comp.loc["agreement", "pans"] < 1 and comp.loc["agreement", "diff_ci_high"] < 0
    movers = interventions.top_movers({("toy", "zero PANs"): study.evaluations[("PANs", -1, "zero", "all")]}, k=2)
    assert set(movers.direction) == {"gains", "losses"} and (movers.count_change != 0).all()
    assert (movers[movers.direction == "gains"].count_change > 0).all()
    assert (movers[movers.direction == "losses"].count_change < 0).all()
    counts = study.evaluations[("PANs", -1, "zero", "all")].class_counts
    assert counts.count_change.sum() == 0 and counts["count"].sum() == 16


def test_shift_toward_moves_content_and_fills_from_the_image():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    top = interventions.shift_toward(x, "top", 1)
    assert torch.equal(top[0, 0, :3], x[0, 0, 1:]) and torch.equal(top[0, 0, 3], x[0, 0, 2])  # mirrored fill
    right = interventions.shift_toward(x, "right", 2, fill="circular")
    assert torch.equal(right[0, 0, :, 2:], x[0, 0, :, :2]) and torch.equal(right[0, 0, :, :2], x[0, 0, :, 2:])
    with pytest.raises(padlib.PadlibError, match="cannot shift"):
        interventions.shift_toward(x, "left", 4)


def test_border_sensitivity_is_nil_for_a_translation_invariant_model_and_not_for_a_positional_one():
    x = images(6, 16)
    invariant = interventions.swap_padding(toy_net(), "circular").eval()
    for m in invariant.modules():  # stride 1 everywhere: exact circular translation equivariance
        if isinstance(m, nn.Conv2d):
            m.stride = (1, 1)
    table = interventions.border_sensitivity(invariant, x, shifts=(3, 5), fill="circular", n_boot=100)
    assert set(table.side) == set(padlib.padding.SIDES) and len(table) == 4 * 2 * 3
    agree = table[table.metric == "agreement"]
    assert (agree.value == 1.0).all()
    assert table[table.metric == "kl"].value.max() < 1e-9
    torch.manual_seed(0)
    positional = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10)).eval()
    table = interventions.border_sensitivity(positional, x, shifts=(5,), n_boot=100)
    assert table[table.metric == "kl"].value.min() > 0
    # stability can be measured with channels ablated too (hooks compose with the shifts)
    net = toy_net()
    with interventions.ablate_channels(net, [("5", 0)], "zero"):
        assert len(interventions.border_sensitivity(net, x, shifts=(2,), n_boot=50)) == 12


@pytest.mark.filterwarnings("ignore:layer .* PANs but only")
def test_ablation_report_runs_every_intervention_on_a_toy_and_tidies_the_tables():
    net = toy_net()
    # the learned reading: four probe images are too few for the specialists' FDR control to flag any channel
    report = ch3_design.ablation_report(net, n_images=4, n_scan=4, n_controls=2, paddings=("circular",), sizes=(33,),
                               base_size=32, shifts=(4,), size=32, n_boot=50, batch_size=4, progress=False,
                               scan_options={"definition": "learned"})
    tables = ch3_design.report_tables({"toy": report})
    assert tables["pans"].pans.iloc[0] > 0 and "kl" in set(tables["comparison"]["metric"])
    assert set(tables) >= {"pans", "ablation", "comparison", "interventions", "border", "seconds", "evenness",
                           "balance", "dose", "readout"}
    assert tables["pans"].channels.iloc[0] == 6 + 6 + 8  # every channel of the three padded convs
    assert set(tables["border"].channels) <= {"intact", "PANs ablated", "matched ablated"}
    assert set(tables["ablation"].channels) <= {"PANs", "matched"}
    if len(tables["balance"]):  # every compared PAN has one control channel per draw, within the caliper
        matched = tables["balance"].dropna(subset=["size_ratio"])  # NaN where no PAN found a match
        assert (matched.size_ratio_min >= 1 / 1.2 - 1e-9).all() and (matched.size_ratio_max <= 1.2 + 1e-9).all()
    assert {"circular padding", "size 33"} <= set(tables["interventions"].intervention)
    assert list(tables["evenness"]["size"]) == [32, 33]
    movers, consistency = ch3_design.movers_across_models([report])
    assert consistency.empty  # one model: nothing to correlate
    assert tables["pans"].control_channels.iloc[0] <= tables["pans"].pans.iloc[0]
    summary = ch3_design.chapter_summary(tables, "kl", padding="circular", even=33, control=33)
    assert summary.loc[report.model, "circular padding"] == report.padding["circular"].value("kl")
    assert any(c.startswith("PANs ") for c in summary.columns)


def test_ablation_report_with_no_pans_still_tidies_plots_and_reads_as_not_testable():
    from padlib.chapters.findings import NOT_TESTABLE
    import matplotlib.pyplot as plt

    from padlib.viz import ch3_ablation as ch3_figures

    net = toy_net()
    report = ch3_design.ablation_report(net, n_images=4, n_scan=4, n_controls=2, paddings=("circular",), sizes=(33,),
                               base_size=32, shifts=(4,), size=32, n_boot=50, batch_size=4, progress=False,
                               scan_options={"definition": "specialist"}, readout=False)
    tables = ch3_design.report_tables({"toy": report})
    assert tables["pans"].pans.iloc[0] == 0 and tables["comparison"].empty
    assert "metric" in tables["comparison"]  # the columns survive an empty comparison
    summary = ch3_design.chapter_summary(tables, "kl", padding="circular", even=33, control=33)
    assert not any(c.startswith("PANs ") for c in summary.columns)
    fig = ch3_figures.excess_plot(tables["comparison"])  # a figure that says why, not an exception
    assert "No PAN ablation" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
    lines = ch3_readings.chapter_findings_box(tables["comparison"], balance=tables["balance"])
    assert lines and all(f.verdict == NOT_TESTABLE for f in lines)


def fake_size_report(model, even_noise, control_noise, n=20, seed=0):
    ref = torch.randn(n, 5, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    at = {225: interventions.compare_logits(ref + even_noise * torch.randn(n, 5, generator=g), ref),
          226: interventions.compare_logits(ref + control_noise * torch.randn(n, 5, generator=g), ref)}
    return ch3_design.ModelAblation(model, None, None, None, None, {}, at, None, n, False)


def test_size_comparison_judges_the_claimed_direction_with_holm_across_models():
    from padlib.chapters.findings import CONTRADICTED, INCONCLUSIVE, SUPPORTED
    # the even size moves predictions more: the opposite of the claim, resolved
    table = ch3_readings.size_comparison([fake_size_report("toy", 2.0, 0.01)], 225, 226, "kl")
    assert table.verdict.tolist() == [CONTRADICTED] and table.diff_ci_low.iloc[0] > 0
    # less: the claimed direction, resolved
    table = ch3_readings.size_comparison([fake_size_report("toy", 0.01, 2.0)], 225, 226, "kl")
    assert table.verdict.tolist() == [SUPPORTED] and table.diff_ci_high.iloc[0] < 0
    assert table.p_holm.iloc[0] == pytest.approx(table.p.iloc[0])  # a family of one
    # Holm across models: the adjusted p of the smallest raw p is m times it
    two = ch3_readings.size_comparison([fake_size_report("a", 0.01, 2.0), fake_size_report("b", 0.01, 2.0, seed=3)])
    assert two.p_holm.min() == pytest.approx(min(1.0, 2 * two.p.min()))
    assert (two.detectable > 0).all()


def planted_size_table(rows):
    """A size_comparison table planted row by row: (model, difference, low, high, p_holm)."""
    from padlib.chapters.findings import judge
    return pd.DataFrame([{"model": m, "kl_225": 0.3, "kl_226": 0.3 - d, "difference": d, "diff_ci_low": lo,
                          "diff_ci_high": hi, "p": p, "p_holm": p, "n_images": 24, "detectable": 0.05,
                          "verdict": judge(lo, hi, ch3_readings.SIZE_SESOI, p=p)} for m, d, lo, hi, p in rows])


def test_size_finding_counts_and_words_come_from_the_table():
    from padlib.chapters.findings import CONTRADICTED, INCONCLUSIVE, SUPPORTED
    more = planted_size_table([("m1", 0.2, 0.1, 0.3, 0.001), ("m2", -0.2, -0.3, -0.1, 0.001)])
    f = ch3_readings.size_finding(more)
    assert f.verdict == CONTRADICTED  # one model resolves the opposite direction
    assert "the even size moves predictions more in 1 of 2 models, less in 1, unresolved in 0" in f.observed
    assert "m1 +0.20 [+0.10, +0.30]" in f.observed and "Holm-adjusted p: m1 0.001, m2 0.001" in f.test
    less = planted_size_table([("m1", -0.2, -0.3, -0.1, 0.001), ("m2", -0.2, -0.3, -0.1, 0.01),
                               ("m3", -0.2, -0.3, -0.1, 0.02)])
    f = ch3_readings.size_finding(less)
    assert f.verdict == SUPPORTED and "more in 0 of 3 models, less in 3, unresolved in 0" in f.observed
    unresolved = planted_size_table([("m1", -0.2, -0.3, -0.1, 0.001), ("m2", 0.0, -0.1, 0.1, 0.6)])
    f = ch3_readings.size_finding(unresolved)
    assert f.verdict == INCONCLUSIVE and "unresolved in 1" in f.observed and f.detectable
    assert "4 pretrained" not in f.scale and f.scale.startswith("2 pretrained ImageNet models, 1 family; 24 evaluation")
    assert ch3_readings.size_finding(more.iloc[:0]).verdict == "not testable here"


def test_ablate_command_turns_bad_input_into_one_line_errors(tmp_path, capsys):
    """In this process (the console script's own path is tested in tests/test_package.py)."""
    from types import SimpleNamespace

    from padlib import cli

    def run(*args):
        code = cli.main(["ablate", *args])
        err = capsys.readouterr().err
        return SimpleNamespace(returncode=code, stderr=err)

    out = run("no_such_model_xyz")
    assert out.returncode == 2 and out.stderr.startswith("error: unknown model")
    out = run("mobilenet_v2", "--labelled-dir", str(tmp_path / "missing"))
    assert out.returncode == 2 and "does not exist" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    mine = tmp_path / "tables"
    mine.mkdir()
    (mine / "notes.csv").write_text("mine")
    out = run("mobilenet_v2", "--out", str(mine))  # refused before any model is loaded
    assert out.returncode == 2 and "--force" in out.stderr and (mine / "notes.csv").read_text() == "mine"
    out = run("mobilenet_v2", "--out", str(mine / "notes.csv"))  # a file where a folder is wanted
    assert out.returncode == 2 and "is a file" in out.stderr and (mine / "notes.csv").read_text() == "mine"


def test_zero_ablating_every_channel_of_a_conv_before_batchnorm_equals_zeroing_the_bn_output():
    # in space="preact" (the scanner's space) the pre-activation is what is set to 0: for conv "0" that is
    # the output of its BatchNorm "1"; built independently by giving the BN zero weight and bias
    net, x = toy_net(), images()
    zeroed = toy_net()
    with torch.no_grad():
        zeroed[1].weight.zero_()
        zeroed[1].bias.zero_()
    with interventions.ablate_channels(net, [("0", c) for c in range(6)], "zero"):
        assert torch.allclose(net(x), zeroed(x), atol=1e-5)
    # the conv's own output zeroed instead leaves the BN's shift: a different network
    with interventions.ablate_channels(net, [("0", c) for c in range(6)], "zero", space="output"):
        assert not torch.allclose(net(x), zeroed(x), atol=1e-3)


def scan_table(net, x):
    with _quiet():
        return padlib.find_pans(net, x, progress=False, batch_size=4)


class _quiet:
    def __enter__(self):
        import warnings
        self.w = warnings.catch_warnings()
        self.w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *a):
        return self.w.__exit__(*a)


def test_means_from_scan_equal_a_second_pass_over_the_probe_images():
    net, x = toy_net(), images(8, 12)
    table = scan_table(net, x)
    from_scan = interventions.means_from_scan(table, net, ["0", "3", "5"])
    direct = interventions.channel_means(net, x, ["0", "3", "5"])
    for layer in ("0", "3", "5"):
        assert torch.allclose(from_scan[layer], direct[layer], atol=1e-5)
    with pytest.raises(padlib.PadlibError, match="every channel"):
        interventions.means_from_scan(table[table.channel != 2], net, ["0"])


def test_ablation_perturbations_by_hand_and_larger_for_a_channel_with_a_border_response():
    net, x = toy_net(), images(5, 12)
    layers = ["0"]
    means = {"0": torch.linspace(-0.2, 0.3, 6, dtype=torch.float64)}
    std = np.array([0.5, 1.0, 2.0, 1.0, 1.5, 0.8])
    table = pd.DataFrame({"layer": "0", "channel": range(6), "bn": "1", "interior_std": std})
    pert = interventions.ablation_perturbations(net, x, table, means, layers=layers)
    assert torch.equal(pert.logits, net(x).detach())  # the same forward gives the intact logits
    with torch.no_grad():
        conv = net[0](x).double()
        pre = net[1](net[0](x)).double()
        mean_pre = net[1](means["0"].float().view(1, 6, 1, 1).expand(1, 6, 12, 12)).double()
    w = torch.as_tensor(std).view(1, 6, 1, 1) ** 2
    ring = padding.ring_mask((12, 12), {s: 1 for s in padlib.padding.SIDES})  # 3x3, padding 1: a one-pixel ring
    expect = {("mean", "all"): ((pre - mean_pre) ** 2 / w).mean((2, 3)),
              ("zero", "all"): (pre ** 2 / w).mean((2, 3)),
              ("mean", "border"): ((pre - mean_pre) ** 2 / w)[..., ring].sum(-1) / 144,
              ("zero", "border"): (pre ** 2 / w)[..., ring].sum(-1) / 144}
    for (mode, region), e in expect.items():
        got = pert.per_channel[(mode, region)]["0"]
        assert np.allclose(got, e.numpy(), rtol=1e-4, atol=1e-6), (mode, region)
        assert np.allclose(pert.size([("0", 1), ("0", 4)], mode, region), e[:, [1, 4]].mean(1).numpy(), rtol=1e-4)
    assert (pert.per_channel[("mean", "border")]["0"] <= pert.per_channel[("mean", "all")]["0"] + 1e-9).all()
    # a channel whose border differs from its interior (a planted PAN: its top row reads zeros) is a larger
    # mean ablation on the border than an ordinary channel of the same interior spread
    planted = toy_net()
    with torch.no_grad():
        planted[0].weight[0] = 0
        planted[0].weight[0, :, 1, 1] = 1.0  # channel 0: identity-like, no border response
        planted[0].weight[1] = 0
        planted[0].weight[1, :, 1, 1] = 1.0
        planted[0].weight[1, :, 0, :] = 3.0  # channel 1: also reads the top row: the padding changes it
    x = x + 2.0  # inputs with a non-zero mean, so zero padding shifts channel 1's top row
    table = scan_table(planted, x)
    means = interventions.means_from_scan(table, planted, ["0"])
    p = interventions.ablation_perturbations(planted, x, table, means, layers=["0"])
    border = p.per_channel[("mean", "border")]["0"].mean(0)
    assert border[1] > 2 * border[0]


def test_pan_ablation_reports_perturbation_and_size_adjusted_kl():
    net, x = toy_net(), images(12, 12)
    table = scan_table(net, x)
    table = table.assign(is_pan=(table.layer == "5") & table.channel.isin([0, 1]))
    pans = table[table.is_pan]
    controls = interventions.random_control(table, k=3, seed=0)
    means = interventions.means_from_scan(table, net)
    pert = interventions.ablation_perturbations(net, x, table, means)
    study = ch3_design.pan_ablation(net, x, pans, controls, means=means, reference=pert.logits, n_boot=100,
                           progress=False, perturbations=pert)
    comp = study.comparison.set_index(["mode", "region", "metric"])
    row = comp.loc[("mean", "all", "perturbation")]
    assert row.pans == pytest.approx(float(pert.size(pans, "mean", "all").mean()))
    ratio = comp.loc[("mean", "all", "kl_per_perturbation")]
    kl = study.evaluations[("PANs", -1, "mean", "all")].per_image
    assert ratio.pans == pytest.approx(kl.kl.mean() / kl.perturbation.mean())
    assert ratio.diff_ci_low <= ratio.difference <= ratio.diff_ci_high
    assert ratio.excess_ci_low <= ratio.excess <= ratio.excess_ci_high
    assert ratio.excess == pytest.approx(ratio.pans / ratio.controls_mean - 1)
    assert (ratio.p < 0.05) == (ratio.diff_ci_low > 0 or ratio.diff_ci_high < 0) or min(
        abs(ratio.diff_ci_low), abs(ratio.diff_ci_high)) < 1e-3  # p and interval agree (up to the grain)
    secondary = ch3_readings.secondary_ablation_table(study.comparison.assign(model="toy"))
    assert ("toy", "mean/border (primary)") in secondary.index and {"KL", "KL per unit", "size ratio"} <= set(secondary)


def test_bootstrap_test_p_agrees_with_its_interval():
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.3, 1.0, -1.0):
        v = rng.normal(shift, 1.0, 30)
        est, lo, hi, p = stats.bootstrap_test((v,), lambda x, axis=-1: x.mean(axis), 2000, 0)
        assert est == pytest.approx(v.mean()) and lo < est < hi
        assert (p < 0.05) == (lo > 0 or hi < 0) or min(abs(lo), abs(hi)) < 0.02
    assert np.isnan(stats.bootstrap_test((np.ones(1),), lambda x, axis=-1: x.mean(axis))[3])


def planted_comparison(rows, size_ratio=1.0):
    """A comparison table with the primary rows (mean/border, KL against size-matched controls), planted per model:
    (model, excess, low, high, p); the per-unit rows are planted with the opposite sign (they must not vote), the
    perturbation rows with the controls at ``size_ratio`` times the PANs' size, and a zero/all line resolved above."""
    out = []
    for m, e, lo, hi, p in rows:
        for metric, sign in (("kl_per_perturbation", -1), ("kl", 1)):
            e_, lo_, hi_ = (sign * e, lo, hi) if sign > 0 else (-e, -hi, -lo)
            out.append({"model": m, "mode": "mean", "region": "border", "metric": metric, "pans": 1 + e_,
                        "controls_mean": 1.0, "controls_min": 0.9, "controls_max": 1.1, "difference": e_,
                        "diff_ci_low": lo_, "diff_ci_high": hi_, "p": p, "excess": e_, "excess_ci_low": lo_,
                        "excess_ci_high": hi_, "controls_below_pans": 5 * (e_ > 0), "controls_above_pans": 5 * (e_ < 0),
                        "n_controls": 5, "n_images": 24, "n_pans": 40})
        out.append({"model": m, "mode": "mean", "region": "border", "metric": "perturbation", "pans": 2.0,
                    "controls_mean": 2.0 * size_ratio, "n_controls": 5, "n_images": 24, "n_pans": 40})
        out.append({"model": m, "mode": "zero", "region": "all", "metric": "kl", "pans": 2.0, "controls_mean": 1.0,
                    "controls_min": 0.9, "controls_max": 1.1, "difference": 1.0, "diff_ci_low": 0.5,
                    "diff_ci_high": 1.5, "p": 0.001, "excess": 1.0, "excess_ci_low": 0.5, "excess_ci_high": 1.5,
                    "controls_below_pans": 5, "controls_above_pans": 0, "n_controls": 5, "n_images": 24})
    return pd.DataFrame(out)


def test_primary_ablation_test_reads_only_the_pre_specified_row_and_applies_holm():
    from padlib.chapters.findings import CONTRADICTED, INCONCLUSIVE, SUPPORTED
    # every model above random per unit of perturbation, raw p small enough after Holm: supported
    up = planted_comparison([("m1", 0.5, 0.2, 0.8, 0.004), ("m2", 0.4, 0.1, 0.7, 0.01), ("m3", 0.6, 0.3, 0.9, 0.002)])
    t = ch3_readings.primary_ablation_table(up)
    assert t.p_holm.tolist() == pytest.approx([0.008, 0.01, 0.006])
    assert t.verdict.tolist() == [SUPPORTED] * 3
    f = ch3_readings.ablation_finding(up)
    assert f.verdict == SUPPORTED and "above the controls in 3 of 3 models, below in 0, unresolved in 0" in f.observed
    assert "m1 +50% [+20%, +80%]" in f.observed and "m1 0.008" in f.test and f.detectable
    # Holm turns a raw p of 0.03 into 0.09: the interval alone no longer counts
    holm = planted_comparison([("m1", 0.5, 0.2, 0.8, 0.03), ("m2", 0.4, 0.1, 0.7, 0.03), ("m3", 0.6, 0.3, 0.9, 0.03)])
    assert ch3_readings.primary_ablation_table(holm).verdict.tolist() == [INCONCLUSIVE] * 3
    # one model resolved below random: contradicted, and the sentence counts it
    down = planted_comparison([("m1", 0.5, 0.2, 0.8, 0.004), ("m2", -0.5, -0.7, -0.3, 0.002)])
    f = ch3_readings.ablation_finding(down)
    assert f.verdict == CONTRADICTED and "above the controls in 1 of 2 models, below in 1, unresolved in 0" in f.observed
    # an interval short of the declared smallest effect of interest: contradicted by the equivalence test
    short = planted_comparison([("m1", 0.05, -0.05, 0.2, 0.4)])
    assert ch3_readings.ablation_finding(short).verdict == CONTRADICTED
    # an interval that reaches it: inconclusive, with the smallest detectable effect stated
    wide = planted_comparison([("m1", 0.1, -0.2, 0.4, 0.4)])
    f = ch3_readings.ablation_finding(wide)
    assert f.verdict == INCONCLUSIVE and "unresolved in 1" in f.observed and "%" in f.detectable
    # the per-unit rows (planted the other way) and the zero/all line change no mean/border verdict
    assert ch3_readings.primary_ablation_table(up).excess.tolist() == [0.5, 0.4, 0.6]
    # the controls' size is read from the perturbation rows and said in the note
    assert "the controls' ablation size is x1.00 to x1.00 the PANs'" in f.note
    assert "x0.90 to x0.90" in ch3_readings.ablation_finding(planted_comparison([("m1", 0.1, -0.2, 0.4, 0.4)],
                                                                                size_ratio=0.9)).note
    assert ch3_readings.ablation_finding(up.iloc[:0]).verdict == "not testable here"
    # a bootstrap p at its resolution (no resample on the other side) is an upper bound, and says so
    assert ch3_design.at_floor(2 / 1001, 1000) and not ch3_design.at_floor(4 / 1001, 1000)
    floor = up.assign(p=2 / 1001, p_floor=True)
    assert "m1 ≤ 0.006" in ch3_readings.ablation_finding(floor).test
    assert ch3_readings.primary_ablation_display(ch3_readings.primary_ablation_table(floor))["Holm p"].iloc[0] == "≤ 0.006"
    assert "m1 0.008" in ch3_readings.ablation_finding(up).test  # not at the floor: the plain value


def test_direction_counts_and_the_scale_are_computed():
    assert ch3_readings.direction_counts([0.1, -0.3, -0.1], [0.2, -0.1, 0.1], [0.15, -0.2, 0.0], "more", "less") == \
        "more in 1 of 3 models, less in 1, unresolved in 1"
    assert ch3_readings.direction_counts([-0.3], [-0.1], [-0.2], "more", "less", "ablations") == \
        "more in 0 of 1 ablations, less in 1, unresolved in 0"
    assert ch3_readings.model_families(["mobilenet_v2", "tf_efficientnet_lite0", "tf_efficientnet_lite2"]) == [
        "mobilenet", "tf_efficientnet_lite"]
    assert ch3_readings.evidence_scale(["mobilenet_v2"], 24) == "1 pretrained ImageNet model, 1 family; 24 evaluation images"


def fake_mover_reports(pan_shared: bool, n_models=3, n=12, k=20, n_controls=3):
    """Models whose PAN ablation shifts every image toward one class (shared across models) or toward a class of
    its own per model, and whose random controls do the opposite."""
    from padlib.experiments.ch3_ablation import AblationStudy
    reports = []
    for i in range(n_models):
        g = torch.Generator().manual_seed(i)
        ref = torch.randn(n, k, generator=g)

        def pushed(cls, seed):
            noise = 0.3 * torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
            out = ref + noise
            out[:, cls] += 3.0
            return interventions.compare_logits(out, ref)
        evs = {("PANs", -1, "mean", "border"): pushed(0 if pan_shared else 3 + 4 * i, 100 + i)}
        for c in range(n_controls):
            evs[("random", c, "mean", "border")] = pushed(3 + 4 * i if pan_shared else 0, 200 + 10 * i + c)
        study = AblationStudy(pd.DataFrame(), evs, pd.DataFrame())
        reports.append(ch3_design.ModelAblation(f"net{i}", None, None, interventions.compare_logits(ref), study, {},
                                                {}, None, n, False))
    return reports


def test_mover_test_against_the_random_control_null_on_both_sides():
    from padlib.chapters.findings import CONTRADICTED, SUPPORTED
    shared = ch3_readings.mover_table(fake_mover_reports(True), n_boot=300)
    assert shared.primary.tolist() == [True] and shared.n_pairs.iloc[0] == 3
    r = shared.iloc[0]
    assert r.pans > 0.9 > r.null and r.ci_low > 0 and r.p < 0.05
    f = ch3_readings.mover_finding(shared)
    assert f.verdict == SUPPORTED and f"{r.pans:.3f} for the PANs vs {r.null:.3f}" in f.observed
    assert f.scale.startswith("3 pretrained ImageNet models, 1 family; 12 evaluation images, 3 model pairs")
    two = ch3_readings.mover_finding(ch3_readings.mover_table(fake_mover_reports(True, n_models=2), n_boot=50))
    assert "2 pretrained ImageNet models, 1 family; 12 evaluation images, 1 model pair," in two.scale
    own = ch3_readings.mover_table(fake_mover_reports(False), n_boot=300)
    assert own.ci_high.iloc[0] < 0 and ch3_readings.mover_finding(own).verdict == CONTRADICTED
    # the statistic at the full sample is the mean of mover_consistency's correlations
    reports = fake_mover_reports(True)
    evs = {(r.model, lab): ev for r in reports for lab, ev in r.interventions().items()}
    c = interventions.mover_consistency(evs)
    assert shared.pans.iloc[0] == pytest.approx(c[c.intervention == "PANs mean/border"].correlation.mean())
    one = ch3_readings.mover_table(fake_mover_reports(True, n_models=1), n_boot=50)
    assert ch3_readings.mover_finding(one).verdict == "not testable here"


def test_chapter_findings_box_gives_each_section_its_own_line():
    """Each claim's line alone equals its line in the full box (one function, one table)."""
    comparison = planted_comparison([("m1", 0.5, 0.2, 0.8, 0.004), ("m2", -0.5, -0.7, -0.3, 0.002)])
    movers = ch3_readings.mover_table(fake_mover_reports(True), n_boot=100)
    sizes = planted_size_table([("m1", 0.2, 0.1, 0.3, 0.001), ("m2", 0.2, 0.1, 0.3, 0.001)])
    readout = ch3_readings.readout_table(planted_readout({"m1": (0.3, 0.1, 0.1), "m2": (0.3, 0.1, 0.1)}))
    full = ch3_readings.chapter_findings_box(comparison, movers, sizes, readout)
    # one line per ablation run (mean/border first, then zero/all), then movers, the two readout lines, size
    s = ch3_readings.SECTIONS
    assert [f.section for f in full] == [s["ablation"]] * 2 + [s["movers"], s["readout"], s["readout"], s["size"]]
    assert "(mean/border ablation)" in full[0].claim and "zero/all ablation, network breakdown" in full[1].claim
    assert "breakdown" in full[1].note and "breakdown" not in full[0].note
    assert ch3_readings.chapter_findings_box(comparison) == full[:2]
    assert ch3_readings.chapter_findings_box(movers=movers) == full[2:3]
    assert ch3_readings.chapter_findings_box(readout=readout) == full[3:5]
    assert ch3_readings.chapter_findings_box(size_table=sizes) == full[5:]
    assert ch3_readings.chapter_findings_box() == []


def test_notebook_colour_words_match_the_figures():
    import nbformat
    from padlib.viz.style import CONTROL, PAN_COLOUR, colour_name
    nb = nbformat.read("notebooks/03_performance_ablation.ipynb", 4)
    text = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert colour_name(PAN_COLOUR) in text and colour_name(CONTROL) in text
    for word in (" red", "(red", " blue", "issue"):
        assert word not in text, word


def test_channels_last_conversion_leaves_padding_module_weights_alone():
    """The ablation's channels-last evaluation must work on any padlib model, a Padding Module one included
    (``model.to(memory_format=channels_last)`` fails on its 5-D predictor weights)."""
    from padlib.models import conv_weights_to
    from padlib.layers import convert_padding

    net = convert_padding(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1)), "padding_module")
    conv_weights_to(net, torch.channels_last)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net[0].scheme.weight.dim() == 5
    x = torch.randn(2, 3, 8, 8).to(memory_format=torch.channels_last)
    assert net(x).shape == (2, 4, 8, 8)
    conv_weights_to(net, torch.contiguous_format)
    assert net[0].weight.is_contiguous()


def test_excess_plot_fills_the_primary_row_and_draws_the_smallest_effect_of_interest():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from padlib.viz import ch3_ablation as figures
    from padlib.viz.style import MODEL_COLOURS
    comparison = planted_comparison([("mobilenet_v2", 0.5, 0.2, 0.8, 0.004), ("tf_efficientnet_lite0", -0.5, -0.7, -0.3,
                                                                              0.002)])
    fig = figures.excess_plot(comparison, sesoi=0.25)
    raw, unit = fig.axes[:2]
    assert [t.get_text() for t in raw.get_yticklabels()][0] == "mean/\nborder\n(primary)"
    assert any(abs(line.get_xdata()[0] - 1.25) < 1e-9 for line in raw.get_lines() if line.get_linestyle() == "--")
    assert not [line for line in unit.get_lines() if line.get_marker() == "o" and line.get_markerfacecolor() != "white"]
    filled = [line for line in raw.get_lines() if line.get_marker() == "o" and line.get_markerfacecolor() != "white"]
    assert {matplotlib.colors.to_hex(line.get_color()) for line in filled} == {
        MODEL_COLOURS["mobilenet_v2"].lower(), MODEL_COLOURS["tf_efficientnet_lite0"].lower()}
    plt.close(fig)
    with pytest.raises(padlib.PadlibError, match="no PAN-vs-control excess"):
        figures.excess_plot(comparison.drop(columns="excess"))


def planted_readout(models: dict, n_groups: int = 10, n_matched: int = 3, noise: float = 0.02, seed: int = 0):
    """Readout rows planted per model: {model: (R^2 PANs, R^2 matched, R^2 random init)}; per photograph the sst is
    1 and each set's sse is 1 - R^2 plus a little noise (two images per photograph, one layer)."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, (pan, matched, init) in models.items():
        sets = {"PANs": pan, **{f"matched #{c}": matched for c in range(n_matched)}, "random init": init}
        for name, r2 in sets.items():
            for g in range(n_groups):
                for i in (2 * g, 2 * g + 1):
                    rows.append({"model": model, "set": name, "layer": "conv", "image": i, "group": g, "channels": 4,
                                 "sse": 0.5 * (1 - r2) + noise * rng.normal(), "sst": 0.5})
    return pd.DataFrame(rows)


def test_readout_tests_on_both_sides_and_their_words_are_computed():
    from padlib.chapters.findings import CONTRADICTED, INCONCLUSIVE, SUPPORTED
    t = ch3_readings.readout_table(planted_readout({"m1": (0.4, 0.1, 0.2), "m2": (0.35, 0.1, 0.1)}), n_boot=500)
    assert t.r2_pans.tolist() == pytest.approx([0.4, 0.35], abs=0.02)
    assert t.r2_matched.tolist() == pytest.approx([0.1, 0.1], abs=0.02)
    assert (t.vs_matched_low > 0.05).all() and t.vs_matched_verdict.tolist() == [SUPPORTED] * 2
    assert t.vs_matched_holm.max() <= 2 * t.vs_matched_p.max() + 1e-12
    f = ch3_readings.readout_finding(t, "vs_matched")
    assert f.verdict == SUPPORTED and "higher for the PANs in 2 of 2 models, lower in 0, unresolved in 0" in f.observed
    assert f"m1 {t.r2_pans[0]:.3f} vs {t.r2_matched[0]:.3f}" in f.observed and "20 evaluation images, 10 photographs" in f.scale
    g = ch3_readings.readout_finding(t, "vs_init")
    assert g.verdict == SUPPORTED and g.claim == ch3_readings.LEARNED_CLAIM
    assert f"m2 {t.r2_pans[1]:.3f} vs {t.r2_init[1]:.3f}" in g.observed
    # PANs below the matched channels in one model: contradicted, and counted
    down = ch3_readings.readout_table(planted_readout({"m1": (0.4, 0.1, 0.1), "m2": (0.1, 0.4, 0.1)}), n_boot=500)
    f = ch3_readings.readout_finding(down)
    assert f.verdict == CONTRADICTED and "higher for the PANs in 1 of 2 models, lower in 1, unresolved in 0" in f.observed
    # equal in truth, resolved short of the declared smallest effect: contradicted by the equivalence test
    same = planted_readout({"m1": (0.3, 0.3, 0.3)}, noise=0.0)
    pan = same["set"] == "PANs"
    same.loc[pan, "sse"] += 0.01 * (-1.0) ** same.loc[pan, "group"]  # PANs = matched on average, jittered
    same = ch3_readings.readout_table(same, n_boot=500)
    assert same.vs_matched_low.iloc[0] < 0 < same.vs_matched_high.iloc[0] < ch3_readings.READOUT_SESOI
    assert ch3_readings.readout_finding(same).verdict == CONTRADICTED
    # noisy and small: inconclusive, with the smallest detectable effect stated
    noisy = ch3_readings.readout_table(planted_readout({"m1": (0.33, 0.3, 0.3)}, n_groups=3, noise=0.2), n_boot=500)
    f = ch3_readings.readout_finding(noisy)
    assert f.verdict == INCONCLUSIVE and "R²" in f.detectable and "unresolved in 1" in f.observed
    assert ch3_readings.readout_finding(ch3_readings.readout_table(pd.DataFrame())).verdict == "not testable here"


def test_border_distance_readout_finds_a_planted_code_and_keeps_photographs_whole():
    from padlib.position import border_distance, border_distance_readout

    d = border_distance((5, 7))
    assert d[0].abs().sum() == 0 and d[:, 0].abs().sum() == 0 and d[2, 3] == 1 and d[1, 1] == 0.5

    class Planted(nn.Module):
        """'feat': channel 0 is the border distance (+ noise), channel 1 noise only."""
        def __init__(self):
            super().__init__()
            self.feat = nn.Identity()

        def forward(self, x):
            dist = border_distance(x.shape[-2:]).float().expand(len(x), 1, -1, -1)
            return self.feat(torch.cat([dist + 0.05 * x[:, :1], x[:, 1:2]], 1)).mean((2, 3))

    x = torch.randn(12, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    rows = border_distance_readout(Planted(), x, {"code": {"feat": [0]}, "noise": {"feat": [1]}},
                                   groups=np.repeat(np.arange(6), 2), positions=64)
    r2 = 1 - rows.groupby("set").sse.sum() / rows.groupby("set").sst.sum()
    assert r2["code"] > 0.9 and r2["noise"] < 0.1
    assert set(rows.groupby("image").group.first()) == set(range(6))
    with pytest.raises(padlib.PadlibError, match="two groups"):
        border_distance_readout(Planted(), x, {"code": {"feat": [0]}}, groups=np.zeros(12))


def test_matched_controls_lie_within_the_caliper_in_the_pans_layer_and_drop_the_unmatchable():
    from padlib.experiments.ch3_controls import matched_control, matching_balance
    rows, sizes = [], []
    for layer, n in (("a", 12), ("b", 10)):
        for c in range(n):
            rows.append({"layer": layer, "channel": c, "is_pan": c < 3})
            size = {0: 1.0, 1: 2.0, 2: 100.0}.get(c, 0.5 + 0.2 * c) if c < 3 else 0.5 + 0.2 * c
            sizes.append({"layer": layer, "channel": c, "size": size})
    table, sizes = pd.DataFrame(rows), pd.DataFrame(sizes)
    size = sizes.set_index(["layer", "channel"])["size"]
    matched, controls = matched_control(table, sizes, k=4, seed=1, caliper=1.2)
    # the PAN of size 100 has no non-PAN channel within x1.2: left out; the others are matched in every draw
    assert sorted(zip(matched.layer, matched.channel)) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert len(controls) == 4 * len(matched) and set(controls.control) == {0, 1, 2, 3}
    for r in controls.itertuples():
        assert r.channel >= 3  # a non-PAN channel, of the PAN's own layer
        ratio = size[(r.layer, r.channel)] / size[(r.layer, r.pan_channel)]
        assert 1 / 1.2 - 1e-9 <= ratio <= 1.2 + 1e-9
    assert not controls.duplicated(["control", "layer", "channel"]).any()  # without replacement within a draw
    balance = matching_balance(6, matched, controls)
    assert balance["matched"] == 4 and balance["share"] == pytest.approx(4 / 6)
    assert 1 / 1.2 <= balance["size_ratio_min"] <= balance["size_ratio_max"] <= 1.2
    again = matched_control(table, sizes, k=4, seed=1, caliper=1.2)[1]
    assert again.equals(controls)  # seeded
    # no caliper: every PAN keeps a control, the nearest available (the extreme one gets the largest channel)
    matched, controls = matched_control(table, sizes, k=2, seed=0, caliper=None)
    assert len(matched) == 6
    assert set(controls[(controls.layer == "a") & (controls.pan_channel == 2)].channel) == {11}


def test_226_has_225s_feature_map_sizes_at_every_padded_layer_and_223_does_not():
    from padlib.audit import padding_audit
    from padlib.models import load_model
    net = load_model("mobilenet_v2", pretrained=False)

    def maps(size):
        a = padding_audit(net, size)
        return list(zip(a["layer"], a["out_h"], a["out_w"])), int(a["uneven"].sum())

    (m225, u225), (m226, u226), (m224, _), (m223, _) = (maps(s) for s in (225, 226, 224, 223))
    assert m225 == m226 and u225 == 0 < u226  # same maps, only the evenness of the padding differs
    assert m224 != m225 and m223 != m225 and m223 == m224


def test_dose_and_ablation_display_words_come_from_the_tables():
    dose = pd.DataFrame([{"model": "m", "k": k, "metric": "kl", "pans": 0.1 * k, "controls_mean": 0.05 * k,
                          "excess": e, "excess_ci_low": lo, "excess_ci_high": hi, "pans_ablated": k,
                          "size_ratio": r} for k, e, lo, hi, r in ((1, 1.0, 0.5, 1.5, 0.9), (4, -0.5, -0.8, -0.2, 1.1),
                                                                      (16, 0.1, -0.2, 0.4, 1.0))])
    assert ch3_readings.dose_sentence(dose).startswith(
        "Top-k PANs against their nearest-size controls: KL above the controls' in 1 of 3 model-and-k steps, below "
        "in 1, unresolved in 1; the controls' ablation size is x0.90 to x1.10 the PANs'")
    assert ch3_readings.dose_display(dose)["size ratio"].tolist() == ["x0.90", "x1.10", "x1.00"]
    comparison = planted_comparison([("m1", 0.5, 0.2, 0.8, 0.004)], size_ratio=0.95)
    balance = pd.DataFrame([{"model": "m1", "mode": "mean", "region": "border", "pans": 50, "matched": 40,
                             "caliper": 1.2}])
    shown = ch3_readings.ablation_display(comparison, balance)
    assert shown.loc[("mean/border (primary)", "m1"), "PANs compared"] == "40 of 50"
    assert shown.loc[("mean/border (primary)", "m1"), "size ratio"] == "x0.95"
    f = ch3_readings.ablation_finding(comparison, balance=balance)
    assert "40 of 50 (80%)" in f.note and "within x1.2 of its PAN's" in f.note


def test_a_model_without_pans_leaves_the_other_models_comparison_numeric():
    empty = ch3_design._pan_vs_controls({}, 10, 0)
    other = pd.DataFrame([{"mode": "mean", "region": "border", "metric": "kl", "pans": 0.2, "n_controls": 2,
                           "n_images": 4, "controls_mean": 0.1, "excess": 1.0, "excess_ci_low": 0.5,
                           "excess_ci_high": 1.5, "p": 0.01}])
    both = pd.concat([empty.assign(model="none"), other.assign(model="some")], ignore_index=True)
    assert both["n_images"].dtype == float and both["pans"].dtype == float
    line = ch3_readings.ablation_finding(both)
    assert line.verdict != "not testable here" and "some" in line.observed and "none" not in line.observed
