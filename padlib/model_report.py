"""A one-model padding report: the book's questions answered for your model, on one self-contained HTML page.

:func:`report` computes (tidy tables, no plotting); :func:`report_html` renders them with figures inlined as PNG,
so the page opens from disk with no outside request. The methods are the book's own:

- padding audit (chapter 4): which layers pad unevenly at the input size, which side is never read, and the
  nearest input sizes at which every layer pads evenly;
- learned PANs (chapter 1): padding-caused channels beyond the same architecture at random initialisation, with
  one random-init copy scanned the same way as the control, by depth, with the strongest examples;
- mean feature maps and the spatial-bias index (chapter 4) on natural and constant inputs;
- what a padding swap or the even input size does to the predictions at inference (chapter 3), against the
  intact model, with an equally small resize to an uneven size as the control for the even size.

Recommendations are derived from those numbers by stated rules (:data:`RULES`); each names the figure or table it
rests on. They are ours, not the papers'.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from ._compat import moved_names
from ._hooks import check_device, keeps_model
from ._memory import check_run_memory, input_channels
from .audit import audit_summary, even_padding_sizes, padding_audit
from .data import probe_images
from .errors import PadlibError, check_type
from .interventions import intervention_table, model_logits, padding_interventions, size_interventions
from .models import load_model, preprocessing, split_model_spec
from .padding import require_padded_convs
from .pan_tables import learned_depth_profile, strongest_pans
from .pans import first_images, learned_pan_control
from .spatial_bias import (
    bias_agreement,
    constant_inputs,
    depth_layers,
    mean_feature_maps,
    random_init_maps,
    spatial_bias_index,
)

# The rules behind the recommendations (ours). Agreement is the share of images whose top-1 class is unchanged.
RULES = {
    "swap_harmless_agreement": 0.99,  # a padding swap is harmless when the lower CI bound of agreement is above
    "learned_pan_factor": 3.0,  # learned PANs count when the trained share is >= 3x the random-init copy's
    "lean_share": 0.5,  # feature maps lean when at least half the depths lean beyond their standard errors
}


SWAP_MODES = ("reflect", "replicate", "circular")
MAP_DEPTHS = 6  # mean maps shown at this many depths, evenly spaced
IMAGE_CACHE_BYTES = 256 * 2 ** 20  # probe images up to this size are rendered once; more are rendered in each pass


@dataclass
class Recommendation:
    """One plain recommendation and the figure or table it rests on."""

    text: str
    evidence: str


@dataclass
class PaddingReport:
    """Everything :func:`report` measured for one model; :func:`report_html` renders it."""

    model: str
    input_size: int
    n_images: int
    images: str
    audit: pd.DataFrame
    audit_summary: dict
    even_sizes: list
    pan_control: pd.DataFrame
    pan_depth: pd.DataFrame
    strongest: pd.DataFrame
    bias_index: pd.DataFrame
    predictions: pd.DataFrame
    size_test: dict
    recommendations: list
    seconds: dict = field(default_factory=dict)
    scan: object = field(default=None, repr=False)  # the trained model's PanScan (maps for the examples)
    maps: dict = field(default_factory=dict, repr=False)  # label -> FeatureMaps

    def summary_lines(self) -> list[str]:
        """The report's answers in a few plain sentences (the top of the page and the command's output)."""
        s = self.audit_summary
        lines = []
        if s["n_uneven"]:
            even = f"; it pads evenly at {self.even_sizes[0]}" if self.even_sizes else "; no size within reach pads evenly"
            lines.append(f"Padding: {s['n_uneven']} of {s['n_padding_layers']} padding layers pad unevenly at "
                         f"{self.input_size} px (padding never read: {_and(s['unread_sides'])}; more padding read: "
                         f"{_and(s['extra_sides'])}){even}.")
        else:
            lines.append(f"Padding: all {s['n_padding_layers']} padding layers pad evenly at {self.input_size} px.")
        tr = self.pan_control[self.pan_control.init == "trained"].iloc[0]
        ri = self.pan_control[self.pan_control.init == "random init"]
        lines.append(f"PANs: {int(tr.learned)} learned PANs, {tr.learned_pct:.1f}% of {int(tr.filters)} padded filters "
                     f"(the same architecture at random initialisation: {ri.learned_pct.max():.1f}%); "
                     f"{int(tr.padding_caused)} padding-caused channels in all.")
        for inp in ("natural", "constant"):
            b = self.bias_index[(self.bias_index.input == inp) & (self.bias_index.network == "trained")]
            if len(b):
                lines.append(f"Spatial bias ({inp} inputs): feature maps lean {_lean_words(b)} "
                             f"at the {len(b)} depths measured.")
        for _, r in self.predictions[self.predictions.metric == "agreement"].iterrows():
            lines.append(f"{r.intervention}: top-1 unchanged on {100 * r.value:.1f}% of images "
                         f"[{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}].")
        return lines


def _and(items) -> str:
    """['bottom', 'right'] or 'bottom,right' -> 'bottom and right'."""
    items = [i for i in (items.split(",") if isinstance(items, str) else items) if i]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else (items[0] if items else "no")


def _lean_words(b: pd.DataFrame) -> str:
    parts = []
    for col, (a, z) in (("lean_tb", ("top", "bottom")), ("lean_lr", ("left", "right"))):
        counts = b[col].value_counts()
        parts.append(f"{a} {int(counts.get(a, 0))} / {z} {int(counts.get(z, 0))}")
    return ", ".join(parts)


def _stage(bar, label: str, seconds: dict, t0: float) -> float:
    t = time.perf_counter()
    if bar is not None:
        bar.set_postfix_str(label)
        bar.update(1)
    seconds[label] = round(t - t0, 2)
    return t


def _size_pair(size: int, even_sizes: list) -> tuple[int | None, int | None]:
    """The nearest even-padding size and a control size at the same distance that still pads unevenly."""
    if not even_sizes or even_sizes[0] == size:
        return None, None
    even = even_sizes[0]
    control = 2 * size - even
    if control in even_sizes or control < 8:
        control = None
    return even, control


@keeps_model
def report(model, images: int = 128, *, image_dir=None, size: int | None = None, device="cpu", seed: int = 0,
           random_init_seed: int = 10, progress: bool = True, batch_size: int = 16, n_boot: int = 1000
           ) -> PaddingReport:
    """Answer the book's questions for one model (a loaded module or a name, ``NAME=PATH`` for your weights).

    ``images`` probe images (random crops of the offline photographs, or of ``image_dir``), at ``size`` (default:
    the model's own). Mean maps use the first half of them with their mirror images. Returns a
    :class:`PaddingReport`; :func:`save_report` writes its HTML page.

    Memory is bounded by design: images stream through every pass in batches (kept rendered only up to
    :data:`IMAGE_CACHE_BYTES`), the scans and maps keep running sums, and of the logits only the intact model's
    and one intervention's are held. What a run needs is estimated before any work
    (:func:`padlib._memory.estimate_run_bytes`) and a run that would not fit is refused, naming what fits.
    """
    from tqdm.auto import tqdm


    check_type("images", images, int, "the number of probe images, e.g. 64")
    if images < 8:
        raise PadlibError(f"images must be at least 8 (the PAN reference uses 8), got {images}")
    check_type("seed", seed, int)
    check_type("batch_size", batch_size, int)
    if batch_size < 1:
        raise PadlibError(f"batch_size must be at least 1, got {batch_size}")
    if size is not None:
        check_type("size", size, int, "the input size in pixels, e.g. 224")
        if size < 8:
            raise PadlibError(f"size must be at least 8 pixels, got {size}")
    device = check_device(device, allow_none=False)
    if isinstance(model, str):
        model = load_model(model, device=device)
    check_type("model", model, nn.Module, "a model name such as 'mobilenet_v2', 'resnet18=weights.pth' or a module")
    require_padded_convs(model)
    at = size or preprocessing(model).input_size
    cache = images * input_channels(model) * at * at * 4 <= IMAGE_CACHE_BYTES
    check_run_memory(model, "report", images, at, batch_size, device, cache_images=cache)  # before any work
    name = getattr(model, "padlib_name", type(model).__name__)
    seconds: dict = {}
    t_start = t = time.perf_counter()
    bar = tqdm(total=5, desc=f"padding report {name}", disable=not progress, leave=False)
    try:
        probe = probe_images(images, size=size, seed=seed, image_dir=image_dir, model=model, min_images=8,
                             min_reason="the report needs (its PAN reference uses 8)")
        size = probe.size
        audit = padding_audit(model, size)
        summary = audit_summary(audit)
        even = even_padding_sizes(model, size, max_distance=16)
        # rendered once when small (the scan, the maps and the swaps all read these images), else streamed
        x = probe.tensor(device=device) if cache else probe
        t = _stage(bar, "audit", seconds, t)

        control, scans = learned_pan_control(model, x, seeds=(random_init_seed,), batch_size=batch_size,
                                             device=device, progress=False)
        depth = learned_depth_profile(scans)
        strongest = strongest_pans(scans["trained"].table, per_group=1).sort_values("strength", ascending=False).head(8)
        t = _stage(bar, "PANs", seconds, t)

        layers = depth_layers(model, size)
        n_maps = max(images // 2, 4)
        natural = mean_feature_maps(model, first_images(x, n_maps), layers, splits=4, flips=True, device=device,
                                    progress=False)
        constant = mean_feature_maps(model, constant_inputs(model, size), layers, device=device, progress=False)
        arch = getattr(model, "padlib_name", None)
        maps = {"natural": natural, "constant": constant}
        tables = []
        for label, fm in maps.items():
            tables.append(bias_agreement(spatial_bias_index(fm), audit).assign(input=label, network="trained"))
        if arch is not None:  # the random-init control of the same architecture on constant inputs (4 seeds)
            init = random_init_maps(arch, lambda m: constant_inputs(m, size), layers=layers, device=device)
            maps["constant, random init"] = init
            tables.append(bias_agreement(spatial_bias_index(init), audit).assign(input="constant",
                                                                                 network="random init"))
        bias = pd.concat(tables, ignore_index=True)
        t = _stage(bar, "feature maps", seconds, t)

        reference = model_logits(model, x, batch_size)
        preds = pd.concat([intervention_table({f"{m} padding": padding_interventions(
            model, x, (m,), reference, batch_size=batch_size, n_boot=n_boot, seed=seed, progress=False)[m]})
            for m in SWAP_MODES], ignore_index=True)  # one swap at a time: its logits go once summarised
        t = _stage(bar, "padding swaps", seconds, t)

        even_size, control_size = _size_pair(size, even)
        size_test = {"even": even_size, "control": control_size}
        if even_size is not None:
            sizes = [s for s in (even_size, control_size) if s is not None]
            preds = pd.concat([preds] + [intervention_table({
                f"{s} px ({'even' if s == even_size else 'uneven control'})":
                    size_interventions(model, probe, [s], size, reference, batch_size, n_boot, seed, progress=False)[s]})
                for s in sizes], ignore_index=True)
        t = _stage(bar, "sizes", seconds, t)
    finally:
        bar.close()
    seconds["total"] = round(time.perf_counter() - t_start, 2)
    rep = PaddingReport(name, int(size), len(probe), probe.describe(), audit, summary, even, control, depth,
                        strongest, bias, preds, size_test, [], seconds, scans["trained"], maps)
    rep.recommendations = recommendations(rep)
    return rep


def _metric(preds: pd.DataFrame, intervention: str, metric: str):
    r = preds[(preds.intervention == intervention) & (preds.metric == metric)]
    return r.iloc[0] if len(r) else None


def recommendations(rep: PaddingReport) -> list[Recommendation]:
    """Plain recommendations derived from the report's numbers by :data:`RULES` (ours), each with its evidence."""
    out = []
    s, size = rep.audit_summary, rep.input_size
    if s["n_uneven"] and rep.even_sizes:
        out.append(Recommendation(
            f"Train and evaluate at {rep.even_sizes[0]} px instead of {size} px: then every padding layer pads evenly "
            f"(at {size}, {s['n_uneven']} layers pad unevenly and their padding on the {_and(s['unread_sides'])} "
            f"is never read). Mind the Pad ties such uneven padding to asymmetric kernels and blind spots; the gain has "
            f"to be measured by training at that size, not by resizing at inference.", "Table 1 (padding audit)"))
    elif s["n_uneven"]:
        out.append(Recommendation(
            f"{s['n_uneven']} layers pad unevenly at {size} px and no size within 16 px pads evenly: the padding "
            f"arithmetic of this architecture (its strides and kernels) does not allow it near this size.",
            "Table 1 (padding audit)"))
    else:
        out.append(Recommendation(f"Padding is even at {size} px: the input size needs no change.",
                                  "Table 1 (padding audit)"))

    ev, ctrl = rep.size_test.get("even"), rep.size_test.get("control")
    if ev is not None and ctrl is not None:
        e = _metric(rep.predictions, f"{ev} px (even)", "agreement")
        c = _metric(rep.predictions, f"{ctrl} px (uneven control)", "agreement")
        if e is not None and c is not None:
            # said as the share of images whose top-1 class CHANGES, so "more"/"fewer" compare the numbers printed
            changed, changed_ctrl = 100 * (1 - e.value), 100 * (1 - c.value)
            if e.ci_high < c.ci_low:
                verdict = (f"more than the equally small resize to {ctrl} px changes ({changed_ctrl:.1f}%): the trained "
                           f"weights are tuned to the uneven padding, so switch sizes only with retraining")
            elif e.ci_low > c.ci_high:
                verdict = (f"fewer than the equally small resize to {ctrl} px changes ({changed_ctrl:.1f}%): even "
                           f"padding suits these weights better than the control size does")
            else:
                verdict = (f"about as many as the equally small resize to {ctrl} px changes ({changed_ctrl:.1f}%; the "
                           f"intervals overlap): the change is the resize, not the padding")
            out.append(Recommendation(
                f"Evaluated at {ev} px without retraining, the model changes its top-1 class on {changed:.1f}% "
                f"[{100 * (1 - e.ci_high):.1f}, {100 * (1 - e.ci_low):.1f}] of the images, {verdict}.",
                "Figure 4 (predictions under interventions)"))

    harmless, harmful = [], []
    for mode in SWAP_MODES:
        r = _metric(rep.predictions, f"{mode} padding", "agreement")
        if r is None:
            continue
        (harmless if r.ci_low >= RULES["swap_harmless_agreement"] else harmful).append((mode, r))
    if harmful:
        worst = min(harmful, key=lambda mr: mr[1].value)
        out.append(Recommendation(
            f"Do not swap the padding at inference: {_and([m for m, _ in harmful])} padding "
            f"{'changes' if len(harmful) == 1 else 'change'} the top-1 class (worst: {worst[0]}, unchanged on only {100 * worst[1].value:.1f}% [{100 * worst[1].ci_low:.1f}, "
            f"{100 * worst[1].ci_high:.1f}]). The weights depend on the padding they were trained with; compare "
            f"schemes by training with each.", "Figure 4 (predictions under interventions)"))
    if harmless:
        out.append(Recommendation(
            f"{_and([m for m, _ in harmless]).capitalize()} padding {'leaves' if len(harmless) == 1 else 'leave'} "
            f"the top-1 class unchanged on at least "
            f"{100 * RULES['swap_harmless_agreement']:.0f}% of the images (lower bound): predictions hardly depend on "
            f"the values the zero padding supplies.", "Figure 4 (predictions under interventions)"))

    tr = rep.pan_control[rep.pan_control.init == "trained"].iloc[0]
    ri_max = float(rep.pan_control[rep.pan_control.init == "random init"].learned_pct.max())
    floor = 100 * 0.01 / RULES["learned_pan_factor"]
    if tr.learned_pct >= RULES["learned_pan_factor"] * max(ri_max, floor):
        out.append(Recommendation(
            f"The model has learned to detect the border: {tr.learned_pct:.1f}% of its padded filters are learned "
            f"PANs against {ri_max:.1f}% at random initialisation. Where the image border is not a real edge (crops "
            f"of larger scenes, tiles), expect responses to depend on where an object sits relative to the frame; "
            f"test with shifted crops, and consider a padding that does not mark the border when you retrain.",
            "Figure 1 (learned PANs by depth) and Figure 2 (strongest PANs)"))
    else:
        out.append(Recommendation(
            f"Learned PANs are few ({tr.learned_pct:.1f}% of padded filters against {ri_max:.1f}% at random "
            f"initialisation): this model did not make the border a feature of its own.",
            "Figure 1 (learned PANs by depth)"))

    nat = rep.bias_index[(rep.bias_index.input == "natural") & (rep.bias_index.network == "trained")]
    for axis, col, pred_col in (("top/bottom", "lean_tb", "predicted_tb"), ("left/right", "lean_lr", "predicted_lr")):
        leaning = nat[nat[col] != ""]
        if len(nat) and len(leaning) >= RULES["lean_share"] * len(nat):
            side = leaning[col].value_counts().idxmax()
            predicted = nat[pred_col].iloc[0]
            why = (f", the side the padding audit predicts" if side == predicted else
                   f", not the side the padding audit predicts ({predicted})" if predicted else
                   ", with even padding on that axis (content or learned asymmetry, not padding arithmetic)")
            out.append(Recommendation(
                f"Feature maps on natural images lean to the {side} ({axis}) at {len(leaning)} of {len(nat)} depths"
                f"{why}: objects near that border are represented differently from the same objects elsewhere.",
                "Figure 3 (mean feature maps) and Table 2 (spatial-bias index)"))
    return out


def default_report_path(model_spec: str) -> str:
    """``padding-report-<arch>[-<checkpoint stem>].html`` in the working folder."""

    name, path = split_model_spec(model_spec)
    stem = name.replace("/", "_")
    if path:
        stem += "-" + os.path.splitext(os.path.basename(path))[0]
    return f"padding-report-{stem}.html"



# Names that lived here before padlib 0.2 keep working for one release (each old path warns once).
__getattr__ = moved_names(__name__)
