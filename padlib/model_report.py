"""A one-model padding report: the book's questions answered for your model, on one self-contained HTML page.

:func:`report` computes (tidy tables, no plotting); :func:`report_html` renders them with figures inlined as PNG,
so the page opens from disk with no outside request. The methods are the book's own:

- padding audit (chapter 4): which layers pad unevenly at the input size, which side is never read, and the
  nearest input sizes at which every layer pads evenly;
- learned PANs (chapter 1): padding-caused channels beyond the same architecture at random initialisation, with
  one random-init copy scanned the same way as the control, by depth, with the strongest examples;
- mean feature maps and the spatial-bias index (chapter 4) on natural and constant inputs;
- what a padding swap or the even input size does to the predictions at inference (chapter 3), against the
  intact model, with an equally small resize to an uneven size as the control for the even size;
- objects at every position (chapter 4, :func:`padlib.position_sensitivity`): small objects cut from the probe
  photographs pasted over a grid on other probe photographs where the model recognises them centred, the model's
  confidence in its own class for each against the same object centred, per side with an interval over backgrounds
  (:func:`position_stage`).

Recommendations are derived from those numbers by stated rules (:data:`RULES`); each names the figure or table it
rests on and its level of evidence (:class:`EvidenceLevel`: measured on this model, shown in the book's trained
networks, or padding arithmetic only). They are ours, not the papers'. Every count and comparison word in the
generated sentences is computed from the same table the page shows (e.g. :func:`lean_counts` for the spatial bias).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ._compat import moved_names
from ._hooks import check_device, keeps_model
from ._memory import check_run_memory, input_channels
from .audit import audit_summary, even_padding_sizes, padding_audit
from .blind_spot_maps import grid_positions, make_background, paste_centre
from .data import probe_images
from .errors import PaddingImpossibleError, PadlibError, check_type
from .evaluation import evaluate, output_info
from .interventions import intervention_table, padding_interventions, size_interventions
from .models import load_model, preprocessing, split_model_spec
from .outputs import check_output, read_output
from .padding import require_padded_convs
from .pan_tables import learned_depth_profile, strongest_pans
from .pans import DEFAULT_FPR, first_images, learned_pan_control
from .position_sensitivity import SIDES, blind_sides, position_sensitivity, position_summary
from .spatial_bias import (
    bias_agreement,
    constant_inputs,
    depth_layers,
    mean_feature_maps,
    random_init_maps,
    spatial_bias_index,
)
from .report_reach import REACH_IMAGES, REACH_RANGE, ReachStage, reach_stage
from .tiling import swap_failure
from .report_rules import (  # noqa: F401 - the rules and words, re-exported where they lived before
    EVEN_SIZE_REACH,
    LEAN_AXES,
    RULES,
    SWAP_MODES,
    EvidenceLevel,
    Recommendation,
    _and,
    _count_of,
    _decimals,
    _lean_count_words,
    _n,
    _nats,
    _pan_rule,
    _pct,
    lean_counts,
    prediction_lines,
    recommendations,
)

MAP_DEPTHS = 6  # mean maps shown at this many depths, evenly spaced
IMAGE_CACHE_BYTES = 256 * 2 ** 20  # probe images up to this size are rendered once; more are rendered in each pass
INIT_MAP_SEEDS = (0, 1, 2, 3)  # random-init copies whose mean maps on constant inputs are the maps' control
# Objects at every position (position_stage): its cost is bounded by these: POSITION_OBJECTS x POSITION_BACKGROUNDS
# centred canvases to check recognition, then at most POSITION_PAIRS (object, background) pairs of positions ** 2 + 1
# canvases each (the + 1: the object centred)
POSITIONS = 5  # positions per axis by default (the object touches every border); 0 or None: no position stage
POSITIONS_MAX = 15  # more per axis than this is a study, not a report stage (226 canvases per pair)
POSITION_OBJECTS = 5  # object candidates: the first probe photographs, one object each ...
POSITION_BACKGROUNDS = 8  # ... backgrounds: the next ones (never an object's own photograph): <= 40 pairs tried
POSITION_PAIRS = 18  # at most this many recognised pairs are measured (the stage's cost before recognition was added)
POSITION_TOP_K = 5  # recognised centred: the object's class among the model's top 5 (ImageNet's other criterion) ...
POSITION_MIN_PROB = 0.05  # ... at probability >= 0.05 (50x chance at 1000 classes): chapter 4's rule, so the change
#                           measures an object the model sees, not a class it barely considers on that background
POSITION_MIN_BACKGROUNDS = 3  # no intervals from fewer backgrounds with a recognised pair (2 give a t on 1 df)
POSITION_SESOI = 0.10  # nats: our smallest drop of interest in the log-probability (about a 10% lower probability)
POSITION_LEVEL = 0.95


POOLED = "mean over objects"  # the object name of the summary that averages the objects inside each background


@dataclass
class PositionStage:
    """What the report's objects-at-every-position stage measured (:func:`position_stage`), or why it did not run
    (``skipped``, one line; then the tables are None).

    ``recognition``: one row per (object, background) pair tried, the object centred on the background: object,
    background, target, centre_prob (the target's probability), rank (0: top-1), recognised (:data:`POSITION_TOP_K`
    and :data:`POSITION_MIN_PROB`), kept (measured at every position); None when the stage stopped before it.
    ``objects``, ``backgrounds``: those of the kept pairs. ``table``: :func:`padlib.position_sensitivity`'s rows
    (response 'logprob') of the kept pairs; ``summary``: :func:`padlib.position_summary` of the table with the
    objects averaged inside each background (object :data:`POOLED`; the backgrounds are the independent units, the
    few objects a fixed factor); ``verdicts``: :func:`padlib.blind_sides`' table at ``sesoi`` nats (per side:
    estimate, interval, Holm p, verdict)."""

    n_positions: int
    object_px: int
    objects: dict = field(default_factory=dict)  # object (its photograph) -> target class index
    target_names: dict = field(default_factory=dict)  # object -> ImageNet class name (1000-class models only)
    centre_prob: dict = field(default_factory=dict)  # object -> median over its kept backgrounds of its target's
    #                                                  probability with the object centred (how well it is seen)
    backgrounds: list = field(default_factory=list)  # the photographs the objects were pasted on (kept pairs)
    recognition: pd.DataFrame | None = field(default=None, repr=False)  # every pair tried (see above)
    sesoi: float = POSITION_SESOI
    level: float = POSITION_LEVEL
    table: pd.DataFrame | None = field(default=None, repr=False)
    summary: pd.DataFrame | None = field(default=None, repr=False)
    verdicts: pd.DataFrame | None = field(default=None, repr=False)
    skipped: str = ""

    def sides(self, verdict: str) -> list:
        """The sides with this :func:`padlib.blind_sides` verdict ('blind', 'no blind band', 'undecided')."""
        if self.verdicts is None:
            return []
        return self.verdicts.loc[self.verdicts["verdict"] == verdict, "side"].tolist()

    def counts(self) -> dict:
        """The recognition check's counts (empty when the stage stopped before it): pairs tried, recognised and
        kept, backgrounds tried and with a recognised pair, and the rule."""
        r = self.recognition
        if r is None:
            return {}
        return {"pairs_tried": len(r), "pairs_recognised": int(r["recognised"].sum()),
                "pairs_kept": int(r["kept"].sum()), "backgrounds_tried": int(r["background"].nunique()),
                "backgrounds_recognised": int(r.loc[r["recognised"], "background"].nunique()),
                "top_k": POSITION_TOP_K, "min_prob": POSITION_MIN_PROB, "max_pairs": POSITION_PAIRS}

    def kept_words(self) -> str:
        """How many object-background pairs were kept and why (the summary line's and the page's words)."""
        c = self.counts()
        if not c:
            return ""
        rule = (f"the model recognises the object centred (its class in the model's top {c['top_k']} at probability "
                f">= {c['min_prob']:g})")
        if c["pairs_kept"] == c["pairs_recognised"]:
            return f"{c['pairs_kept']} of {c['pairs_tried']} object-background pairs kept, those on which {rule}"
        return (f"{c['pairs_kept']} of {c['pairs_tried']} object-background pairs kept: {c['pairs_recognised']} on "
                f"which {rule}, at most {c['max_pairs']} measured")

    def summary_line(self) -> str:
        """The summary's sentence; which of its wordings, and every side and number in it, come from ``verdicts``."""
        if self.skipped:
            return f"Objects at every position: not run ({self.skipped})."
        v = self.verdicts.set_index("side")
        n_bg = len(self.backgrounds)
        head = (f"Objects at every position ({_n(len(self.objects), 'object')} of {self.object_px} px at "
                f"{self.n_positions}x{self.n_positions} positions on {_n(n_bg, 'background')}; "
                + (f"{self.kept_words()}; " if self.recognition is not None else "") +
                f"change in the log-probability of the class the model gives the object's photograph, side band "
                f"minus interior, {100 * self.level:g}% interval over backgrounds)")

        def est(side):
            r = v.loc[side]
            return f"{side} {_nats(r.estimate)} [{_nats(r.ci_low)}, {_nats(r.ci_high)}] nats"

        blind, ruled_out, undecided = self.sides("blind"), self.sides("no blind band"), self.sides("undecided")
        tail = []
        if ruled_out:
            tail.append(f"a blind band of {self.sesoi:.2f} nats ruled out on the {_and(ruled_out)}")
        if blind:
            words = (f"the {_and(blind)} {'side' if len(blind) == 1 else 'sides'} resolved blinder than the interior "
                     f"by more than {self.sesoi:.2f} nats (Holm over the four sides): "
                     + "; ".join(est(sd) for sd in blind))
            if undecided:
                tail.append(f"undecided on the {_and(undecided)}")
        else:
            lowest = min(SIDES, key=lambda sd: (v.loc[sd, "estimate"] if pd.notna(v.loc[sd, "estimate"]) else 0.0))
            words = (f"no side resolved blinder than the interior by more than {self.sesoi:.2f} nats "
                     f"({_n(n_bg, 'background')}; lowest: {est(lowest)})")
            tail.append(f"undecided on the {_and(undecided)}" if undecided else "")
        return f"{head}: {words}" + "".join(f"; {t}" for t in tail if t) + "."

    def record(self) -> dict:
        """The JSON-ready form: the settings, per side its change with interval and verdict, the two contrasts."""
        counts = {"recognition": self.counts()} if self.recognition is not None else {}
        if self.skipped:
            return {"skipped": self.skipped, **counts}
        num = lambda x: None if pd.isna(x) else float(x)  # noqa: E731
        sides = [{"side": r.side, "estimate": num(r.estimate), "ci_low": num(r.ci_low), "ci_high": num(r.ci_high),
                  "n_backgrounds": int(r.n_backgrounds), "p_blind_holm": num(r.p_blind_holm),
                  "p_equivalent_holm": num(r.p_equivalent_holm), "verdict": r.verdict}
                 for r in self.verdicts.itertuples(index=False)]
        contrasts = [{"contrast": r.side, "estimate": num(r.estimate), "ci_low": num(r.ci_low),
                      "ci_high": num(r.ci_high), "p": num(r.p)}
                     for r in self.summary[~self.summary["side"].isin(SIDES)].itertuples(index=False)]
        per_bg = (self.table.groupby("object", sort=False)["background"].nunique().to_dict()
                  if self.table is not None else {})
        return {"n_positions": self.n_positions, "object_px": self.object_px, "response": "logprob", **counts,
                "objects": {k: {"target": int(t), "target_name": self.target_names.get(k),
                                "centre_prob_median": self.centre_prob.get(k), "n_backgrounds": per_bg.get(k)}
                            for k, t in self.objects.items()},
                "backgrounds": list(self.backgrounds), "level": self.level, "sesoi": self.sesoi, "sides": sides,
                "contrasts": contrasts, "blind": self.sides("blind"), "no_blind_band": self.sides("no blind band"),
                "undecided": self.sides("undecided")}


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
    fpr: float = DEFAULT_FPR  # the PAN threshold's false-positive rate on the circular-padding null
    positions: PositionStage | None = None  # objects at every position (None: the stage was turned off)
    output: str = ""  # the output compared, as the page names it: "['out'] (dense, 21 x 64 x 64)" ('' for logits)
    output_kind: str = "logits"  # 'logits' (top-1 agreement, KL) or 'dense' (per-pixel agreement, relative change)
    reach: ReachStage | None = None  # border reach and tile overlap (dense outputs; None: the stage was turned off)
    skipped: dict = field(default_factory=dict)  # intervention -> why it could not run (one line)

    def summary_lines(self) -> list[str]:
        """The report's answers in a few plain sentences (the top of the page and the command's output)."""
        s = self.audit_summary
        lines = []
        if s["n_uneven"]:
            even = (f"; it pads evenly at {self.even_sizes[0]} px" if self.even_sizes else
                    f"; no size within {EVEN_SIZE_REACH} px pads evenly")
            lines.append(f"Padding: {s['n_uneven']} of {s['n_padding_layers']} padding layers pad unevenly at "
                         f"{self.input_size} px (padding never read: {_and(s['unread_sides'])}; more padding read: "
                         f"{_and(s['extra_sides'])}){even}.")
        else:
            lines.append(f"Padding: all {s['n_padding_layers']} padding layers pad evenly at {self.input_size} px.")
        tr = self.pan_control[self.pan_control.init == "trained"].iloc[0]
        ri = self.pan_control[self.pan_control.init == "random init"]
        lines.append(f"PANs: {int(tr.learned)} learned PANs on {self.n_images} probe images at a {_pct(self.fpr)} "
                     f"false-positive rate (circular-padding null), {tr.learned_pct:.1f}% of {int(tr.filters)} padded "
                     f"filters (the same architecture at random initialisation: {ri.learned_pct.max():.1f}%); "
                     f"{int(tr.padding_caused)} padding-caused channels in all"
                     + (f"; {_count_of(int(tr.specialist), int(tr.learned))} learned PANs are specialists (their "
                        "border responses separate from the interior's, FDR-controlled)"
                        if "specialist" in tr and tr.learned > 0 else "")
                     + ". The counts depend on the number of probe images and the false-positive rate.")
        for inp in ("natural", "constant"):
            counts = lean_counts(self.bias_index, inp)
            if len(counts) and counts.depths.max() > 0:
                how = ("beyond their 5% t-test bound" if counts.tested.all() else
                       "by the sign of the index (no image splits, so no test)")
                lines.append(f"Spatial bias ({inp} inputs), depths leaning {how}: "
                             + "; ".join(_lean_count_words(r) for r in counts.itertuples()) + ".")
        lines += prediction_lines(self.predictions, self.output_kind)
        lines += [f"{name}: not run ({why})." for name, why in self.skipped.items()]
        if self.positions is not None:
            lines.append(self.positions.summary_line())
        if self.reach is not None and self.output_kind != "logits":  # a classifier's page says why, not its summary
            lines.append(self.reach.summary_line())
        return lines

    def summary_record(self) -> dict:
        """The JSON summary: the sentences, the recommendations with their evidence levels, and the run's scale."""
        out = {"model": self.model, "input_size": self.input_size, "n_images": self.n_images, "fpr": self.fpr,
               "summary": self.summary_lines(), "recommendations": [r.record() for r in self.recommendations],
               "seconds": self.seconds.get("total"), "output": self.output or None,
               "output_kind": self.output_kind}
        if self.positions is not None:  # the stage ran or said why not; turned off, the record is as before
            out["positions"] = self.positions.record()
        if self.reach is not None:
            out["border_reach"] = self.reach.record()
        if self.skipped:
            out["skipped"] = dict(self.skipped)
        return out



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


