"""Chapter 1's readings: the findings box (one pre-specified primary test per claim, judged with
:func:`padlib.chapters.findings.judge`) and the sentences for the PAN counts, sides and the learned-PAN control."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .._pan_stream import STD_FLOOR, VARIANCE_ROWS
from ..chapters.claims import (ABOUT_FACTOR, CLAIM_COUNT_RANGE, CLAIM_SHARE_PCT, LEARNED_EXCESS_SESOI_PCT,
                               SIDE_FOLLOW_SESOI)
from ..chapters.findings import CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SUPPORTED, Finding, judge, judge_all
from ..padding import MARGIN_FRACTION
from ..experiments.ch1_pans import BOOTSTRAP_RESAMPLES, MIN_SIDE_LAYERS
from ..pans import DEFAULT_FPR, MIN_EXPLAINED, REFERENCE_IMAGES, REFERENCE_SEEDS
from ..stats import detectable_effect, equivalence_excludes, holm_adjust, interval_sign


def _short(model: str) -> str:
    return str(model).replace("tf_efficientnet_", "")


def _families(models) -> int:
    """How many architecture families the models span (the name without its size or version suffix)."""
    return len({re.sub(r"[_-]?(v\d+|lite\d+|b\d+|\d+)$", "", str(m)) for m in models})


def evidence_scale(models, n_images: int, seeds: int | None = None) -> str:
    """The scale of chapter 1's evidence, from its tables: pretrained models, families, probe images, copies."""
    models = list(dict.fromkeys(models))
    fam = _families(models)
    text = (f"{len(models)} pretrained ImageNet model{'s' if len(models) != 1 else ''}, {fam} "
            f"famil{'ies' if fam != 1 else 'y'}, {int(n_images)} probe images each")
    if seeds:
        text += f", {int(seeds)} random-init cop{'ies' if seeds != 1 else 'y'} each"
    return text


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def learned_excess_verdicts(excess: pd.DataFrame, sesoi_pct: float = LEARNED_EXCESS_SESOI_PCT,
                            alpha: float = 0.05) -> pd.DataFrame:
    """Per model of :func:`padlib.experiments.ch1_pans.learned_excess`: the Holm-adjusted p over the models
    (``p_adj``), the verdict of :func:`judge` on the excess's interval against our smallest effect of interest
    ``sesoi_pct`` (points of padded filters), and the smallest excess the design resolves at 80% power
    (``detectable_pct``, at Holm's first step)."""
    out = excess.copy().reset_index(drop=True)
    ok = (np.isfinite(out["low_pct"]) & np.isfinite(out["high_pct"])).to_numpy()  # fewer than two layers: no test
    m = int(ok.sum())
    out["p_adj"] = np.nan
    if m:
        out.loc[ok, "p_adj"] = holm_adjust(out.loc[ok, "p"].to_numpy())
    out["verdict"] = [judge(r.low_pct, r.high_pct, sesoi_pct, p=r.p_adj, alpha=alpha) if good else NOT_TESTABLE
                      for good, r in zip(ok, out.itertuples())]
    out["detectable_pct"] = [detectable_effect(r.low_pct, r.high_pct, alpha=alpha / max(m, 1))
                             for r in out.itertuples()]
    return out


