"""border_reach on planted networks whose reach is known exactly.

Every planted network has integer weights and runs in float64 on integer images, so every sum is exact whatever
order a convolution adds in: a cell that reads no padding has error exactly 0.0, and one that does has error > 0.
The expected reach is computed here by arithmetic: a 1-D walk through the layers marks the output cells whose
inputs reach a tile's padding (the network is separable, so rows and columns are tainted independently).
Tiny models and 48-64 px images: the file runs in a few seconds."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import padlib
from padlib.errors import PadlibError

TOL = 1e-9  # below any real error of these planted networks, above float64 rounding (none: integer arithmetic)


def _integer(net: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-2, 3, p.shape, generator=g).double())
    return net


def _images(n=3, size=48, channels=3, seed=1):
    return torch.randint(-3, 4, (n, channels, size, size), generator=torch.Generator().manual_seed(seed)).double()


def stack(k: int, relu: bool = False, dilation: int = 1) -> nn.Sequential:
    layers = []
    for i in range(k):
        layers.append(nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=dilation, dilation=dilation, bias=False))
        if relu and i < k - 1:
            layers.append(nn.ReLU())
    return _integer(nn.Sequential(*layers))


# ---- the arithmetic: which output cells of a tile read padding (1-D, layer by layer) -------------------------

def _tainted(layers, n: int) -> np.ndarray:
    """Walk an n-long input through ``layers`` (('conv', k, s, p, d) or ('up', k, s)): True where an output
    cell depends on padding that a tile adds and the whole image does not have."""
    taint = np.zeros(n, bool)
    for kind, k, s, *rest in layers:
        if kind == "conv":
            p, d = rest
            m = (len(taint) + 2 * p - d * (k - 1) - 1) // s + 1
            new = np.zeros(m, bool)
            for i in range(m):
                idx = [i * s - p + j * d for j in range(k)]
                new[i] = any(q < 0 or q >= len(taint) or taint[q] for q in idx)
        else:  # transposed conv, no padding: output o gathers input i where o = i*s + j
            m = (len(taint) - 1) * s + k
            new = np.zeros(m, bool)
            for i in range(len(taint)):
                for j in range(k):
                    new[i * s + j] |= taint[i]
        taint = new
    return taint


def _expected(layers, tile: int) -> dict:
    """Reach per side (first clean distance, in input px) and overall, from :func:`_tainted`."""
    t = _tainted(layers, tile)
    cells = len(t)
    near = np.arange(cells) * tile // cells
    far = (cells - 1 - np.arange(cells)) * tile // cells
    unit = max(1, tile // cells)
    top = max([near[r] + unit for r in range(cells) if t[r] and near[r] <= far[r]], default=0)
    bottom = max([far[r] + unit for r in range(cells) if t[r] and far[r] <= near[r]], default=0)
    return {"top": top, "bottom": bottom, "margin": max(top, bottom), "stride": tile / cells}


def _check_exact(r, margin: int, overlap: int | None = None):
    """The error is > 0 exactly inside the margin and 0.0 beyond it; the overlap (per axis: the two sides' margins
    summed) is ``overlap``, by default 2 x margin (a symmetric reach), and every image gives the same numbers."""
    overlap = 2 * margin if overlap is None else overlap
    t = r.table[r.table.padding == "model"]
    inside, beyond = t[t.distance < margin], t[t.distance >= margin]
    assert len(inside) and (inside.error > 0).all(), t
    assert len(beyond) and (beyond.error == 0.0).all(), t  # exactly: integer arithmetic in float64
    assert r.margin == margin and r.overlap == r.overlap_rows == r.overlap_cols == overlap
    assert r.margin_interval == (margin, margin) and r.overlap_interval == (overlap, overlap)
    assert r.interval("overlap_rows") == r.interval("overlap_cols") == (overlap, overlap)


@pytest.mark.parametrize("k, relu", [(1, False), (2, True), (3, False), (4, True)])
def test_k_stacked_3x3_convs_reach_exactly_k_px(k, relu):
    net = stack(k, relu)
    assert _expected([("conv", 3, 1, 1, 1)] * k, 16)["margin"] == k  # the arithmetic agrees with the claim
    r = padlib.border_reach(net, _images(), tile=16, tolerance=TOL)
    _check_exact(r, k)  # symmetric: k px at every side, so 2k between tile rows and between tile columns
    assert r.margins == {"top": k, "bottom": k, "left": k, "right": k}
    assert r.stride == 1 and r.tile == 16 and r.n_images == 3 and r.n_tiles == 24 and r.align == 1
    assert r.summary() == (f"tiles of 16 px need at least {2 * k} px of overlap: {2 * k} between tile rows ({k} top "
                           f"+ {k} bottom) and {2 * k} between tile columns ({k} left + {k} right), the px dropped at "
                           f"each inner edge, at 1e-07% tolerance (95% interval over 3 images: {2 * k} to {2 * k} px)")


def test_dilated_convs_reach_two_px_per_layer():
    r = padlib.border_reach(stack(2, dilation=2), _images(), tile=16, tolerance=TOL)
    assert _expected([("conv", 3, 1, 2, 2)] * 2, 16)["margin"] == 4
    _check_exact(r, 4)


def encoder_decoder() -> nn.Sequential:
    """Two stride-2 3x3 convs (padding 1) and two stride-2 transposed 2x2 convs back to full resolution."""
    return _integer(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False), nn.ReLU(),
                                  nn.Conv2d(4, 4, 3, 2, 1, bias=False), nn.ReLU(),
                                  nn.ConvTranspose2d(4, 4, 2, 2, bias=False), nn.ReLU(),
                                  nn.ConvTranspose2d(4, 2, 2, 2, bias=False)))


ENC_DEC = [("conv", 3, 2, 1, 1), ("conv", 3, 2, 1, 1), ("up", 2, 2), ("up", 2, 2)]


def test_stride_2_stages_with_a_transposed_decoder_reach_the_top_and_left_only():
    """A 3x3 stride-2 conv with padding 1 on an even size reads padding on the top and left only; the decoder
    copies each low-resolution cell to 4x4 pixels. The arithmetic: 4 px at the top and left, 0 at the bottom."""
    expected = _expected(ENC_DEC, 32)
    assert expected == {"top": 4, "bottom": 0, "margin": 4, "stride": 1.0}
    r = padlib.border_reach(encoder_decoder(), _images(size=64), tile=32, tolerance=TOL)
    # neighbours meet bottom edge to top edge: 4 + 0 px between tile rows (and columns), not twice the larger 4
    _check_exact(r, 4, overlap=4)
    s = r.sides
    for side, reach in (("top", 4), ("left", 4), ("bottom", 0), ("right", 0)):
        rows = s[s.side == side]
        assert (rows[rows.distance < reach].error > 0).all() and (rows[rows.distance >= reach].error == 0).all()
        assert r.schemes[f"margin_{side}"].iloc[0] == reach
    assert r.margins == {"top": 4, "bottom": 0, "left": 4, "right": 0} and r.align == 4
    assert r.summary() == ("tiles of 32 px need at least 4 px of overlap: 4 between tile rows (4 top + 0 bottom) and "
                           "4 between tile columns (4 left + 0 right), the px dropped at each inner edge, rounded up "
                           "to the model's 4 px stride, at 1e-07% tolerance (95% interval over 3 images: 4 to 4 px)")


def test_a_stride_8_output_maps_tiles_to_cells_on_the_stride_lattice():
    """Three stride-2 convs: one output cell per 8x8 pixels; only the first cell (top and left) reads padding,
    so the margin is one cell, 8 px, and tile positions (and images, cropped) are multiples of 8."""
    net = _integer(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False), nn.Conv2d(4, 4, 3, 2, 1, bias=False),
                                 nn.Conv2d(4, 3, 3, 2, 1, bias=False)))
    layers = [("conv", 3, 2, 1, 1)] * 3
    assert _expected(layers, 32) == {"top": 8, "bottom": 0, "margin": 8, "stride": 8.0}
    r = padlib.border_reach(net, _images(size=69), tile=32, tolerance=TOL)  # 69 px: cropped to 64
    assert r.stride == 8 and set(r.table.distance) <= set(range(0, 32, 8))
    assert (r.tiles.y % 8 == 0).all() and (r.tiles.x % 8 == 0).all() and r.tiles.y.max() <= 64 - 32
    _check_exact(r, 8, overlap=8)  # 8 top + 0 bottom


def test_a_tile_that_is_not_a_multiple_of_the_stride_is_refused():
    net = _integer(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1), nn.Conv2d(4, 3, 3, 2, 1)))
    with pytest.raises(PadlibError, match=r"^tile=20 gives a 3x3 map at layer '2', not a whole stride of the "
                                          r"tile; pass a tile that is a multiple of the model's stride \(8\), "
                                          r"e\.g\. 16 or 24$"):
        padlib.border_reach(net, _images(size=48), tile=20)
    # a U-Net: its output has stride 1, its bottleneck stride 4
    with pytest.raises(PadlibError, match=r"5x5 map at layer '2'.* stride \(4\), e\.g\. 16 or 20$"):
        padlib.border_reach(encoder_decoder(), _images(size=48), tile=18)


def test_an_upsampling_output_counts_distance_in_input_pixels():
    """A 3x3 conv (reach 1 px) then a 2x transposed conv: stride 1/2, each input pixel is 2x2 output cells."""
    net = _integer(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ConvTranspose2d(4, 2, 2, 2)))
    r = padlib.border_reach(net, _images(), tile=16, tolerance=TOL)
    assert r.stride == 0.5
    _check_exact(r, 1)


class DictNet(nn.Module):
    """{"out": a 1-conv map (reach 1), "aux": a 3-conv map (reach 3)}; also a tuple (logits, map) and a
    channels-last map (N, H, W, 2), as CRAFT returns."""

    def __init__(self, form="dict"):
        super().__init__()
        self.form = form
        self.one = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        self.three = stack(3)

    def forward(self, x):
        out, aux = self.one(x), self.three(x)
        if self.form == "dict":
            return {"out": out, "aux": aux}
        if self.form == "tuple":
            return aux.mean((2, 3)), aux
        return out.permute(0, 2, 3, 1), aux


def test_dict_tuple_and_channels_last_outputs():
    x = _images()
    dict_net = _integer(DictNet("dict"))
    _check_exact(padlib.border_reach(dict_net, x, tile=16, tolerance=TOL), 1)  # 'out' by default
    r = padlib.border_reach(dict_net, x, tile=16, tolerance=TOL, output="aux")
    _check_exact(r, 3)
    assert r.output == "['aux']"
    _check_exact(padlib.border_reach(_integer(DictNet("tuple")), x, tile=16, tolerance=TOL, output=1), 3)
    _check_exact(padlib.border_reach(_integer(DictNet("tuple")), x, tile=16, tolerance=TOL,
                                     output=lambda o: o[1]), 3)
    r = padlib.border_reach(_integer(DictNet("last")), x, tile=16, tolerance=TOL)  # (N, 16, 16, 2): channels-last
    _check_exact(r, 1)


def test_a_classifier_gets_one_clear_line():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    with pytest.raises(PadlibError) as e:
        padlib.border_reach(net, torch.randn(2, 3, 32, 32), tile=16)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("border_reach needs a spatial output (N, C, H, W) and the model's output tensor is class "
                          "logits of shape (1, 10); pass output=")


class Counting(nn.Module):
    """A planted net that counts its forwards and the largest batch it saw."""

    def __init__(self):
        super().__init__()
        self.net = stack(2)
        self.calls, self.largest = 0, 0

    def forward(self, x):
        self.calls += 1
        self.largest = max(self.largest, x.shape[0])
        return self.net(x)


BAD = [  # (keyword arguments, images, the words the one line must hold)
    ({"tile": 64}, None, "tile=64 is larger than the images (48 x 48 px)"),
    ({"tile": 48}, None, "tile=48 covers the images (48 x 48 px) whole"),
    ({"tile": 0}, None, "tile= must be >= 2, got 0"),
    ({"tile": True}, None, "tile= must be a whole number, got bool"),
    ({"tile": 16.0}, None, "tile= must be a whole number, got float"),
    ({"tolerance": 0}, None, "tolerance= must be > 0 and < 1, got 0"),
    ({"tolerance": 1.5}, None, "tolerance= must be > 0 and < 1, got 1.5"),
    ({"tolerance": float("nan")}, None, "tolerance= must be > 0 and < 1, got nan"),
    ({"tolerance": "1%"}, None, "tolerance= must be a number, got str"),
    ({"output": 2.5}, None, "output= must be a key, an index or a function, got float"),
    ({"output": "logits"}, None, "output='logits' is not among the forward's outputs"),
    ({"padding": "zeros"}, None, "padding='zeros' is not a scheme border_reach can swap in"),
    ({"padding": 3}, None, "padding= must be True, a scheme name or a list of them"),
    ({"tiles_per_image": 0}, None, "tiles_per_image= must be >= 1, got 0"),
    ({"batch_size": 0}, None, "batch_size= must be >= 1, got 0"),
    ({"ci": 1.0}, None, "ci= must be > 0 and < 1, got 1.0"),
    ({"device": "gpu0"}, None, "device 'gpu0' is not a device"),
    ({}, "numpy", "torch.from_numpy"),
    ({"tile": 16, "size": 16}, 4, "size=16 must be larger than tile=16"),
    ({"padding": True}, "generator", "not a one-shot iterator"),
]


@pytest.mark.parametrize("kwargs, images, words", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_arguments_are_one_line_naming_the_argument_before_any_work(kwargs, images, words):
    net = Counting()
    x = {None: _images(), "numpy": _images().numpy(), "generator": (b for b in [_images()])}.get(images, images)
    kwargs = {"tile": 16, **kwargs}
    with pytest.raises(PadlibError) as e:
        padlib.border_reach(net, x, **kwargs)
    assert "\n" not in str(e.value) and words in str(e.value), str(e.value)
    probe = 1 if "output" in kwargs and isinstance(kwargs["output"], str) else 0  # a key is checked on the output
    assert net.calls == probe, "work started before the bad argument was refused"


def test_outputs_that_do_not_scale_with_the_input_are_refused():
    net = _integer(nn.Sequential(nn.Conv2d(3, 4, 3, padding=0)))  # 'valid': 16 px -> 14 cells
    with pytest.raises(PadlibError, match="scale with the input .* layer '0' maps a 16 px tile to 14x14"):
        padlib.border_reach(net, _images(), tile=16)


def _frame(r):
    return pd.concat([r.table, r.sides, r.tiles, r.schemes], keys=["t", "s", "p", "m"])


def test_the_overlap_rounds_each_axis_up_to_the_lattice_tiles_sit_on():
    """The encoder-decoder (4 px top and left) then a full-resolution 3x3 conv (1 px each side): 5 top, 1 bottom,
    so 6 px between tile rows, rounded up to 8 on the bottleneck's 4 px lattice (tile positions step by 4); twice
    the larger margin would say 10."""
    net = _integer(nn.Sequential(*encoder_decoder(), nn.Conv2d(2, 2, 3, padding=1, bias=False)))
    expected = _expected(ENC_DEC + [("conv", 3, 1, 1, 1)], 32)
    assert (expected["top"], expected["bottom"]) == (5, 1)
    r = padlib.border_reach(net, _images(size=64), tile=32, tolerance=TOL)
    assert r.margins == {"top": 5, "bottom": 1, "left": 5, "right": 1} and r.margin == 5
    assert r.overlap_rows == r.overlap_cols == r.overlap == 8 and r.align == 4
    assert "8 between tile rows (5 top + 1 bottom)" in r.summary()


def test_the_interval_resamples_whole_images_and_a_single_image_gives_none():
    """Tiles of one image go in and out of a resample together: with one image there is no interval over images
    (NaN in ``schemes``, ``None`` from :meth:`interval`, and the summary says so); with several, the interval is
    the one of per-image totals."""
    from padlib.stats import bootstrap_totals

    one = padlib.border_reach(stack(2), _images(1), tile=16, tolerance=TOL, tiles_per_image=8)
    assert one.n_images == 1 and one.n_tiles == 8 and one.overlap == 4
    assert one.interval() is None and one.margin_interval is None and one.overlap_interval is None
    row = one.schemes.iloc[0]
    assert all(np.isnan(row[f"{n}_{b}"]) for n in ("margin", "overlap", "overlap_rows", "overlap_cols")
               for b in ("low", "high"))
    assert one.summary().endswith("at 1e-07% tolerance (no interval: 1 image, and the interval resamples whole "
                                  "images)")
    # several images whose error differs (contrast from 0.2 to 2) at a tolerance the error crosses near 2 px
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 2, 3, padding=1)).double()
    x = torch.randn(6, 3, 48, 48, dtype=torch.float64) * torch.linspace(0.2, 2, 6, dtype=torch.float64)[:, None,
                                                                                                         None, None]
    r = padlib.border_reach(net, x, tile=16, tolerance=0.25, n_boot=200)
    assert r.n_images == 6 and r.n_tiles == 48 and r.margin == 2
    assert r.interval("margin") == (1, 3) and r.interval() == (3, 5)  # wide: 6 images, not 48 tiles
    assert r.summary().endswith("at 25% tolerance (95% interval over 6 images: 3 to 5 px)")
    # the margin's interval is bootstrap_totals over image clusters of the tiles' nearest-edge totals
    tiles = r.tiles.pivot_table(index=["tile", "image"], columns="distance", values=["error", "n"], fill_value=0)
    scale = r.schemes.scale[0]
    per_tile = np.stack([(tiles["error"] * tiles["n"]).to_numpy() * scale, tiles["n"].to_numpy()], 1)
    last = per_tile.shape[-1] - 1

    def margin(tot):
        with np.errstate(divide="ignore", invalid="ignore"):
            above = tot[:, 0] / tot[:, 1] / scale > 0.25
        index = np.where(above.any(-1), above.shape[-1] - np.argmax(above[:, ::-1], -1), 0)
        return np.where(index <= last, index * 1.0, np.inf)

    images = tiles.index.get_level_values("image").to_numpy()
    clustered = bootstrap_totals(per_tile, margin, 200, 0, 0.95, clusters=images)
    assert clustered == (r.schemes.margin_low[0], r.schemes.margin_high[0]) == (1, 3)
    assert bootstrap_totals(per_tile, margin, 200, 0, 0.95) == (2, 2)  # tiles as if independent: false precision


def test_deterministic_and_independent_of_the_batch_size():
    x = _images()
    a = padlib.border_reach(stack(3, True), x, tile=16, tolerance=0.05, batch_size=8)
    b = padlib.border_reach(stack(3, True), x, tile=16, tolerance=0.05, batch_size=8)
    c = padlib.border_reach(stack(3, True), [x[:1], x[1:]], tile=16, tolerance=0.05, batch_size=3)
    pd.testing.assert_frame_equal(_frame(a), _frame(b))
    pd.testing.assert_frame_equal(_frame(a), _frame(c))
    assert a.summary() == b.summary()


def test_tiles_go_through_in_batches():
    net = Counting()
    r = padlib.border_reach(net, _images(2), tile=16, tiles_per_image=7, batch_size=3)
    assert net.largest == 3 and r.n_tiles == 14
    assert net.calls == 1 + 2 * (1 + 3)  # one probe tile; per image one whole forward and 7 tiles in 3 batches


def test_images_of_different_sizes_and_a_generator_without_swaps():
    x = [_images(1, 40), _images(2, 56, seed=3)]
    r = padlib.border_reach(stack(2), (b for b in x), tile=16, tolerance=TOL)
    _check_exact(r, 2)
    assert r.n_images == 3 and sorted(r.tiles.image.unique()) == [0, 1, 2]


def test_padding_swaps_are_measured_too_and_labelled():
    r = padlib.border_reach(stack(2), _images(), tile=16, tolerance=TOL, padding=True)
    assert list(r.schemes.padding) == ["model", "reflect", "replicate", "circular"]
    assert list(r.schemes.swap) == [False, True, True, True]
    assert (r.schemes.margin == 2).all()  # no padding is the neighbouring pixels: a 3x3 stack's reach is the same
    assert (r.schemes.overlap_rows == 4).all() and (r.schemes.overlap_cols == 4).all()
    assert r.summary("reflect").startswith("with reflect padding swapped in at inference, tiles of 16 px need")
    with pytest.raises(PadlibError, match="padding='partial' was not measured"):
        r.summary("partial")


def test_too_small_a_tile_and_no_reach_are_said_plainly():
    r = padlib.border_reach(stack(4), _images(), tile=6, tolerance=TOL)
    assert r.margin is None and r.overlap is None
    assert r.summary() == ("tiles of 6 px are too small at 1e-07% tolerance: the error stays above it up to the "
                           "tile's centre (2 px from the edges) at the top, bottom, left and right edges; use larger "
                           "tiles")
    assert np.isinf(r.schemes.overlap[0]) and r.overlap_rows is None and r.margins["top"] is None
    one = _integer(nn.Sequential(nn.Conv2d(3, 2, 1)))  # a 1x1 conv reads no neighbour: no overlap needed
    r = padlib.border_reach(one, _images(), tile=16, tolerance=TOL)
    assert r.margin == 0 and r.summary().startswith("tiles of 16 px need no overlap at 1e-07% tolerance")


def test_the_model_is_left_untouched_with_swaps_and_a_training_batchnorm():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    net.train()
    net[0].register_forward_hook(lambda *a: None)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the guard's repair warning would fail here
        padlib.border_reach(net, torch.randn(2, 3, 40, 40), tile=16, padding=["reflect", "circular"])
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert all(m.training for m in net.modules()) and len(net[0]._forward_hooks) == 1
    assert all(p.grad is None for p in net.parameters())


def test_int_images_are_probe_photos_twice_the_tile():
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1))
    r = padlib.border_reach(net, 2, tile=16, tiles_per_image=2, n_boot=50)
    assert r.n_images == 2 and r.tiles.y.max() <= 16 and r.margin is not None


def test_the_figure():
    import matplotlib

    matplotlib.use("Agg")
    from padlib.viz.tiling import border_reach_figure

    r = padlib.border_reach(stack(2), _images(), tile=16, tolerance=0.05, padding="reflect")
    fig = border_reach_figure(r)
    assert len(fig.axes[0].lines) >= 2


def test_the_overlap_command_prints_the_summary_and_writes_a_new_csv(monkeypatch, tmp_path, capsys):
    from padlib import cli

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    monkeypatch.setattr(cli, "_check_model", lambda spec: None)
    monkeypatch.setattr(cli, "load_model", lambda spec, device="cpu": net)
    out = tmp_path / "reach.csv"
    argv = ["overlap", "planted", "--tile", "16", "--images", "2", "--tiles", "3", "--tolerance", "0.05",
            "--padding", "--out", str(out)]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "planted: 6 tiles of 16 px from 2 images of 32 px; output tensor at stride 1"
    assert lines[1].startswith("tiles of 16 px need at least 4 px of overlap: 4 between tile rows (2 top + 2 bottom)")
    assert lines[1].endswith("at 5% tolerance (95% interval over 2 images: 4 to 4 px)")
    assert [line.split(" padding")[0] for line in lines[2:5]] == ["with reflect", "with replicate", "with circular"]
    table = pd.read_csv(out)
    assert lines[5] == f"wrote {len(table)} rows to {out}"
    assert list(table.columns) == ["padding", "distance", "error", "n", "n_tiles"]
    assert cli.main(argv) == 2  # the CSV is there now: not overwritten without --force
    assert "already exists; pass --force" in capsys.readouterr().err


def test_the_overlap_command_names_its_flags_in_errors_from_the_method(monkeypatch, capsys):
    from padlib import cli

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    monkeypatch.setattr(cli, "_check_model", lambda spec: None)
    monkeypatch.setattr(cli, "load_model", lambda spec, device="cpu": net)
    assert cli.main(["overlap", "classifier", "--tile", "16", "--images", "1"]) == 2
    err = capsys.readouterr().err.split("\r")[-1]  # after the progress bar, which clears its line
    assert err.count("\n") == 1 and err.startswith("error: border_reach needs a spatial output")
    assert err.endswith("class logits of shape (1, 10); pass --output a key or an index that picks a dense map "
                        "(e.g. --output 'out')\n")


def test_a_constant_output_is_refused_and_swaps_share_the_models_unit():
    const = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1))
    nn.init.zeros_(const[0].weight)
    with pytest.raises(PadlibError, match=r"output tensor is constant on these images \(spread 0\)"):
        padlib.border_reach(const, torch.randn(2, 3, 32, 32), tile=16)
    r = padlib.border_reach(stack(2), _images(), tile=16, padding="circular")
    assert r.schemes.scale.nunique() == 1


def test_a_swap_that_cannot_pad_a_small_map_is_skipped_with_its_reason(monkeypatch, capsys):
    """Reflect padding of 4 on a 4x4 map is impossible: that swap is left out with its reason (the model's own
    padding and the other swaps are measured), in the result and in the command's output."""
    from padlib import cli

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(4, 2, 3, 1, padding=4, dilation=4), nn.Upsample(scale_factor=4))
    r = padlib.border_reach(net, torch.rand(2, 3, 32, 32), tile=16, padding=True, n_boot=20)
    assert set(r.schemes["padding"]) == {"model", "replicate", "circular"}
    assert list(r.skipped) == ["reflect"] and "reflect padding of (4, 4, 4, 4) is impossible on a 4x4" in r.skipped[
        "reflect"]
    with pytest.raises(padlib.PadlibError, match="padding='reflect' could not be measured"):
        r.summary("reflect")
    monkeypatch.setattr(cli, "_check_model", lambda spec: None)
    monkeypatch.setattr(cli, "load_model", lambda spec, device="cpu": net)
    assert cli.main(["overlap", "planted", "--tile", "16", "--images", "2", "--size", "32", "--padding"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("with reflect padding swapped in: not run (reflect padding of (4, 4, 4, 4) is imposs")
