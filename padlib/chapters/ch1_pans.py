"""Chapter 1's readings: verdicts and findings text for the PAN counts, sides and the learned-PAN control."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._pan_stream import STD_FLOOR, VARIANCE_ROWS
from ..chapters.claims import ABOUT_FACTOR, CLAIM_COUNT_RANGE, CLAIM_SHARE_PCT
from ..chapters.findings import Finding, verdict_of
from ..padding import MARGIN_FRACTION
from ..pans import DEFAULT_FPR, MIN_EXPLAINED, REFERENCE_IMAGES, REFERENCE_SEEDS


def _learned_beyond_random_init(summary: pd.DataFrame, fpr: float, factor: float = 3.0) -> pd.Series:
    """Per model of :func:`learned_pan_summary`: is the trained share of learned PANs at least ``factor`` times its
    random-init copies' largest share (that share taken as at least ``fpr / factor``, so 0 cannot pass by luck)?"""
    return summary["learned trained %"] >= factor * summary["learned random init % (max)"].clip(lower=100 * fpr / factor)


def learned_pan_headline(summary: pd.DataFrame, fpr: float = DEFAULT_FPR, factor: float = 3.0) -> str:
    """The chapter's main result in plain words, from :func:`learned_pan_summary`: do trained networks have
    learned PANs beyond random initialisation (each model's trained share at least ``factor`` times its
    random-init copies' largest share), how much of the padding-caused set the reference keeps, and what the
    older padding-caused definition says of random networks."""
    tr, ri = summary["learned trained %"], summary["learned random init % (max)"]
    pc_tr = summary["padding_caused trained %"]
    pc_ri = 100.0 * summary["padding_caused random init mean"] / summary["filters"]
    beyond = _learned_beyond_random_init(summary, fpr, factor)
    n = len(summary)
    if beyond.all():
        lead = f"Training builds PANs: in all {n} models"
    elif beyond.any():
        lead = f"Training builds PANs in {int(beyond.sum())} of {n} models ({', '.join(summary.model[beyond])}): there"
    else:
        return (f"PANs are not learned here: no model's share of learned PANs ({tr.min():.1f}-{tr.max():.1f}% of "
                f"padded filters) is {factor:g}x that of random-init copies of its architecture "
                f"(up to {ri.max():.1f}%).")
    sel = summary[beyond]
    text = (f"{lead}, {sel['learned trained %'].min():.1f}-{sel['learned trained %'].max():.1f}% of the padded "
            f"filters are learned PANs, against at most {ri[beyond].max():.1f}% in random-init copies of the same "
            f"architecture (the false-positive level, fpr {fpr:g}).")
    kept = 100.0 * summary["learned trained"] / summary["padding_caused trained"].clip(lower=1)
    if "tau trained" in summary:
        text += (f" In the trained models the reference keeps {kept.min():.0f}-{kept.max():.0f}% of the "
                 f"padding-caused channels: their circular nulls set tau at {summary['tau trained'].min():.2f}-"
                 f"{summary['tau trained'].max():.2f}, while a random-init copy's own null sets it at "
                 f"{summary['tau random init mean'].min():.2f}-{summary['tau random init mean'].max():.2f}.")
    if (pc_ri > pc_tr).all():
        text += (f" The older definition, padding-caused alone, says the opposite: it flags "
                 f"{pc_ri.min():.0f}-{pc_ri.max():.0f}% of the random-init copies and {pc_tr.min():.0f}-"
                 f"{pc_tr.max():.0f}% of the trained models, so on its own it measures what zero padding does to "
                 f"any filter, not what training built.")
    return text


def learned_pan_findings(summary: pd.DataFrame, fpr: float = DEFAULT_FPR) -> list[str]:
    """One plain sentence per model on whether training built PANs beyond random initialisation."""
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


