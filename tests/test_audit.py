"""Padding audit: hand-computed cases, a brute-force check of the arithmetic, meta vs real tracing, the zoo."""
import itertools
import json

import pytest
import torch
from torch import nn

import padlib
from padlib import audit as A
from padlib.errors import PadlibError, PadlibTypeError
from padlib.experiments import zoo as zoo_design


def one_conv(k, s, p, d=1):
    return nn.Sequential(nn.Conv2d(1, 1, k, s, p, dilation=d))


def row(model, n, **kw):
    df = padlib.padding_audit(model, n, channels=1, **kw)
    assert len(df) == 1, df
    return df.iloc[0]


def reads(r):
    return (r.read_top, r.read_bottom, r.read_left, r.read_right)


def test_k3_s2_p1_at_224_reads_top_left_only():
    r = row(one_conv(3, 2, 1), 224)
    assert (r.pad_top, r.pad_bottom, r.pad_left, r.pad_right) == (1, 1, 1, 1)
    assert reads(r) == (1, 0, 1, 0)
    assert (r.out_h, r.out_w) == (112, 112)
    assert r.uneven and r.unread_sides == "bottom,right" and r.extra_sides == "top,left"


def test_k3_s2_p1_at_225_is_even():
    r = row(one_conv(3, 2, 1), 225)
    assert reads(r) == (1, 1, 1, 1) and (r.out_h, r.out_w) == (113, 113)
    assert not r.uneven and r.unread_sides == "" and r.extra_sides == ""


def test_7x7_s2_p3():
    # m = 224 + 6 - 6 - 1 = 223, r = 1: one of the three bottom/right padding rows is never read
    r = row(one_conv(7, 2, 3), 224)
    assert reads(r) == (3, 2, 3, 2) and r.out_h == 112 and r.uneven
    assert r.unread_sides == "bottom,right"
    assert not row(one_conv(7, 2, 3), 225).uneven


def test_dilation():
    # k=3, d=2, p=2, s=2 at 224: m = 224 + 4 - 4 - 1 = 223, r = 1 -> 1 of 2 far rows read
    r = row(one_conv(3, 2, 2, d=2), 224)
    assert reads(r) == (2, 1, 2, 1) and r.out_h == 112 and r.dilation == "2x2"
    assert not row(one_conv(3, 2, 2, d=2), 225).uneven


@pytest.mark.parametrize("n,k,pads,uneven", [(224, 3, (0, 1), True), (225, 3, (1, 1), False),
                                             (224, 5, (1, 2), True), (225, 5, (2, 2), False)])
def test_tf_same_odd_and_even(n, k, pads, uneven):
    from timm.layers import Conv2dSame

    r = row(nn.Sequential(Conv2dSame(1, 1, k, 2)), n)
    assert (r.pad_top, r.pad_bottom) == pads == (r.pad_left, r.pad_right)
    assert (r.read_top, r.read_bottom) == pads  # TF SAME puts the extra row where it is read: bottom/right
    assert r.source == "explicit" and r.uneven == uneven
    assert r.extra_sides == ("bottom,right" if uneven else "")


def test_tf_same_max_pool_and_explicit_pad_and_reflect_mode():
    from timm.layers.pool2d_same import MaxPool2dSame

    r = row(nn.Sequential(MaxPool2dSame(3, 2)), 224)
    assert r.op == "max_pool" and (r.pad_top, r.pad_bottom) == (0, 1) and r.pad_mode.startswith("constant(-inf")
    r = row(nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 1, 3, 2)), 224)
    assert (r.pad_left, r.pad_right, r.read_right) == (0, 1, 1) and r.source == "explicit"
    r = row(nn.Sequential(nn.Conv2d(1, 1, 3, 2, 1, padding_mode="reflect")), 224)
    assert r.pad_mode == "reflect" and reads(r) == (1, 0, 1, 0)


def test_ceil_mode_overhang_is_reported_not_uneven():
    r = row(nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)), 225)
    assert r.ceil_overhang == "bottom,right" and not r.uneven and r.out_h == 113
    assert len(padlib.padding_audit(nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True)), 224, channels=1)) == 0


def _brute_force_extent(n, k, s, d, before, after):
    """Output length from torch itself; padding read = how far the window taps reach into each padding."""
    x = torch.zeros(1, 1, n + before + after, 1)
    out = nn.functional.conv2d(x, torch.zeros(1, 1, k, 1), stride=(s, 1), dilation=(d, 1)).shape[2]
    touched = {o * s + t * d for o in range(out) for t in range(k)}
    read_before = before - min(touched) if before else 0
    read_after = max(0, max(touched) - (before + n - 1))
    return out, read_before, read_after