def follows_verdict(low: float, high: float, sesoi: float = SIDE_FOLLOW_SESOI, p: float | None = None,
                    alpha: float = 0.05) -> str:
    """The verdict on "PAN sides follow the padding each layer reads" from the interval of observed minus predicted
    top/left share. The claim predicts *no* departure, so the roles of :func:`padlib.chapters.findings.judge` turn
    round: supported when an equivalence test puts the departure inside our smallest effect of interest on both
    sides (:func:`padlib.stats.equivalence_excludes` excludes +``sesoi`` and -``sesoi``: the whole 95% interval lies
    within (-sesoi, +sesoi)); contradicted when the departure is resolved away from 0 (``p``, Holm-adjusted, at most
    ``alpha``) and the whole interval lies beyond the smallest effect of interest on one side; inconclusive
    otherwise (a departure neither excluded nor established)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return NOT_TESTABLE
    if equivalence_excludes(low, high, sesoi) and equivalence_excludes(low, high, -sesoi):
        return SUPPORTED
    if (p is None or p <= alpha) and (low > sesoi or high < -sesoi):
        return CONTRADICTED
    return INCONCLUSIVE


def skew_verdicts(skew: pd.DataFrame, sesoi: float = SIDE_FOLLOW_SESOI, alpha: float = 0.05,
                  stride: str = "2") -> pd.DataFrame:
    """Per model, the stride-``stride`` rows of :func:`padlib.experiments.ch1_pans.side_skew` judged by
    :func:`follows_verdict`: the observed-minus-predicted top/left share of the PAN-side flags of the layers that
    read padding on both a top/left and a bottom/right side, its cluster-bootstrap interval against
    ±``sesoi``. ``p_adj``: the departure's p against 0, Holm-adjusted over the testable models (it guards the
    contradicted side, where one model is enough; the supported side needs every model, an intersection-union
    test that needs no adjustment). ``detectable``: the smallest departure the design resolves at 80% power (Holm's
    first step). A model without two such layers with PAN sides is not testable here: its flags match its layers'
    arithmetic by construction."""
    s = skew[skew.stride.astype(str) == str(stride)].copy().reset_index(drop=True)
    has = (np.isfinite(s["follow_low"]) & np.isfinite(s["follow_high"])).to_numpy()
    s["p_adj"] = np.nan
    if has.any():
        s.loc[has, "p_adj"] = holm_adjust(s.loc[has, "p_follow"].to_numpy())
    s["verdict"] = [follows_verdict(r.follow_low, r.follow_high, sesoi, p=r.p_adj, alpha=alpha) if good
                    else NOT_TESTABLE for good, r in zip(has, s.itertuples())]
    s["detectable"] = [detectable_effect(r.follow_low, r.follow_high, alpha=alpha / max(int(has.sum()), 1))
                       for r in s.itertuples()]
    return s


def learned_pan_headline(summary: pd.DataFrame, fpr: float = DEFAULT_FPR) -> str:
    """The random-init control in plain words, from :func:`learned_pan_summary`: the trained and random-init shares
    of learned PANs, how much of the padding-caused set the reference keeps, and what the older padding-caused
    definition says of random networks (every comparison word computed; the verdict is the findings box's)."""
    tr, ri = summary["learned trained %"], summary["learned random init % (max)"]
    pc_tr = summary["padding_caused trained %"]
    pc_ri = 100.0 * summary["padding_caused random init mean"] / summary["filters"]
    n, above = len(summary), int((tr > ri).sum())
    text = (f"In {above} of {n} models the trained share of learned PANs is above the largest share of its "
            f"random-init copies: {tr.min():.1f}-{tr.max():.1f}% of the padded filters trained, at most "
            f"{ri.max():.1f}% at random init (the definition's false-positive rate is fpr {fpr:g}).")
    kept = 100.0 * summary["learned trained"] / summary["padding_caused trained"].clip(lower=1)
    if "tau trained" in summary:
        text += (f" In the trained models the reference keeps {kept.min():.0f}-{kept.max():.0f}% of the "
                 f"padding-caused channels: their circular nulls set tau at {summary['tau trained'].min():.2f}-"
                 f"{summary['tau trained'].max():.2f}, while a random-init copy's own null sets it at "
                 f"{summary['tau random init mean'].min():.2f}-{summary['tau random init mean'].max():.2f}.")
    more = int((pc_ri > pc_tr).sum())
    text += (f" The older definition, padding-caused alone, flags {pc_ri.min():.0f}-{pc_ri.max():.0f}% of the "
             f"random-init copies and {pc_tr.min():.0f}-{pc_tr.max():.0f}% of the trained models: more of the "
             f"random copies than of the trained model in {more} of {n} models")
    text += (", so on its own it measures what zero padding does to any filter, not what training built."
             if more == n else ".")
    return text


def learned_pan_findings(summary: pd.DataFrame, fpr: float = DEFAULT_FPR) -> list[str]:
    """One plain sentence per model: learned PANs trained and at random init, and the circular null alone."""
    out = []
    for _, r in summary.iterrows():
        ratio = r["padding_caused trained"] / max(r["padding_caused random init mean"], 1e-9)
        null_ok = r["learned random init % (max)"] <= 3 * 100 * fpr
        out.append(
            f"{r.model}: {r['learned trained']} learned PANs ({r['learned trained %']:.1f}% of {r.filters} padded "
            f"filters) against {r['learned random init range']} in {r.seeds} random-init copies "
            f"(at most {r['learned random init % (max)']:.1f}%{'' if null_ok else ', above 3x the fpr: the reference is off'}); "
            f"the circular null alone flags {r['padding_caused trained']} trained and "
            f"{r['padding_caused random init mean']:.0f} random-init channels on average ({ratio:.2f}x)."
        )
    return out


def _side_word(share_minus_half_low: float, share_minus_half_high: float) -> str:
    sign = int(interval_sign(share_minus_half_low, share_minus_half_high))
    return {1: "above 1/2", -1: "below 1/2", 0: "interval spans 1/2"}[sign]


def _pts(v: float) -> str:
    return f"{100 * v:+.0f}"


def skew_findings(skew: pd.DataFrame) -> list[str]:
    """Sentences on where PAN sides fall, computed from :func:`side_skew`: per model and stride, the test's quantity
    (observed minus predicted top/left share in the layers that read both a top/left and a bottom/right side, with
    its interval over layers), then, as context only, the top/left share of all flags with its interval against 1/2
    and the read padding's top/left share (descriptive: the verdict is the findings box's)."""
    lines = []
    for model, g in skew.groupby("model", sort=False):
        parts = []
        for r in g.itertuples():
            if r.both_sides and np.isfinite(r.follow_low):
                test = (f"in its {r.both_layers} layers that read both sides, {r.observed_share:.0%} of "
                        f"{r.both_sides} flags on top/left against {r.predicted_share:.0%} predicted, a difference of "
                        f"{_pts(r.follow_diff)} points [{_pts(r.follow_low)}, {_pts(r.follow_high)}]")
            elif r.both_sides:
                test = (f"in its {r.both_layers} layer{'s' if r.both_layers != 1 else ''} that read both sides, "
                        f"{r.observed_share:.0%} of {r.both_sides} flags on top/left against {r.predicted_share:.0%} "
                        f"predicted (fewer than {MIN_SIDE_LAYERS} layers: no interval)")
            else:
                test = "no layer that reads both sides has PAN sides"
            parts.append(f"stride {r.stride}: {test}; {r.one_pair_sides} flags in layers that read one pair of sides "
                         f"only (on their read sides by construction); context: {r.top_left_share:.0%} of all "
                         f"{int(r.pan_sides)} flags on top/left (95% interval over {int(r.layers)} layers "
                         f"{r.ci_low:.0%}-{r.ci_high:.0%}, {_side_word(r.ci_low - 0.5, r.ci_high - 0.5)}; read padding "
                         f"{r.read_top_left_share:.0%} top/left)")
        lines.append(f"{model} ({g.padding_kind.iloc[0]} padding): " + "; ".join(parts) + ".")
    s2 = skew[skew.stride.astype(str) == "2"]
    torch_pad, tf_same = s2[s2.padding_kind == "PyTorch"], s2[s2.padding_kind == "TF SAME"]
    if len(torch_pad) and len(tf_same):
        lo, hi = tf_same.top_left_share.min(), tf_same.top_left_share.max()
        tf_range = f"{lo:.0%}" if len(tf_same) == 1 else f"{lo:.0%}-{hi:.0%}"
        gap = "above every" if torch_pad.top_left_share.min() > hi else (
            "below every" if torch_pad.top_left_share.max() < lo else "within the range of the")
        lines.append(f"Context, not a test: stride-2 top/left share of all flags, PyTorch padding "
                     f"({', '.join(torch_pad.model)}): {', '.join(f'{v:.0%}' for v in torch_pad.top_left_share)}; "
                     f"TF SAME ({', '.join(tf_same.model)}): {tf_range}. The PyTorch-padded models' share is {gap} "
                     f"TF-SAME model's, as the sides their layers read make it.")
    return lines


def corner_sentence(corners: pd.DataFrame) -> str:
    """What :func:`padlib.pan_tables.corner_flags_on_unread_sides` found, in one sentence (every count computed)."""
    c = corners[corners.unread_flags > 0]
    if not len(c):
        return ("No corner-only PAN of a stride-2 layer touches a side whose padding that layer never reads, so "
                "counting corners for both their sides would change no count.")
    return ("Corner-only PANs count for the sides of their corner whose padding the layer reads: "
            + ", ".join(f"{r.model} has {r.pans} corner-only stride-2 PAN{'s' if r.pans != 1 else ''} whose corner "
                        f"touches a side its layer never reads ({r.unread_flags} flag{'s' if r.unread_flags != 1 else ''} that "
                        f"counting both sides of every corner would put on that unread side)"
                        for r in c.itertuples())
            + ". A corner output of such a layer reads the padding of one side only, so its flag goes to that side.")


def sides_by_read_sentence(by_read: pd.DataFrame) -> str:
    """The exploratory split of :func:`padlib.experiments.ch1_pans.sides_by_read_padding` in one sentence (every
    count computed; no verdict: the primary test is the one in the findings box)."""
    parts = []
    for r in by_read[by_read.layers > 0].itertuples():
        layers = f"{r.layers} layer{'s' if r.layers != 1 else ''} of {r.models} model{'s' if r.models != 1 else ''}"
        if r.reads == "both":
            counted = f"{r.top_left} of {r.pan_sides} ({r.top_left / r.pan_sides:.0%}) are on the top or left"
        elif r.reads == "top/left only":
            counted = f"{r.top_left} of {r.pan_sides} are on the top or left"
        else:
            counted = f"{r.pan_sides - r.top_left} of {r.pan_sides} are on the bottom or right"
        what = "both sides" if r.reads == "both" else f"only their {r.reads.replace(' only', '')} padding"
        if not parts:
            parts.append(f"in the stride-2 layers that read {what} ({layers}), {counted.replace(' are', ' PAN-side flags are', 1)}")
        else:
            parts.append(f"in those that read {what} ({layers}), {counted}")
    if not parts:
        return "No stride-2 layer has PAN sides."
    return ("Exploratory, beside the primary test (layers grouped by the padding they read, after seeing the data): "
            + "; ".join(parts) + ".")


def count_rates(sensitivity: pd.DataFrame, summary: pd.DataFrame, count_range: tuple[int, int] = CLAIM_COUNT_RANGE,
                share: float = CLAIM_SHARE_PCT, about: float = ABOUT_FACTOR) -> dict:
    """The false-positive rates (of those in ``sensitivity``) at which every model's count falls in our reading
    of "dozens to hundreds", and at which every model's share is "about 2%"; with the rates tried."""
    check = claim_check(summary, sensitivity, count_range, share, about)
    rates = sorted(float(r) for r in check.fpr.unique())
    by = check.groupby("fpr")
    return {"rates": rates,
            "count": [float(r) for r, g in by if g.dozens_to_hundreds.all()],
            "share": [float(r) for r, g in by if g.about_2pct.all()]}


def _rates(rs, tried=None) -> str:
    """Rates as text: 'none', one rate, a run 'a-b' when they are consecutive among ``tried``, else a list."""
    rs = sorted(rs)
    if not rs:
        return "none"
    if len(rs) == 1:
        return f"{rs[0]:g}"
    tried = sorted(tried) if tried is not None else rs
    run = tried[tried.index(rs[0]):tried.index(rs[0]) + len(rs)] if rs[0] in tried else []
    return f"{rs[0]:g}-{rs[-1]:g}" if run == rs else ", ".join(f"{r:g}" for r in rs)


def _span(a, b, fmt="{:g}") -> str:
    return fmt.format(a) if a == b else f"{fmt.format(a)}-{fmt.format(b)}"


def _share(est, lo, hi) -> str:
    if not np.isfinite(est):
        return "no PAN sides"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{100 * est:.0f}% (no interval: fewer than two layers)"
    return f"{100 * est:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def _per_model_note(v: pd.DataFrame) -> str:
    """'N of M models resolve it', then the models that do not, with their verdicts (all from ``v.verdict``)."""
    ok = v.verdict == SUPPORTED
    text = f"{int(ok.sum())} of {len(v)} models resolve it"
    if not ok.all():
        text += "; not: " + ", ".join(f"{_short(r.model)} ({r.verdict})" for r in v[~ok].itertuples())
    return text


def _other_readings(summary: pd.DataFrame) -> str:
    """'PANs are learned specialists; learned A-B, padding-caused C-D per model; ' when the summary has them."""
    if not {"learned", "padding_caused", "specialist"} <= set(summary):
        return ""
    return (f"the count is of learned specialists (learned {int(summary.learned.min())}-{int(summary.learned.max())}, "
            f"padding-caused {int(summary.padding_caused.min())}-{int(summary.padding_caused.max())} per model); ")


def count_basis(summary: pd.DataFrame) -> str:
    """The sentence beside the counts: how many probe images and which false-positive rate they come from."""
    n = sorted({int(v) for v in summary["n_images"]})
    rate = sorted({float(v) for v in summary["fpr"]})
    imgs = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    return (f"Every count on this page comes from {imgs} probe images per model at fpr "
            f"{', '.join(f'{r:g}' for r in rate)}. A count depends on the probe set (its size and its crops; the "
            f"seed replicates below show the spread at this size), so a page that scans another number of images "
            f"reports another count for the same model.")


def claim_tau_range(curves: pd.DataFrame, count_range: tuple[int, int] = CLAIM_COUNT_RANGE) -> pd.DataFrame:
    """Per model, the thresholds on the :func:`threshold_curve` grid where the side-PAN count (corner-only PANs
    left out, as in the curves) falls in our reading of 'dozens to hundreds', and the null channels above tau
    at the low end of that range (what that strictness costs in null exceedances)."""
    low, high = count_range
    rows = []
    for model, d in curves.groupby("model", sort=False):
        inside = d[d.pans.between(low, high)]
        rows.append({"model": model, "calibrated_tau": d.calibrated_tau.iloc[0],
                     "tau_min_in_range": inside.tau.min() if len(inside) else np.nan,
                     "tau_max_in_range": inside.tau.max() if len(inside) else np.nan,
                     "null_exceed_at_tau_min": inside.null_exceed.iloc[0] if len(inside) else np.nan,
                     "calibrated_tau_in_range": bool(len(inside)) and inside.tau.min() <= d.calibrated_tau.iloc[0]
                     <= inside.tau.max()})
    return pd.DataFrame(rows)


def claim_check(summary: pd.DataFrame, sensitivity: pd.DataFrame | None = None,
                count_range: tuple[int, int] = CLAIM_COUNT_RANGE, share: float = CLAIM_SHARE_PCT,
                about: float = ABOUT_FACTOR) -> pd.DataFrame:
    """Per model (and per false-positive rate, when ``sensitivity`` is given): does the PAN count fall in
    'dozens to hundreds', and is the share 'about 2%'? Both numeric ranges are OUR readings of the paper's
    words (:data:`CLAIM_COUNT_RANGE`; 'about' = within a factor ``about`` of ``share``), not the paper's.
    ``count_vs_reading``: where the count lies against that range (inside, above, below): a position, not a
    verdict (the paper's criterion is unknown, so the count claim is not testable here).""" 
    low, high = count_range
    if sensitivity is not None and len(sensitivity):
        out = sensitivity[["model", "fpr", "tau", "pans", "share_pct"]].merge(summary[["model", "filters"]], on="model")
        out = out[["model", "fpr", "tau", "filters", "pans", "share_pct"]].sort_values(["fpr", "model"], kind="stable")
    else:
        out = summary[["model", "fpr", "tau", "filters", "pans", "share_pct"]].copy()
    out["dozens_to_hundreds"] = out["pans"].between(low, high)
    out["about_2pct"] = out["share_pct"].between(share / about, share * about)
    out["count_vs_reading"] = np.where(out["dozens_to_hundreds"], "inside",
                                       np.where(out["pans"] > high, "above", "below"))
    return out.reset_index(drop=True)


def pan_findings(summary: pd.DataFrame, sensitivity: pd.DataFrame | None = None, skew: pd.DataFrame | None = None,
                 agreement: pd.DataFrame | None = None, count_range: tuple[int, int] = CLAIM_COUNT_RANGE) -> str:
    """The chapter's numbers as sentences computed from its tables (no number is typed by hand): per model the
    count, share and sign split at the calibrated threshold, where the counts lie against our readings at every
    false-positive rate tried, how much of the contrast the padding causes, and where PAN sides fall."""
    low, high = count_range
    lo_share, hi_share = CLAIM_SHARE_PCT / ABOUT_FACTOR, CLAIM_SHARE_PCT * ABOUT_FACTOR
    lines = [f"Our numeric readings, not the paper's numbers: 'dozens to hundreds' = {low}-{high} PANs per model "
             f"(claims.CLAIM_COUNT_RANGE); 'about {CLAIM_SHARE_PCT:g}%' = {lo_share:g}-{hi_share:g}% of padded "
             f"filters (within a factor claims.ABOUT_FACTOR = {ABOUT_FACTOR:g}).", count_basis(summary)]
    calibrated = claim_check(summary, count_range=count_range).set_index("model")
    for _, r in summary.iterrows():
        c = calibrated.loc[r.model]
        lines.append(f"{r.model} at fpr {r.fpr:g} (tau = {r.tau:.2f}): {r.pans} PANs = {r.share_pct:.1f}% of "
                     f"{r.filters} padded filters, {c.count_vs_reading} {low}-{high}; share "
                     f"{'inside' if c.about_2pct else 'outside'} {lo_share:g}-{hi_share:g}%; {r.fire} "
                     f"({r.fire_pct:.1f}% of filters) fire at the border, {r.silenced} ({r.silenced_pct:.1f}%) are "
                     f"silenced there.")
    claims = claim_check(summary, sensitivity, count_range=count_range)
    for fpr, g in claims.groupby("fpr", sort=True):
        lines.append(f"At fpr {fpr:g}: {int(g.dozens_to_hundreds.sum())} of {len(g)} models have {low}-{high} PANs "
                     f"(counts {g.pans.min()}-{g.pans.max()}, {g.share_pct.min():.1f}-{g.share_pct.max():.1f}% of "
                     f"filters); {int(g.about_2pct.sum())} of {len(g)} have a share of {lo_share:g}-{hi_share:g}%.")
    if agreement is not None and len(agreement):
        a = agreement
        lines.append(f"The padding effect explains at least half of the contrast for "
                     f"{a.explained_ge_half.min():.0%}-{a.explained_ge_half.max():.0%} of the sides above tau; rank "
                     f"correlation of z with the causal effect there {a.spearman_z_effect_above_tau.min():.2f}-"
                     f"{a.spearman_z_effect_above_tau.max():.2f}, with the weight-based prediction from measured "
                     f"input means {a.spearman_z_prediction_above_tau.min():.2f}-"
                     f"{a.spearman_z_prediction_above_tau.max():.2f}.")
    if skew is not None and len(skew):
        lines.extend(skew_findings(skew))
    return "\n".join(lines)


LEARNED_SECTION = "are-pans-learned-the-random-initialisation-control"
COUNT_SECTION = "how-many-pans-against-the-paper-s-claim"
SIDE_SECTION = "which-sides-pytorch-padding-vs-tensorflow-same"
NEEDED = ("the paper's detection criterion (its threshold, or its list of PANs per model): our count moves with "
          "the detector's false-positive rate, and the paper's is unknown")
NEEDED_SHARE = ("the summary's source and the detection criterion behind its share: our share moves with the "
                "detector's false-positive rate")


def verdicts_across_settings(across: pd.DataFrame) -> pd.DataFrame:
    """One row per setting of :func:`padlib.experiments.ch1_pans.excess_across_settings`: the claim's verdict
    there (the box's rule: :func:`learned_excess_verdicts` per model, :func:`judge_all` over the models)."""
    rows = []
    keys = ["definition", "fpr", "bar"]
    for key, g in across.groupby(keys, sort=False, dropna=False):
        v = learned_excess_verdicts(g)
        rows.append({**dict(zip(keys, key)), "verdict": judge_all(v.verdict),
                     "excess_min": float(g.excess_pct.min()), "excess_max": float(g.excess_pct.max())})
    return pd.DataFrame(rows)


def settings_note(verdicts: pd.DataFrame, verdict: str) -> str:
    """'the same verdict at all N settings tried (...)' or 'it depends on the settings: ...', computed."""
    n = len(verdicts)
    same = int((verdicts.verdict == verdict).sum())
    tried = (f"fpr {', '.join(f'{v:g}' for v in sorted(set(verdicts.fpr)))}; specialist bar "
             f"{', '.join(f'{v:g}' for v in sorted(set(verdicts.bar.dropna())))}; readings "
             f"{', '.join(dict.fromkeys(verdicts.definition))}")
    if same == n:
        return f"the same verdict at all {n} settings tried ({tried})"
    counts = verdicts.verdict.value_counts()
    return (f"the verdict depends on the settings: {', '.join(f'{k} at {c}' for k, c in counts.items())} of the "
            f"{n} settings tried ({tried})")


def chapter_findings_box(excess: pd.DataFrame | None = None, summary: pd.DataFrame | None = None,
                         sensitivity: pd.DataFrame | None = None, skew: pd.DataFrame | None = None,
                         fpr: float = DEFAULT_FPR, across: pd.DataFrame | None = None) -> list:
    """Chapter 1's findings, one :class:`padlib.chapters.findings.Finding` per claim, each from its pre-specified
    primary test. ``excess``: :func:`padlib.experiments.ch1_pans.learned_excess` (are PANs learned: the trained
    share minus the random-init share, cluster bootstrap over layers, Holm over the models, against
    :data:`LEARNED_EXCESS_SESOI_PCT`, every model); ``summary``: :func:`pan_summary` and ``sensitivity``:
    :func:`threshold_sensitivity` rows of every model (the paper's count and the summary's share: not testable
    here, with our counts at ``fpr`` and the rates at which they would fall in our readings); ``skew``:
    :func:`side_skew` (stride-2 observed minus predicted top/left share of PAN sides in the layers that read both
    sides, :func:`follows_verdict` against :data:`SIDE_FOLLOW_SESOI`, every model). A claim whose tables are not given is left out (a section shows its own)."""
    out = []
    if excess is not None and len(excess):
        v = learned_excess_verdicts(excess)
        m = int((v.verdict != NOT_TESTABLE).sum())
        det = v.detectable_pct.dropna()
        out.append(Finding(
            judge_all(v.verdict), "Trained networks have PANs beyond what random initialisation gives",
            f"the trained share of PANs (learned specialists) above the random-init share by at least "
            f"{LEARNED_EXCESS_SESOI_PCT:g} point of padded filters (our smallest effect of interest: the paper gives no number)",
            "trained minus random-init share, points of padded filters: "
            + ", ".join(f"{_short(r.model)} {r.excess_pct:+.1f} [{r.low_pct:.1f}, {r.high_pct:.1f}]"
                        if np.isfinite(r.low_pct) else f"{_short(r.model)} {r.excess_pct:+.1f} (no interval)"
                        for r in v.itertuples())
            + f" (trained {v.trained_pct.min():.1f}-{v.trained_pct.max():.1f}%, random init "
              f"{v.random_init_pct.min():.1f}-{v.random_init_pct.max():.1f}%, at fpr {fpr:g})",
            evidence_scale(v.model, v.n_images.iloc[0], int(v.seeds.min())),
            detectable=f"{det.min():.1f}-{det.max():.1f} points per model" if len(det) else "",
            needed="" if m else "at least two padded layers per model, to resample",
            test=(f"per model, the share difference's 95% cluster-bootstrap interval over its "
                  f"{_span(v.layers.min(), v.layers.max())} padded layers, against 0; Holm over the {m} models, "
                  "every model must pass; adjusted p " + ", ".join(
                      f"{_short(r.model)} {_p(r.p_adj)}" for r in v.itertuples() if r.verdict != NOT_TESTABLE)),
            note=_per_model_note(v) + ("; " + settings_note(verdicts_across_settings(across), judge_all(v.verdict))
                                       if across is not None and len(across) else ""),
            section=LEARNED_SECTION))
    if summary is not None and sensitivity is not None and len(summary):
        low, high = CLAIM_COUNT_RANGE
        at = claim_check(summary, sensitivity)
        at = at[np.isclose(at.fpr.astype(float), fpr)]
        r = count_rates(sensitivity, summary)
        tried = _rates(r["rates"])

        def where(key, reading):
            if not r[key]:
                return f"no rate tried ({tried}) puts every model in {reading}"
            return f"every model in {reading} at fpr {_rates(r[key], r['rates'])} (of the rates tried, {tried})"
        n_img = int(summary.n_images.iloc[0])
        scale = evidence_scale(summary.model, n_img)
        out.append(Finding(
            NOT_TESTABLE, f"'From dozens to hundreds' PANs per model (paper; our reading {low}-{high})",
            f"{low}-{high} PANs per model (our reading of the paper's words)",
            f"{int(at.pans.min())}-{int(at.pans.max())} PANs per model at our pre-specified fpr {fpr:g} on {n_img} "
            f"probe images ({int(at.dozens_to_hundreds.sum())} of {len(at)} models in {low}-{high}); "
            + _other_readings(summary) + where("count", f"{low}-{high}"),
            scale, needed=NEEDED, section=COUNT_SECTION))
        lo_s, hi_s = CLAIM_SHARE_PCT / ABOUT_FACTOR, CLAIM_SHARE_PCT * ABOUT_FACTOR
        out.append(Finding(
            NOT_TESTABLE, f"'About {CLAIM_SHARE_PCT:g}%' of filters (an unverified summary; our reading "
                          f"{lo_s:g}-{hi_s:g}%)",
            f"{lo_s:g}-{hi_s:g}% of padded filters (our reading of 'about {CLAIM_SHARE_PCT:g}%')",
            f"{at.share_pct.min():.1f}-{at.share_pct.max():.1f}% at fpr {fpr:g} ({int(at.about_2pct.sum())} of "
            f"{len(at)} models in {lo_s:g}-{hi_s:g}%); " + where("share", f"{lo_s:g}-{hi_s:g}%"),
            scale, needed=NEEDED_SHARE, section=COUNT_SECTION))
    if skew is not None:
        v = skew_verdicts(skew)
        claim = "Stride-2 PAN sides follow the padding each layer reads"
        if not len(v):
            out.append(Finding(NOT_TESTABLE, claim, "", "", "no stride-2 padded layers scanned",
                               needed="models with stride-2 padded convolutions", section=SIDE_SECTION))
            return out
        tested = v[v.verdict != NOT_TESTABLE]
        verdict = judge_all(v.verdict)
        det = (tested.detectable * 100).dropna()
        sesoi = 100 * SIDE_FOLLOW_SESOI

        def observed(r):
            if np.isfinite(r.follow_low):
                return (f"{_short(r.model)} {_pts(r.follow_diff)} [{_pts(r.follow_low)}, {_pts(r.follow_high)}] "
                        f"({100 * r.observed_share:.0f}% on top/left against {100 * r.predicted_share:.0f}% "
                        f"predicted; {r.both_layers} layers, {r.both_sides} flags)")
            if r.both_sides:
                return (f"{_short(r.model)} {_pts(r.follow_diff)} ({r.both_layers} layer{'s' if r.both_layers != 1 else ''}"
                        f", fewer than {MIN_SIDE_LAYERS}: no interval)")
            return f"{_short(r.model)}: no layer that reads both sides has PAN sides"
        out.append(Finding(
            verdict, claim,
            f"the top/left share of the PAN-side flags of stride-2 layers that read padding on both a top/left and a "
            f"bottom/right side equal to the top/left share of the padding they read (rows and columns), within "
            f"±{sesoi:.0f} points (our "
            f"smallest effect of interest; in layers that read one pair of sides only it holds by construction)",
            "observed minus predicted top/left share, points: " + "; ".join(observed(r) for r in v.itertuples()),
            evidence_scale(v.model, int(v.n_images.iloc[0]))
            + f"; {_span(v.both_layers.min(), v.both_layers.max())} stride-2 layers per model read both sides",
            detectable=(f"a departure of {_span(round(det.min()), round(det.max()))} points" if len(det) else ""),
            needed="" if len(tested) else ("stride-2 layers that read padding on both a top/left and a bottom/right "
                                           f"side, with PAN sides on at least {MIN_SIDE_LAYERS} of them per model (an "
                                           "odd input size, or TF SAME with a 5x5 kernel)"),
            test=(f"per model, the difference's 95% cluster-bootstrap interval over those layers (each layer's "
                  f"prediction weighted by its flags): supported when the whole interval lies within ±{sesoi:.0f} "
                  f"points (every model), contradicted when it lies beyond them with the departure's Holm-adjusted p "
                  "at most 0.05" + (f" (over {len(tested)} model{'s' if len(tested) != 1 else ''}): adjusted p "
                                    + ", ".join(f"{_short(r.model)} {_p(r.p_adj)}" for r in tested.itertuples())
                                    if len(tested) else "")),
            note=(_per_model_note(v) + f"; {int(v.one_pair_sides.sum())} of {int(v.pan_sides.sum())} stride-2 flags "
                  "lie in layers that read one pair of sides only and match their arithmetic by construction, so "
                  "they are left out; context, not the test: the top/left share of all stride-2 flags, "
                  + ", ".join(f"{_short(r.model)} {_share(r.top_left_share, r.ci_low, r.ci_high)} (read padding "
                              f"{100 * r.read_top_left_share:.0f}% top/left)" for r in v.itertuples())
                  + "; a bootstrap over so few layers is rough"),
            section=SIDE_SECTION))
    return out


def planted_findings(check: pd.DataFrame, circular: pd.DataFrame, fpr: float) -> str:
    """What the planted-network validation shows, from :func:`planted_check` and the circular copy's table
    scanned at the same thresholds: how many planted PANs and controls were classified as built, and whether
    the circular copy's PANs are more than a false-positive rate ``fpr`` gives by chance (binomial tail)."""
    from scipy.stats import binom

    planted = check[check.expected != "not a PAN"]
    controls = check[check.expected == "not a PAN"]
    n, k = len(circular), int(circular.is_pan.sum())
    p_tail = float(binom.sf(k - 1, n, fpr)) if k else 1.0
    first = int(circular[circular.layer == "0"].is_pan.sum())
    lines = [
        f"{int(check.correct.sum())} of {len(check)} channels classified as built: {int(planted.correct.sum())} of "
        f"{len(planted)} planted PANs found with their expected sides and sign, "
        f"{int((controls.found != 'not a PAN').sum())} of {len(controls)} controls flagged as PANs.",
        f"Circular-padding copy at the same thresholds: {k} PANs among {n} channels ({first} in the planted layer); "
        f"chance alone at fpr {fpr:g} gives about {fpr * n:.1f}"
        + (": none, consistent with chance." if k == 0 else
           f", and {k} or more arise by chance with probability {p_tail:.2g}: "
           + ("consistent with chance." if p_tail >= 0.05 else "more than chance.")),
    ]
    return "\n".join(lines)


def shown(table: pd.DataFrame, columns: dict | None = None, transpose: bool = False, digits: int = 2) -> pd.DataFrame:
    """A table as the chapter shows it, narrow enough for the page: the models' short names, only ``columns``
    (``{column: shown name}``, in that order), rounded; ``transpose``: one column per model."""
    out = table.copy()
    if "model" in out:
        out["model"] = out["model"].map(_short)
    if columns:
        out = out[list(columns)].rename(columns=columns)
    if transpose:
        out = out.set_index(out.columns[0]).T
    return out.round(digits)


def rate_table(summary: pd.DataFrame, sensitivity: pd.DataFrame, count_range: tuple[int, int] = CLAIM_COUNT_RANGE,
               share: float = CLAIM_SHARE_PCT, about: float = ABOUT_FACTOR) -> pd.DataFrame:
    """The counts at every false-positive rate tried, one row per rate and one column per model ("count (share
    of padded filters)"), and whether every model's count and share lie in our readings of the paper's words."""
    c = claim_check(summary, sensitivity, count_range, share, about)
    c["cell"] = [f"{int(p)} ({v:.1f}%)" for p, v in zip(c.pans, c.share_pct)]
    order = list(dict.fromkeys(c.model))
    t = c.pivot(index="fpr", columns="model", values="cell")[order]
    t.columns = [_short(m) for m in order]
    low, high = count_range
    t[f"all in {low}-{high}"] = c.groupby("fpr").dozens_to_hundreds.all()
    t[f"all in {share / about:g}-{share * about:g}%"] = c.groupby("fpr").about_2pct.all()
    return t


def method_settings(std_floor: float = STD_FLOOR, min_explained: float = MIN_EXPLAINED,
                    fpr: float = DEFAULT_FPR) -> pd.DataFrame:
    """The constants of our formulation, as the chapter prints them (name in padlib, value, meaning)."""
    return pd.DataFrame([
        ("MARGIN_FRACTION", MARGIN_FRACTION, "interior margin, fraction of the map's shorter side "
                                             "(at least the rows this layer's padding reaches)"),
        ("VARIANCE_ROWS", VARIANCE_ROWS, "interior std from every k-th interior row, at least this many rows"),
        ("std_floor", std_floor, "interior std floor, fraction of the layer's median interior std"),
        ("min_explained", min_explained, "share of a side's contrast the padding effect must cause (same sign)"),
        ("fpr", fpr, "false-positive rate on the circular null that sets tau, and per layer on the "
                     "random-init reference"),
        ("REFERENCE_SEEDS", ", ".join(map(str, REFERENCE_SEEDS)), "random-init copies that make the reference"),
        ("REFERENCE_IMAGES", REFERENCE_IMAGES, "the first this many probe images scan the reference (one batch)"),
        ("CLAIM_COUNT_RANGE", f"{CLAIM_COUNT_RANGE[0]}-{CLAIM_COUNT_RANGE[1]}",
         "our reading of the paper's 'from dozens to hundreds' PANs per model"),
        ("CLAIM_SHARE_PCT x/÷ ABOUT_FACTOR", f"{CLAIM_SHARE_PCT:g}% x/÷ {ABOUT_FACTOR:g}",
         "our reading of the unverified 'about 2%' of filters"),
        ("LEARNED_EXCESS_SESOI_PCT", LEARNED_EXCESS_SESOI_PCT, "our smallest effect of interest: trained minus "
                                                               "random-init share of learned PANs, points"),
        ("BOOTSTRAP_RESAMPLES", BOOTSTRAP_RESAMPLES, "resamples of layers in the primary tests' cluster bootstrap"),
        ("MIN_SIDE_LAYERS", MIN_SIDE_LAYERS, "layers reading both sides the side test needs per model (fewer: no "
                                             "interval)"),
        ("SIDE_FOLLOW_SESOI", SIDE_FOLLOW_SESOI, "our smallest effect of interest: stride-2 top/left share of PAN "
                                                 "sides off the share the layers' read sides predict"),
    ], columns=["setting", "value", "meaning"])



def specialist_planted_findings(check: pd.DataFrame, bar: float, fdr: float) -> str:
    """One computed line on the planted specialist network: specialists found, smoothers refused (yet
    padding-caused), where the bar cuts the graded detectors, controls left alone."""
    spec, smooth, ctrl = (check[check.kind == k] for k in ("specialist", "smoother", "control"))
    graded = check[check.kind.isin(["specialist", "graded"])]
    found, missed = graded[graded.specialist], graded[~graded.specialist]
    lowest = f"the lowest selectivity among them {found.selectivity.min():.3f}; " if len(found) else ""
    if missed.empty:
        misses = "none missed"
    elif len(missed) == 1:
        misses = f"the one missed at {missed.selectivity.iloc[0]:.3f}"
    else:
        misses = f"the {len(missed)} missed at {missed.selectivity.min():.3f}-{missed.selectivity.max():.3f}"
    return (f"Planted specialists: {int(spec.specialist.sum())} of {len(spec)} found; smoothers: "
            f"{int(smooth.padding_caused.sum())} of {len(smooth)} padding-caused, {int(smooth.specialist.sum())} "
            f"called specialists (selectivity {smooth.selectivity.min():.3f}-{smooth.selectivity.max():.3f} against "
            f"the bar {bar:.3f}); border detectors graded by noise: {len(found)} of {len(graded)} called specialists "
            f"({lowest}{misses}); controls flagged: {int(ctrl.specialist.sum())} "
            f"of {len(ctrl)} (Benjamini-Hochberg at {fdr:g} on this 24-channel network).")


def readings_sentence(summary: pd.DataFrame) -> str:
    """Per model, the three readings' counts and the depthwise shares, computed from
    :func:`padlib.pan_tables.readings_summary`."""
    parts = []
    for r in summary.itertuples():
        parts.append(f"{_short(r.model)}: {r.padding_caused} padding-caused, {r.learned} learned, "
                     f"{r.specialist} specialists ({r.specialist_pct:.1f}% of {r.filters} padded filters; at most "
                     f"{r.expected_false_discoveries:.0f} expected false discoveries)")
    dw = summary.depthwise_pct
    text = ("; ".join(parts) + f". Depthwise filters are {dw.min():.1f}-{dw.max():.1f}% of the padded filters "
            "per model" + (f" and {summary.specialist_depthwise_pct.min():.0f}-"
                           f"{summary.specialist_depthwise_pct.max():.0f}% of the specialists" if
                           summary.specialist_depthwise_pct.notna().any() else "") + ".")
    mobile, dense = summary[dw > 50], summary[dw <= 50]
    if len(mobile) and len(dense):
        lo, hi = round(mobile.specialist_pct.min(), 1), round(mobile.specialist_pct.max(), 1)
        d_lo, d_hi = round(dense.specialist_pct.min(), 1), round(dense.specialist_pct.max(), 1)
        names = ", ".join(map(_short, dense.model))
        if d_hi < lo or d_lo > hi:
            word = "smaller" if d_hi < lo else "larger"
            text += (f" The dense network's specialist share ({names}: {_span(d_lo, d_hi)}% of padded filters) is "
                     f"{word} than every depthwise model's ({_span(lo, hi)}%): the mobile models' counts do not "
                     "carry over to dense convolutions.")
        else:
            text += (f" The dense network's specialist share ({names}: {_span(d_lo, d_hi)}%) lies within the "
                     f"depthwise models' range ({_span(lo, hi)}%).")
    return text


def described_outputs(described: pd.DataFrame) -> pd.DataFrame:
    """The weights check's table: photo and top-1 class with its probability for a classifier, photo and peak
    region score for a dense model (the columns that apply, rounded)."""
    if (described.kind == "logits").all():
        return described[["photo", "class_name", "probability"]].round(3)
    return described[["photo", "output", "shape", "peak", "mean"]].round(3)


def convergence_sentence(convergence: pd.DataFrame, n_images: int, tolerance: float = 0.05) -> str:
    """Per model, the specialist count at each number of images and whether the count at the chapter's
    ``n_images`` is within ``tolerance`` of the largest set's (computed, both ways)."""
    out = []
    for model, g in convergence.groupby("model", sort=False):
        g = g.sort_values("n_images")
        final = int(g.specialist.iloc[-1])
        counts = ", ".join(f"{int(r.specialist)} at {int(r.n_images)}" for r in g.itertuples())
        at = g[g.n_images == n_images]
        if len(at):
            diff = (int(at.specialist.iloc[0]) - final) / max(final, 1)
            word = "within" if abs(diff) <= tolerance else "outside"
            tail = (f"; at this chapter's {n_images} images the count is {word} {100 * tolerance:.0f}% of the "
                    f"{int(g.n_images.iloc[-1])}-image count ({100 * diff:+.1f}%)")
        else:
            tail = f"; this chapter's {n_images} images were not among the counts tried"
        out.append(f"{_short(model)} specialists: {counts}{tail}.")
    return " ".join(out)