def skew_findings(skew: pd.DataFrame) -> list[str]:
    """Sentences on where PAN sides skew, computed from :func:`side_skew`: per model the stride-2 and
    stride-1 top/left shares against the read padding, then PyTorch padding vs TF SAME side by side."""
    lines = []
    for model, g in skew.groupby("model", sort=False):
        parts = []
        for r in g.itertuples():
            parts.append(f"stride {r.stride}: {r.top_left_share:.0%} of {int(r.pan_sides)} PAN-side flags on top/left "
                         f"(95% CI {r.ci_low:.0%}-{r.ci_high:.0%}; read padding {r.read_top_left_share:.0%} top/left) "
                         f"-> {r.verdict}")
        lines.append(f"{model} ({g.padding_kind.iloc[0]} padding): " + "; ".join(parts) + ".")
    s2 = skew[skew.stride.astype(str) == "2"]
    torch_pad, tf_same = s2[s2.padding_kind == "PyTorch"], s2[s2.padding_kind == "TF SAME"]
    if len(torch_pad) and len(tf_same):
        lo, hi = tf_same.top_left_share.min(), tf_same.top_left_share.max()
        tf_range = f"{lo:.0%}" if len(tf_same) == 1 else f"{lo:.0%}-{hi:.0%}"
        gap = "above every" if torch_pad.top_left_share.min() > hi else (
            "below every" if torch_pad.top_left_share.max() < lo else "within the range of the")
        lines.append(f"Stride-2 top/left share, PyTorch padding ({', '.join(torch_pad.model)}): "
                     f"{', '.join(f'{v:.0%}' for v in torch_pad.top_left_share)}; TF SAME "
                     f"({', '.join(tf_same.model)}): {tf_range}. The PyTorch-padded model's share is {gap} "
                     f"TF-SAME model's; {int((tf_same.verdict == 'toward the read padding').sum())} of "
                     f"{len(tf_same)} TF-SAME models and {int((torch_pad.verdict == 'toward the read padding').sum())} "
                     f"of {len(torch_pad)} PyTorch-padded models skew toward the padding their stride-2 layers read.")
    return lines


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
    words (:data:`CLAIM_COUNT_RANGE`; 'about' = within a factor ``about`` of ``share``), not the paper's."""
    low, high = count_range
    if sensitivity is not None and len(sensitivity):
        out = sensitivity[["model", "fpr", "tau", "pans", "share_pct"]].merge(summary[["model", "filters"]], on="model")
        out = out[["model", "fpr", "tau", "filters", "pans", "share_pct"]].sort_values(["fpr", "model"], kind="stable")
    else:
        out = summary[["model", "fpr", "tau", "filters", "pans", "share_pct"]].copy()
    out["dozens_to_hundreds"] = out["pans"].between(low, high)
    out["about_2pct"] = out["share_pct"].between(share / about, share * about)
    out["verdict"] = np.where(out["dozens_to_hundreds"], "count in our reading of the claimed range",
                              np.where(out["pans"] > high, "more than claimed", "fewer than claimed"))
    return out.reset_index(drop=True)


def pan_findings(summary: pd.DataFrame, sensitivity: pd.DataFrame | None = None, skew: pd.DataFrame | None = None,
                 agreement: pd.DataFrame | None = None, count_range: tuple[int, int] = CLAIM_COUNT_RANGE) -> str:
    """The chapter's conclusions as sentences computed from its tables (no number is typed by hand): per model
    the count, share and sign split at the calibrated threshold, the claim verdict at every false-positive
    rate tried, how much of the contrast the padding causes, and where PAN sides skew."""
    low, high = count_range
    lo_share, hi_share = CLAIM_SHARE_PCT / ABOUT_FACTOR, CLAIM_SHARE_PCT * ABOUT_FACTOR
    lines = [f"Our numeric readings, not the paper's numbers: 'dozens to hundreds' = {low}-{high} PANs per model "
             f"(pans.CLAIM_COUNT_RANGE); 'about {CLAIM_SHARE_PCT:g}%' = {lo_share:g}-{hi_share:g}% of padded "
             f"filters (within a factor pans.ABOUT_FACTOR = {ABOUT_FACTOR:g})."]
    calibrated = claim_check(summary, count_range=count_range).set_index("model")
    for _, r in summary.iterrows():
        c = calibrated.loc[r.model]
        lines.append(f"{r.model} at fpr {r.fpr:g} (tau = {r.tau:.2f}): {r.pans} PANs = {r.share_pct:.1f}% of "
                     f"{r.filters} padded filters -> {c.verdict} ({low}-{high}); share "
                     f"{'is' if c.about_2pct else 'is not'} about {CLAIM_SHARE_PCT:g}%; {r.fire} "
                     f"({r.fire_pct:.1f}% of filters) fire at the border, {r.silenced} ({r.silenced_pct:.1f}%) are "
                     f"silenced there.")
    claims = claim_check(summary, sensitivity, count_range=count_range)
    groups = {"every": [], "some": [], "no": []}
    for fpr, g in claims.groupby("fpr", sort=True):
        k = int(g.dozens_to_hundreds.sum())
        lines.append(f"At fpr {fpr:g}: {k} of {len(g)} models have {low}-{high} PANs (counts {g.pans.min()}-"
                     f"{g.pans.max()}, {g.share_pct.min():.1f}-{g.share_pct.max():.1f}% of filters); "
                     f"{int(g.about_2pct.sum())} of {len(g)} have a share of about {CLAIM_SHARE_PCT:g}%.")
        groups["every" if k == len(g) else "some" if k else "no"].append(f"{fpr:g}")
    parts = [f"for {w} model at fpr {', '.join(v)}" for w, v in groups.items() if v]
    lines.append("Verdict: 'dozens to hundreds' (our reading) holds " + "; ".join(parts) + (
        ": whether the claim holds here depends on how strict the threshold is." if len(parts) > 1 else "."))
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