def test_padding_read_matches_brute_force_enumeration():
    from padlib.padding import padding_read

    combos = [c for c in itertools.product(range(6, 19), (1, 2, 3, 5, 7), (1, 2, 3, 4), (1, 2), (0, 1, 2, 3))
              if c[4] and (c[1] - 1) * c[3] + 1 <= c[0] + 2 * c[4]]
    for n, k, s, d, p in combos:
        r = padding_read(n, k, s, d, p, p)
        assert (r["out"], r["read_before"], r["read_after"]) == _brute_force_extent(n, k, s, d, p, p), (n, k, s, d, p)
    for n, k, s, d, p in combos[::37]:  # the audit's rows carry the same numbers
        r = row(one_conv(k, s, p, d), n)
        assert (r.out_h, r.read_top, r.read_bottom) == _brute_force_extent(n, k, s, d, p, p), (n, k, s, d, p)
        assert r.uneven == (r.read_top != r.read_bottom)


def test_out_sizes_match_the_real_forward():
    model = padlib.load_model("mobilenet_v2", pretrained=False)
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[-2:])))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    df = padlib.padding_audit(model, 224)
    assert len(df) == 18
    for r in df.itertuples():
        assert shapes[r.layer] == (r.out_h, r.out_w)


def test_offline_models_lean_as_the_arithmetic_says():
    mnet = padlib.padding_audit(padlib.load_model("mobilenet_v2", pretrained=False), 224)
    assert padlib.audit_summary(mnet) == {"n_padding_layers": 18, "n_uneven": 5, "unread_sides": "bottom,right",
                                          "extra_sides": "top,left", "n_dynamic_same": 0, "n_ceil_overhang": 0}
    lite = zoo_design.build_meta_model("tf_efficientnet_lite0")
    s = padlib.audit_summary(padlib.padding_audit(lite, 224))
    assert s["n_uneven"] == 5 and s["extra_sides"] == "bottom,right" and s["unread_sides"] == ""
    assert s["n_dynamic_same"] == 5
    assert not padlib.padding_audit(lite, 225)["uneven"].any()


def test_meta_trace_equals_real_trace():
    import timm

    real = timm.create_model("tf_efficientnet_lite0").eval()
    meta = zoo_design.build_meta_model("tf_efficientnet_lite0")
    a, b = padlib.padding_audit(real, 224), padlib.padding_audit(meta, 224)
    assert a.equals(b)


def test_even_padding_sizes_five_stride2_stages():
    net = nn.Sequential(*[nn.Conv2d(1, 1, 3, 2, 1) for _ in range(5)])
    sizes = padlib.even_padding_sizes(net, near=224, max_distance=40)
    assert sizes == [225, 193, 257]  # n = 1 (mod 32)
    assert padlib.nearest_even_size(net, 224) == 225
    assert A.nearest_even_size(net, 224, exhaustive=False) == 225
    assert A.nearest_even_size(net, 256, exhaustive=False) == 257


def test_nearest_even_size_search_agrees_with_exhaustive_on_mixed_strides():
    net = nn.Sequential(nn.Conv2d(1, 1, 7, 4, 3), nn.Conv2d(1, 1, 3, 2, 1), nn.MaxPool2d(3, 3, 1))
    for near in (100, 224, 300):
        assert A.nearest_even_size(net, near, 40, exhaustive=False) == A.nearest_even_size(net, near, 40)


def test_no_padding_model_and_errors():
    df = padlib.padding_audit(nn.Sequential(nn.Conv2d(1, 1, 2, 2)), 224, channels=1)
    assert len(df) == 0 and list(df.columns) == A.AUDIT_COLUMNS
    assert len(padlib.padding_audit(nn.Sequential(nn.Conv2d(1, 1, 2, 2)), 224, channels=1, all_layers=True)) == 1
    with pytest.raises(PadlibError, match="does not run on a 4x4"):
        padlib.padding_audit(nn.Sequential(nn.Conv2d(1, 1, 7, 1, 0)), 4, channels=1)
    with pytest.raises(PadlibTypeError):
        padlib.padding_audit(one_conv(3, 2, 1), "224")


def test_zoo_row_and_failures_listed(monkeypatch):
    r = zoo_design.audit_zoo_model("resnet18")
    assert r["status"] == "ok" and r["family"] == "resnet" and r["n_uneven"] == 5
    assert r["nearest_even_size"] == 225 and r["extra_sides"] == "top,left"

    def broken(name):
        raise RuntimeError("cannot build this one\nsecond line")

    monkeypatch.setattr(zoo_design, "build_meta_model", broken)
    df = zoo_design.zoo_audit(["resnet18", "mobilenetv2_100"], progress=False)
    assert list(df["status"]) == ["build_failed"] * 2
    assert df["error"].iloc[0] == "RuntimeError: cannot build this one"