def position_object_px(size: int) -> int:
    """The side of the stage's objects: a quarter of the input side (56 px at 224), because Mind the Pad's claim is
    about small objects (one that fills most of the image cannot sit near one border only), while a classifier
    still gives an object of a quarter of its input a class (chapter 4's study uses 64 px at 224). A third is not
    recognised more often: on mobilenet_v2 with the report's probe, 10 of the 40 pairs :func:`position_stage`
    tries are recognised at a quarter and 9 at a third (74 px), on 6 of the 8 backgrounds both times."""
    return max(1, size // 4)


DEFAULT_IMAGES = 128  # probe images at 224 px by default ...
DEFAULT_IMAGES_MIN = 32  # ... and at larger sizes as many as hold the same number of pixels, at least this many


def default_images(size: int) -> int:
    """The report's default number of probe images at ``size`` px: :data:`DEFAULT_IMAGES` up to 224 px, and above
    it the number holding as many pixels (in multiples of 8, at least :data:`DEFAULT_IMAGES_MIN`), so that a
    segmenter at 512 px costs about what a classifier at 224 does (32 images; every stage's forwards scale with
    the pixels). Fewer images give wider intervals, which the page states with its counts."""
    if size <= 224:
        return DEFAULT_IMAGES
    return max(DEFAULT_IMAGES_MIN, min(DEFAULT_IMAGES, 8 * round(DEFAULT_IMAGES * (224 / size) ** 2 / 8)))


def check_reach(reach) -> int:
    """``reach`` as the border-reach stage's number of photographs (0: no stage), refused in one line before any
    work unless 0, None or a whole number from 2 (an interval over photographs needs two) to 64."""
    if reach is None:
        return 0
    low, high = REACH_RANGE
    if isinstance(reach, bool) or not isinstance(reach, int) or not (reach == 0 or low <= reach <= high):
        raise PadlibError(f"reach must be 0 or None (no border-reach stage) or a whole number of photographs from "
                          f"{low} to {high}, got {reach!r}")
    return reach


def check_positions(positions, size: int | None = None) -> int:
    """``positions`` as the stage's grid (0: no stage), refused in one line before any work when it is not 0, None
    or a whole number from 3 to :data:`POSITIONS_MAX`, or (``size`` given) when the grid does not fit."""
    if positions is None:
        return 0
    if isinstance(positions, bool) or not isinstance(positions, int) or not (
            positions == 0 or 3 <= positions <= POSITIONS_MAX):
        raise PadlibError(f"positions must be 0 or None (no objects-at-every-position stage) or a whole number from 3 "
                          f"to {POSITIONS_MAX} (positions per axis), got {positions!r}")
    if positions and size is not None:
        try:
            grid_positions(size, position_object_px(size), positions)
        except PadlibError as e:
            raise PadlibError(f"positions={positions}: {e} (objects of {position_object_px(size)} px on "
                              f"{size}-px images); use fewer positions") from None
    return positions


@torch.no_grad()
def _outputs_of(model, images01: torch.Tensor, device, batch_size: int | None = None,
                output=None) -> tuple[torch.Tensor, str]:
    """(the output padlib reads for images, its kind) (:func:`padlib.outputs.read_output`: ``output=`` picks it),
    on the CPU, in batches of ``batch_size`` (default: all at once)."""
    step = batch_size or max(len(images01), 1)
    parts = [read_output(model(preprocessing(model).normalize(images01[i:i + step]).to(device)), output)
             for i in range(0, len(images01), step)]
    return torch.cat([t for t, _, _ in parts]), parts[0][2]


def _kept_pairs(recognised: list, cap: int) -> set:
    """At most ``cap`` of the recognised (object, background) pairs, taken one per background in turn (each
    background's first recognised object, then its second, ...): a cap drops objects before backgrounds, the
    independent units."""
    by_bg: dict = {}
    for o, b in recognised:
        by_bg.setdefault(b, []).append(o)
    kept, depth = [], 0
    while len(kept) < cap and any(depth < len(v) for v in by_bg.values()):
        kept += [(v[depth], b) for b, v in by_bg.items() if depth < len(v)]
        depth += 1
    return set(kept[:cap])


@keeps_model
def position_stage(model, probe, size: int, n_positions: int = POSITIONS, batch_size: int = 16,
                   device="cpu", output=None) -> PositionStage:
    """Objects at every position, as the report runs it (:func:`padlib.position_sensitivity`, response
    'logprob'), in eval mode (:func:`padlib._hooks.keeps_model`).

    Object candidates: the centre square of each of the first :data:`POSITION_OBJECTS` photographs of ``probe``
    (its sources, not its random crops: one object per photograph), at :func:`position_object_px`. Backgrounds:
    the next :data:`POSITION_BACKGROUNDS` photographs, centre squares at ``size`` (so never an object's own
    photograph, and one background per photograph: independent units). Fewer photographs: fewer objects first, at
    least :data:`POSITION_MIN_BACKGROUNDS` backgrounds. Target: the class the model gives the object's photograph
    alone, filling the input, so no label is needed and any classifier works.

    Recognition: an (object, background) pair is measured only when the model, with the object centred on that
    background, ranks the target among its :data:`POSITION_TOP_K` classes with probability >=
    :data:`POSITION_MIN_PROB` (chapter 4's rule, made for ImageNet's 1000 classes; with a handful of classes it is
    lenient): a small object the model does not see even centred has no confidence to lose at a border
    (mobilenet_v2 gives the three 56-px objects of the stage's first version, centred, median probabilities of
    4e-6, 0.022 and 0.006 for their classes; their intervals said nothing). At most :data:`POSITION_PAIRS` recognised pairs are measured (one per background in turn). With recognised pairs
    on fewer than :data:`POSITION_MIN_BACKGROUNDS` backgrounds the stage is skipped with the counts in its reason;
    the counts are in ``recognition`` either way.

    The change is summarised per side (:func:`padlib.position_summary`, band 1, the objects recognised on a
    background averaged inside it) and judged at :data:`POSITION_SESOI` nats (:func:`padlib.blind_sides`).

    Skipped, with the reason in ``skipped``, where the stage cannot read what it measures: too few photographs, a
    model that does not take RGB images, or an output that is not class logits (a dense map: run
    :func:`padlib.position_sensitivity` yourself with a target channel)."""
    obj_px = position_object_px(size)
    stage = PositionStage(n_positions, obj_px)
    channels = input_channels(model)
    n_src = len(probe.sources)
    if channels != 3:
        stage.skipped = f"the model takes {channels}-channel images; the objects are RGB photographs"
    elif n_src < 1 + POSITION_MIN_BACKGROUNDS:
        stage.skipped = (f"the probe has {_n(n_src, 'photograph')}; the stage needs one for an object and "
                         f"{POSITION_MIN_BACKGROUNDS} others as backgrounds")
    if stage.skipped:
        return stage
    n_bg = min(POSITION_BACKGROUNDS, n_src - 1)
    n_obj = min(POSITION_OBJECTS, n_src - n_bg)
    names = [str(n) for n in probe.source_names]
    photos = {names[j]: probe._open(j) for j in range(n_obj)}
    backgrounds = {names[j]: make_background(probe._open(j), size) for j in range(n_obj, n_obj + n_bg)}
    try:  # the objects' photographs alone: their classes, and what the model's output is
        out, kind = _outputs_of(model, torch.stack([make_background(im, size) for im in photos.values()]), device,
                                batch_size, output)
    except PadlibError as e:
        stage.skipped = f"its output cannot be read as class logits: {e}"
        return stage
    if kind != "logits":
        stage.skipped = (f"the model's output is a dense map of shape {tuple(out.shape[1:])}, not class "
                         "logits; padlib.position_sensitivity reads a map's target channel at the object")
        return stage
    targets = dict(zip(photos, out.argmax(1).tolist()))
    objects = {n: make_background(im, obj_px) for n, im in photos.items()}
    pairs = [(o, b) for o in objects for b in backgrounds]
    probs = _outputs_of(model, torch.stack([paste_centre(objects[o], backgrounds[b], size) for o, b in pairs]),
                        device, batch_size, output)[0].softmax(1)
    rows = []
    for (o, b), q in zip(pairs, probs):
        t = targets[o]
        rank, p = int((q > q[t]).sum()), float(q[t])
        rows.append({"object": o, "background": b, "target": t, "centre_prob": p, "rank": rank,
                     "recognised": rank < POSITION_TOP_K and p >= POSITION_MIN_PROB})
    rec = pd.DataFrame(rows)
    kept = _kept_pairs([(r.object, r.background) for r in rec.itertuples() if r.recognised], POSITION_PAIRS)
    rec["kept"] = [(o, b) in kept for o, b in pairs]
    stage.recognition = rec
    c = stage.counts()
    if c["backgrounds_recognised"] < POSITION_MIN_BACKGROUNDS:
        stage.skipped = (f"objects recognised centred on {c['pairs_recognised']} of {c['pairs_tried']} "
                         f"object-background pairs, on {c['backgrounds_recognised']} of "
                         f"{_n(c['backgrounds_tried'], 'background')} (at least {POSITION_MIN_BACKGROUNDS} "
                         f"backgrounds needed; recognised: the object's class in the model's top "
                         f"{POSITION_TOP_K} at probability >= {POSITION_MIN_PROB:g})")
        return stage
    parts = []
    for o, g in rec[rec["kept"]].groupby("object", sort=False):  # each object on the backgrounds it is seen on
        parts.append(position_sensitivity(model, {o: objects[o]}, {b: backgrounds[b] for b in g["background"]},
                                          target=targets[o], size=size, n_positions=n_positions,
                                          response="logprob", batch_size=batch_size, device=device,
                                          progress=False, output=output))
    table = pd.concat(parts, ignore_index=True)
    table.attrs.update(parts[0].attrs)
    table.attrs["targets"] = {k: v for t in parts for k, v in t.attrs["targets"].items()}
    table.attrs["target_names"] = {k: v for t in parts for k, v in t.attrs["target_names"].items()}
    # each kept object has the whole grid on its background: a background's plain mean is the mean over its objects
    pooled = table.assign(object=POOLED)
    pooled.attrs.update(table.attrs)
    summary = position_summary(pooled, band=1, level=POSITION_LEVEL)
    stage.objects, stage.target_names = dict(table.attrs["targets"]), dict(table.attrs["target_names"])
    k = rec[rec["kept"]]
    stage.centre_prob = {o: float(k.loc[k["object"] == o, "centre_prob"].median()) for o in stage.objects}
    stage.backgrounds = [b for b in backgrounds if b in set(k["background"])]
    stage.table, stage.summary = table, summary
    stage.verdicts = blind_sides(summary, POSITION_SESOI, object=POOLED).table
    return stage


@keeps_model
def report(model, images: int | None = None, *, image_dir=None, size: int | None = None, device="cpu", seed: int = 0,
           random_init_seed: int = 10, progress: bool = True, batch_size: int = 16, n_boot: int = 1000,
           positions: int | None = POSITIONS, output=None, reach: int | None = REACH_IMAGES) -> PaddingReport:
    """Answer the book's questions for one model (a loaded module or a name, ``NAME=PATH`` for your weights).

    Any model whose forward gives class logits or a dense map, alone or in a tuple or dict: ``output`` picks the
    part the predictions stage compares (a key, an index or a function of the forward's result; default:
    :func:`padlib.select_output`'s rules), checked on one forward before any work. Logits are compared by top-1
    agreement and KL; dense maps (segmenters, detectors) by the per-pixel argmax agreement and the relative change
    of the map, each in the border band and the interior (:func:`padlib.evaluate`); the position stage needs logits.

    ``images`` probe images (random crops of the offline photographs, or of ``image_dir``; default
    :func:`default_images`: 128 up to 224 px, fewer above, 32 at 512 px), at ``size`` (default: the model's own). Mean maps use the first half of them with their mirror images. ``positions``: the grid
    (per axis) of the objects-at-every-position stage (:func:`position_stage`; :data:`POSITION_OBJECTS` x
    :data:`POSITION_BACKGROUNDS` object-background pairs checked for recognition, one canvas each, and at most
    :data:`POSITION_PAIRS` recognised pairs measured, ``positions ** 2 + 1`` canvases each); 0 or None leaves the
    stage out. ``reach``: photographs (at twice the input size) of the border-reach stage, which tiles a dense
    output and recommends the tile overlap (:func:`padlib.report_reach.reach_stage`); 0 or None leaves it out; for
    class logits it says why it did not run. A padding swap that cannot run on this model at this size (reflect
    padding wider than a deep map) is left out with its reason (``skipped``), not the whole report.
    Returns a :class:`PaddingReport`; :func:`save_report` writes its HTML page.

    Memory is bounded by design: images stream through every pass in batches (kept rendered only up to
    :data:`IMAGE_CACHE_BYTES`), the scans and maps keep running sums, and of the outputs only the intact model's
    and one intervention's logits are held (of dense maps the intact model's and one batch). What a run needs is estimated before any work
    (:func:`padlib._memory.estimate_run_bytes`) and a run that would not fit is refused, naming what fits.
    """
    from tqdm.auto import tqdm


    if images is not None:
        check_type("images", images, int, "the number of probe images, e.g. 64")
    if images is not None and images < 8:
        raise PadlibError(f"images must be at least 8 (the PAN reference uses 8), got {images}")
    check_type("seed", seed, int)
    check_type("batch_size", batch_size, int)
    if batch_size < 1:
        raise PadlibError(f"batch_size must be at least 1, got {batch_size}")
    if size is not None:
        check_type("size", size, int, "the input size in pixels, e.g. 224")
        if size < 8:
            raise PadlibError(f"size must be at least 8 pixels, got {size}")
    positions = check_positions(positions)
    reach = check_reach(reach)
    check_output(output)
    device = check_device(device, allow_none=False)
    if isinstance(model, str):
        model = load_model(model, device=device)
    check_type("model", model, nn.Module, "a model name such as 'mobilenet_v2', 'resnet18=weights.pth' or a module")
    require_padded_convs(model)
    at = size or preprocessing(model).input_size
    images = default_images(at) if images is None else images
    check_positions(positions, at)  # the grid fits the objects at this size
    cache = images * input_channels(model) * at * at * 4 <= IMAGE_CACHE_BYTES
    check_run_memory(model, "report", images, at, batch_size, device, cache_images=cache,  # before any work
                     select=lambda out: read_output(out, output)[0])
    output_info(model, at, output, device)  # an output= or an output padlib cannot read is refused now
    name = getattr(model, "padlib_name", type(model).__name__)
    seconds: dict = {}
    t_start = t = time.perf_counter()
    bar = tqdm(total=5 + bool(positions) + bool(reach), desc=f"padding report {name}", disable=not progress, leave=False)
    try:
        probe = probe_images(images, size=size, seed=seed, image_dir=image_dir, model=model, min_images=8,
                             min_reason="the report needs (its PAN reference uses 8)")
        size = probe.size
        audit = padding_audit(model, size)
        summary = audit_summary(audit)
        even = even_padding_sizes(model, size, max_distance=EVEN_SIZE_REACH)
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
        if arch is not None:  # the random-init control of the same architecture on constant inputs
            init = random_init_maps(arch, lambda m: constant_inputs(m, size), seeds=INIT_MAP_SEEDS,
                                    layers=layers, device=device)
            maps["constant, random init"] = init
            tables.append(bias_agreement(spatial_bias_index(init), audit).assign(input="constant",
                                                                                 network="random init"))
        bias = pd.concat(tables, ignore_index=True)
        t = _stage(bar, "feature maps", seconds, t)

        reference = evaluate(model, x, batch_size=batch_size, n_boot=n_boot, seed=seed, output=output)
        swapped, skipped = [], {}
        for m in SWAP_MODES:  # one swap at a time, summarised; one that cannot run here is left out, with why
            try:
                swapped.append(intervention_table({f"{m} padding": padding_interventions(
                    model, x, (m,), reference, batch_size=batch_size, n_boot=n_boot, seed=seed, progress=False,
                    output=output)[m]}))
            except (PaddingImpossibleError, RuntimeError) as e:
                skipped[f"{m} padding"] = swap_failure(m, e)
        preds = pd.concat(swapped, ignore_index=True) if swapped else pd.DataFrame(
            columns=["intervention", "metric", "value", "ci_low", "ci_high", "n"])
        t = _stage(bar, "padding swaps", seconds, t)

        even_size, control_size = _size_pair(size, even)
        size_test = {"even": even_size, "control": control_size}
        if even_size is not None:
            sizes = [s for s in (even_size, control_size) if s is not None]
            preds = pd.concat([preds] + [intervention_table({
                f"{s} px ({'even' if s == even_size else 'uneven control'})":
                    size_interventions(model, probe, [s], size, reference, batch_size, n_boot, seed, progress=False,
                                       output=output)[s]})
                for s in sizes], ignore_index=True)
        t = _stage(bar, "sizes", seconds, t)

        place = None  # objects at every position: last, so that it changes nothing the other stages measure
        if positions:
            place = position_stage(model, probe, size, positions, batch_size, device, output)
            t = _stage(bar, "positions", seconds, t)
        tiled = None
        if reach:
            tiled = reach_stage(model, size, reference.kind, reach, image_dir=image_dir, seed=seed,
                                batch_size=min(batch_size, 8), device=device, output=output, n_boot=n_boot)
            t = _stage(bar, "border reach", seconds, t)
    finally:
        bar.close()
    seconds["total"] = round(time.perf_counter() - t_start, 2)
    rep = PaddingReport(name, int(size), len(probe), probe.describe(), audit, summary, even, control, depth,
                        strongest, bias, preds, size_test, [], seconds, scans["trained"], maps,
                        scans["trained"].fpr if scans["trained"].fpr is not None else DEFAULT_FPR, place,
                        reference.describe(), reference.kind, tiled, skipped)
    rep.recommendations = recommendations(rep)
    return rep



def default_report_path(model_spec: str) -> str:
    """``padding-report-<arch>[-<checkpoint stem>].html`` in the working folder."""

    name, path = split_model_spec(model_spec)
    stem = name.replace("/", "_")
    if path:
        stem += "-" + os.path.splitext(os.path.basename(path))[0]
    return f"padding-report-{stem}.html"



# Names that lived here before padlib 0.2 keep working for one release (each old path warns once).
__getattr__ = moved_names(__name__)