def chapter_findings_box(learned: pd.DataFrame | None = None, summary: pd.DataFrame | None = None,
                         sensitivity: pd.DataFrame | None = None, skew: pd.DataFrame | None = None,
                         fpr: float = DEFAULT_FPR) -> list:
    """Chapter 1's findings, one :class:`padlib.chapters.findings.Finding` per claim: are PANs learned (against random
    init), the paper's count and share (our readings, at the calibrated rate and the others), and whether
    stride-2 PAN sides follow the padding those layers read. ``learned``: :func:`learned_pan_summary`;
    ``summary``: :func:`pan_summary`; ``sensitivity``: :func:`threshold_sensitivity` rows of every model;
    ``skew``: :func:`side_skew`. A claim whose tables are not given is left out (a section shows its own)."""

    out = []
    if learned is not None:
        tr, ri = learned["learned trained %"], learned["learned random init % (max)"]
        beyond = _learned_beyond_random_init(learned, fpr)
        n = len(learned)
        out.append(Finding(
            verdict_of(beyond.mean()), "Trained networks have PANs beyond what random initialisation gives",
            f"{int(beyond.sum())} of {n} models: {tr.min():.1f}-{tr.max():.1f}% of padded filters are learned "
            f"PANs, against at most {ri.max():.1f}% in {int(learned.seeds.min())} random-init "
            f"cop{'y' if int(learned.seeds.min()) == 1 else 'ies'} each",
            "are-pans-learned-the-random-initialisation-control"))
    if summary is not None and sensitivity is not None:
        check = claim_check(summary, sensitivity)
        low, high = CLAIM_COUNT_RANGE
        at = check[np.isclose(check.fpr.astype(float), fpr)]
        rates = sorted(check.fpr.unique())
        holds_at = [r for r in rates if check[check.fpr == r].dozens_to_hundreds.all()]
        out.append(Finding(
            verdict_of(at.dozens_to_hundreds.mean()),
            f"'From dozens to hundreds' PANs per model (paper; our reading {low}-{high})",
            f"at fpr {fpr:g}: {int(at.dozens_to_hundreds.sum())} of {len(at)} models, counts {int(at.pans.min())}-"
            f"{int(at.pans.max())}; every model in range at fpr "
            + (", ".join(f"{r:g}" for r in holds_at) or "none of " + ", ".join(f"{r:g}" for r in rates)),
            "how-many-pans-against-the-paper-s-claim"))
        out.append(Finding(
            verdict_of(at.about_2pct.mean()), "'About 2%' of filters (an unverified summary; our reading 1-4%)",
            f"at fpr {fpr:g}: {int(at.about_2pct.sum())} of {len(at)} models, shares {at.share_pct.min():.1f}-"
            f"{at.share_pct.max():.1f}%", "how-many-pans-against-the-paper-s-claim"))
    if skew is not None:
        s2 = skew[skew.stride.astype(str) == "2"]
        toward = s2.verdict == "toward the read padding"
        out.append(Finding(
            verdict_of(toward.mean()) if len(s2) else "not here",
            "Stride-2 PAN sides follow the padding those layers read (PyTorch: top/left; TF SAME: mostly bottom/right)",
            f"{int(toward.sum())} of {len(s2)} models; top/left share of PAN sides "
            + ", ".join(f"{r.model} {100 * r.top_left_share:.0f}% [{100 * r.ci_low:.0f}, {100 * r.ci_high:.0f}]"
                        for r in s2.itertuples()),
            "which-sides-pytorch-padding-vs-tensorflow-same"))
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
        f"chance alone at fpr {fpr:g} gives about {fpr * n:.1f}, and P(at least {k} by chance) = {p_tail:.2f} -> "
        + ("consistent with chance." if p_tail >= 0.05 else "more than chance."),
    ]
    return "\n".join(lines)


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
    ], columns=["setting", "value", "meaning"])