def test_zoo_csv_roundtrip_and_summaries(tmp_path):
    out = tmp_path / "zoo.csv"
    df = zoo_design.zoo_audit(["resnet18", "vit_tiny_patch16_224", "tf_efficientnet_lite0"], progress=False, out_csv=out)
    meta = json.loads(out.with_suffix(".json").read_text())
    import timm

    assert meta["timm_version"] == timm.__version__ and meta["n_models"] == 3
    zoo = padlib.load_zoo_audit(out)
    assert list(zoo["model"]) == list(df["model"]) and zoo.attrs["timm_version"] == timm.__version__
    o = padlib.zoo_overview(zoo)
    assert (o["audited"], o["uneven_at_default"], o["with_padding"]) == (3, 2, 2)
    fam = padlib.zoo_by_family(zoo).set_index("family")
    assert fam.loc["vision_transformer", "uneven_at_default"] == 0.0
    assert fam.loc["efficientnet", "even_at_nearest"] == 1.0


def test_committed_zoo_audit_is_complete():
    zoo = padlib.load_zoo_audit()
    assert zoo["model"].is_unique
    assert set(zoo["status"]) <= {"ok", "build_failed", "forward_failed"}
    assert (zoo.loc[zoo["status"] != "ok", "error"] != "").all()
    import timm

    if zoo.attrs.get("timm_version") == timm.__version__:
        assert set(zoo["model"]) == set(timm.list_models())
    row = zoo.set_index("model").loc["tf_efficientnet_lite0"]
    assert row["n_uneven"] == 5 and row["extra_sides"] == "bottom,right"


def test_cli_audit(capsys):
    from padlib.cli import main

    assert main(["audit", "mobilenet_v2", "--size", "224", "--distance", "2"]) == 0
    out = capsys.readouterr().out
    assert "5 uneven" in out and "[225]" in out


def test_explicit_pads_of_feature_maps_count_and_token_pads_do_not():
    class WindowPad(nn.Module):  # pads a channels-last map up to a multiple of 7, as windowed attention does
        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = nn.functional.pad(x, (0, 0, 0, (-x.shape[2]) % 7, 0, (-x.shape[1]) % 7))
            tokens = x.reshape(x.shape[0], 2, -1, x.shape[-1])  # (batch, heads, tokens, channels)
            return nn.functional.pad(tokens, (0, 0, 1, 0))  # a class-token slot: not spatial padding

    df = padlib.padding_audit(nn.Sequential(nn.Conv2d(1, 4, 1), WindowPad()), 54, channels=1)
    assert len(df) == 1
    r = df.iloc[0]
    assert r.op == "pad" and (r.pad_right, r.pad_bottom, r.pad_left, r.pad_top) == (2, 2, 0, 0)
    assert r.uneven and r.extra_sides == "bottom,right"


def test_zoo_counts_models_without_uneven_padding_as_even_even_with_non_square_inputs():
    import pandas as pd

    zoo = pd.DataFrame([
        # non-square input, no uneven padding: the zoo row has no nearest_even_size, but it is even at default
        {"model": "a", "family": "f", "tf_port": False, "status": "ok", "n_padding_layers": 3, "n_uneven": 0,
         "extra_sides": "", "nearest_even_size": None},
        {"model": "b", "family": "f", "tf_port": True, "status": "ok", "n_padding_layers": 3, "n_uneven": 2,
         "extra_sides": "bottom,right", "nearest_even_size": 225},
        {"model": "c", "family": "f", "tf_port": False, "status": "ok", "n_padding_layers": 3, "n_uneven": 2,
         "extra_sides": "top,left", "nearest_even_size": None},  # uneven, no even size nearby
        {"model": "d", "family": "f", "tf_port": False, "status": "build_failed", "n_padding_layers": None,
         "n_uneven": None, "extra_sides": "", "nearest_even_size": None},
    ])
    fam = padlib.zoo_by_family(zoo).set_index("family")
    assert fam.loc["f", "models"] == 3 and fam.loc["f", "even_at_nearest"] == pytest.approx(2 / 3)
    o = padlib.zoo_overview(zoo)
    assert o["even_at_default_or_nearest"] == 2 and o["uneven_fixed_by_nearest_size"] == 1
    g = zoo_design.zoo_side_group(zoo, "bottom,right")
    assert g == {"extra_sides": "bottom,right", "architectures": 1, "tf_ports": 1, "families": {"f": 1}}


def test_missing_zoo_audit_error_promises_no_duration(tmp_path):
    with pytest.raises(PadlibError, match="recorded in results/zoo_audit.json") as e:
        padlib.load_zoo_audit(tmp_path / "none.csv")
    assert "minutes" not in str(e.value)


def test_zoo_audit_cli_never_overwrites_silently(tmp_path, capsys):
    """A partial audit cannot replace the committed full one; an existing --out needs --force."""
    from padlib.cli import main

    committed = zoo_design.ZOO_CSV.read_bytes()
    assert main(["zoo-audit", "--limit", "1"]) == 2
    assert "pass --out" in capsys.readouterr().err and zoo_design.ZOO_CSV.read_bytes() == committed
    out = tmp_path / "zoo.csv"
    out.write_text("mine")
    assert main(["zoo-audit", "--limit", "1", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "mine"
    assert main(["zoo-audit", "--filter", "resnet18", "--out", str(out), "--force", "--workers", "1"]) == 0
    assert "resnet18" in out.read_text()
