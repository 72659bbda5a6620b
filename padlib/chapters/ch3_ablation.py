"""Chapter 3's readings: the pre-specified primary tests of its claims, their verdicts and findings text.

Each claim has one primary test, named here and in the chapter's method dropdowns before any result is read:

* **PANs induce strong biases**, one box line per ablation (mode x region), each with its own verdict: KL from
  the intact model when the PANs are ablated, against the mean of controls *matched on the ablation's size*
  (non-PAN channels of the same layers, each within a caliper of its PAN's size; only the PANs matched in every
  draw are compared), as a relative excess; one paired bootstrap over images per model, Holm across models
  within the line; every model must show it (:func:`judge_all`). ``mean``/``border`` is the primary line for
  "strong biases" (the PANs' defining response removed, the network left working); the whole-map lines measure
  breakdown and say so.
* **Characteristic biases**: in the ``mean``/``border`` ablation (never a whole-map one), the mean cross-model
  correlation of the PANs' class movers minus that of the matched controls; one bootstrap over images.
* **PANs encode how close to the border a position is** (the paper's "spatial inductive bias"): per model, a
  ridge readout of each position's distance to the nearest border, cross-validated by photograph, from the PANs'
  responses minus the same from as many non-PAN channels of the same layers (R^2 difference, bootstrap over
  photographs); Holm across models. **... and it is learned**: the PANs' readout minus the same channels' at random
  initialisation.
* **Even padding suits the models better**: per model, the paired t-test over images of KL at the even-padding
  size (225) minus KL at the control size with the same feature-map sizes (226); Holm across models.

The other measures (KL per unit of perturbation, the top-k dose-response) are secondary: shown, never voting.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..chapters.findings import Finding, judge, judge_all
from ..errors import PadlibError, check_type
from ..experiments import ch3_ablation as _design
from ..stats import bootstrap_test, detectable_effect, holm_adjust, interval_sign, paired_t

_DISRUPTION = {"kl": 1, "agreement": -1, "top1_accuracy": -1, "top5_accuracy": -1, "kl_per_perturbation": 1}

PRIMARY_ABLATION = ("mean", "border")  # mode, region of the primary "strong biases" line and of the mover test
ABLATIONS = (("mean", "border"), ("zero", "border"), ("mean", "all"), ("zero", "all"))  # box order
PRIMARY_METRIC = "kl"  # against controls matched on the ablation's size: no per-unit normalisation needed
ALPHA = 0.05
# Declared smallest effects of interest (ours: the paper gives no number for any of the claims)
ABLATION_SESOI = 0.25  # PANs' KL at least 25% above the size-matched controls'
MOVER_SESOI = 0.10     # PAN movers' cross-model correlation at least 0.10 above the matched controls'
READOUT_SESOI = 0.05   # the PANs' border-distance readout at least 0.05 R^2 above the comparison's
SIZE_SESOI = -0.02     # the even-padding size moves predictions at least 0.02 nats less (KL) than the control size

_ABLATION_WORDS = {("mean", "border"): "removing their border response (mean/border ablation)",
                   ("zero", "border"): "zeroing them on the border ring (zero/border ablation)",
                   ("mean", "all"): "replacing their whole map by its mean (mean/all ablation, network breakdown)",
                   ("zero", "all"): "zeroing their whole map (zero/all ablation, network breakdown)"}


def ablation_claim(mode: str, region: str) -> str:
    """The claim of one ablation's box line."""
    words = _ABLATION_WORDS.get((mode, region), f"the {mode}/{region} ablation")
    return (f"PANs induce strong biases: {words} disrupts predictions more than the same ablation of non-PAN "
            f"channels of the same layers whose ablation is as large")


ABLATION_CLAIM = ablation_claim(*PRIMARY_ABLATION)
MOVER_CLAIM = ("The biases are characteristic: removing the PANs' border response moves the same classes across "
               "models")
READOUT_CLAIM = ("PANs carry a spatial bias: their responses tell how close to the border a position is better "
                 "than as many other channels of the same layers")
LEARNED_CLAIM = ("The PANs' border-distance code is learned: it is stronger in the trained model than in the same "
                 "channels at random initialisation")
SIZE_CLAIM = ("An input size that pads evenly suits the trained models better than a resize with the same "
              "feature-map sizes that keeps uneven padding")
SECTIONS = {"ablation": "pan-ablation-against-size-matched-controls",
            "movers": "characteristic-biases-which-classes-gain-and-lose",
            "readout": "do-pans-encode-the-distance-to-the-border",
            "size": "padding-at-inference-and-input-size"}


def pan_verdicts(comparison: pd.DataFrame, metric: str = "kl") -> pd.DataFrame:
    """Per model, mode and region: which way ablating the PANs moves ``metric`` compared with ablating random
    channels. Disruptive means higher KL / lower agreement or accuracy; the ``direction`` is 'more disruptive'
    or 'less disruptive' when the paired bootstrap interval of (PAN - mean of controls) excludes 0 that way,
    'unresolved' when it straddles 0 (no rule stacked on top of the interval; ``more_disruptive_than`` counts the
    single controls the PAN value lies beyond, for information). Descriptive: the chapter's verdicts come from
    its primary tests (:func:`primary_ablation_table`)."""
    if metric not in _DISRUPTION:
        raise PadlibError(f"metric must be one of {', '.join(_DISRUPTION)}, got {metric!r}")
    sign = _DISRUPTION[metric]
    t = comparison[comparison["metric"] == metric].copy()
    if t.empty or "difference" not in t:
        return t
    s = sign * interval_sign(t["diff_ci_low"], t["diff_ci_high"], t["difference"])
    t["more_disruptive_than"] = t["controls_below_pans"] if sign > 0 else t["controls_above_pans"]
    t["direction"] = np.where(s > 0, "more disruptive", np.where(s < 0, "less disruptive", "unresolved"))
    cols = ["model", "mode", "region", "pans", "controls_mean", "controls_min", "controls_max", "difference",
            "diff_ci_low", "diff_ci_high", "p", "more_disruptive_than", "n_controls", "direction"]
    return t[[c for c in cols if c in t]].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------
# Shared wording


def model_families(models) -> list[str]:
    """The architecture families of model names (the name without its size suffix: 'tf_efficientnet_lite0' and
    'tf_efficientnet_lite2' are one family)."""
    return list(dict.fromkeys(re.sub(r"(_v?\d+|\d+)$", "", str(m)) for m in models))


def evidence_scale(models, n_images: int, extra: str = "") -> str:
    """'4 pretrained ImageNet models, 2 families; 24 evaluation images' (computed from the names and counts)."""
    models = list(dict.fromkeys(models))
    fam = len(model_families(models))
    text = (f"{len(models)} pretrained ImageNet model{'s' if len(models) != 1 else ''}, {fam} "
            f"famil{'ies' if fam != 1 else 'y'}; {int(n_images)} evaluation images")
    return text + (f", {extra}" if extra else "")


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:+.0%}"


def _pct_ci(lo: float, hi: float) -> str:
    return f"[{_pct(lo)}, {_pct(hi)}]"


def _num_ci(lo: float, hi: float, digits: int = 2) -> str:
    return f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _p(p: float, floor: bool = False) -> str:
    """A p-value for the page; ``floor``: a bootstrap p at its resolution (no resample on the other side of 0), so
    the true p is at most this."""
    if not np.isfinite(p):
        return "n/a"
    text = "< 0.001" if p < 0.001 else f"{p:.3f}"
    return f"≤ {text}" if floor and p >= 0.001 else text


def _metric_label(metric: str) -> str:
    return "KL" if metric == "kl" else metric.replace("_", " ")


def _p_relation(p: float, floor: bool = False) -> str:
    """'= 0.412', '≤ 0.002' or '< 0.001' (what follows "p" in a sentence)."""
    text = _p(p, floor)
    return text if text[0] in "<≤" else f"= {text}"


def direction_counts(low, high, mean, up: str, down: str, unit: str = "models") -> str:
    """'<up> in 1 of 4 models, <down> in 3, unresolved in 0': the resolved directions of a set of intervals,
    counted (:func:`padlib.stats.interval_sign`)."""
    s = interval_sign(np.asarray(low, dtype=float), np.asarray(high, dtype=float), np.asarray(mean, dtype=float))
    return (f"{up} in {int((s > 0).sum())} of {len(s)} {unit}, {down} in {int((s < 0).sum())}, "
            f"unresolved in {int((s == 0).sum())}")


def _holm_family(p) -> tuple[np.ndarray, float]:
    """Holm-adjusted p of a family, and the first step's alpha (what the detectable effect is computed at)."""
    p = np.asarray(p, dtype=float)
    return holm_adjust(p), ALPHA / max(len(p), 1)


# ---------------------------------------------------------------------------------------------------------
# Claim 1: PANs induce strong biases, one line per ablation


def primary_ablation_table(comparison: pd.DataFrame, ablation: tuple[str, str] = PRIMARY_ABLATION) -> pd.DataFrame:
    """The primary test of one ablation's "strong biases" line, per model: KL from the intact model with the
    matched PANs ablated against the mean of their size-matched controls, as a relative excess (+0.5: half as
    large again) with its paired bootstrap interval over images and p, the Holm-adjusted p over the models (the
    line's family), the smallest excess the design detects at 80% power (Holm's first step), the PANs compared
    and the controls' size ratio, and the verdict (:func:`judge` against :data:`ABLATION_SESOI`)."""
    check_type("comparison", comparison, pd.DataFrame)
    mode, region = ablation
    cols = ["model", "pans", "random", "excess", "excess_ci_low", "excess_ci_high", "p", "p_holm", "detectable",
            "n_pans", "size_ratio", "verdict"]
    if comparison.empty or "mode" not in comparison:
        return pd.DataFrame(columns=cols)
    here = comparison[(comparison["mode"] == mode) & (comparison["region"] == region)]
    t = here[here["metric"] == PRIMARY_METRIC]
    if t.empty or "excess" not in t:
        return pd.DataFrame(columns=cols)
    t = t.reset_index(drop=True)
    size = here[here["metric"] == "perturbation"].set_index("model")
    p_holm, alpha = _holm_family(t["p"])
    out = pd.DataFrame({"model": t["model"], "pans": t["pans"], "random": t["controls_mean"], "excess": t["excess"],
                        "excess_ci_low": t["excess_ci_low"], "excess_ci_high": t["excess_ci_high"], "p": t["p"],
                        "p_holm": p_holm, "n_images": t["n_images"] if "n_images" in t else np.nan,
                        "p_floor": t["p_floor"].astype(bool) if "p_floor" in t else False,
                        "n_pans": t["n_pans"] if "n_pans" in t else np.nan})
    out["size_ratio"] = [float(size.loc[m, "controls_mean"] / size.loc[m, "pans"])
                         if m in size.index and size.loc[m, "pans"] > 0 else np.nan for m in out.model]
    out["detectable"] = [detectable_effect(lo, hi, alpha=alpha) for lo, hi in zip(out.excess_ci_low, out.excess_ci_high)]
    out["verdict"] = [judge(lo, hi, ABLATION_SESOI, p=p) for lo, hi, p in
                      zip(out.excess_ci_low, out.excess_ci_high, out.p_holm)]
    return out


def ablation_display(comparison: pd.DataFrame, balance: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every ablation's primary test per model in a few short columns (narrow enough for the page: the KL values
    themselves are in the figures): the PANs' KL excess over the size-matched controls' with its interval, Holm p
    (within the ablation's line), the PANs compared (of all), the controls' size ratio, and the verdict."""
    rows = []
    for ablation in ABLATIONS:
        t = primary_ablation_table(comparison, ablation)
        bal = (balance[(balance["mode"] == ablation[0]) & (balance["region"] == ablation[1])].set_index("model")
               if balance is not None and len(balance) else None)
        for r in t.itertuples():
            total = f" of {int(bal.loc[r.model, 'pans'])}" if bal is not None and r.model in bal.index else ""
            rows.append({"ablation": "/".join(ablation) + (" (primary)" if ablation == PRIMARY_ABLATION else ""),
                         "model": r.model,
                         "KL, PANs vs matched [95%]": f"{_pct(r.excess)} {_pct_ci(r.excess_ci_low, r.excess_ci_high)}",
                         "Holm p": _p(r.p_holm, r.p_floor),
                         "PANs compared": f"{int(r.n_pans)}{total}" if np.isfinite(r.n_pans) else "n/a",
                         "size ratio": f"x{r.size_ratio:.2f}" if np.isfinite(r.size_ratio) else "n/a",
                         "verdict": r.verdict})
    return pd.DataFrame(rows).set_index(["ablation", "model"]) if rows else pd.DataFrame()


def primary_ablation_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`primary_ablation_table` rounded into a few short columns for the page."""
    return pd.DataFrame({"model": table["model"], "KL, PANs": table["pans"].round(3),
                         "matched": table["random"].round(3),
                         "PANs vs matched [95%]": [f"{_pct(e)} {_pct_ci(lo, hi)}" for e, lo, hi in
                                                   zip(table.excess, table.excess_ci_low, table.excess_ci_high)],
                         "Holm p": [_p(p, f) for p, f in zip(table["p_holm"], table["p_floor"])],
                         "verdict": table["verdict"]}).set_index("model")


def secondary_ablation_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Every ablation (mode/region) per model: the matched PANs against the mean of their controls as a relative
    excess with its paired 95% interval, on raw KL (the primary measure) and per unit of perturbation, and the
    controls' size relative to the PANs'. The per-unit column is secondary: shown, not voting."""
    check_type("comparison", comparison, pd.DataFrame)
    rows = []
    keyed = comparison.set_index(["model", "mode", "region", "metric"])
    for (model, mode, region) in dict.fromkeys(zip(comparison["model"], comparison["mode"], comparison["region"])):
        row = {"model": model, "ablation": f"{mode}/{region}" + (" (primary)" if (mode, region) == PRIMARY_ABLATION
                                                                  else "")}
        for metric, label in (("kl", "KL"), ("kl_per_perturbation", "KL per unit")):
            key = (model, mode, region, metric)
            if key in keyed.index and "excess" in keyed.columns:
                r = keyed.loc[key]
                row[label] = f"{_pct(r.excess)} {_pct_ci(r.excess_ci_low, r.excess_ci_high)}"
        key = (model, mode, region, "perturbation")
        if key in keyed.index and keyed.loc[key].get("pans", 0) > 0:
            r = keyed.loc[key]
            row["size ratio"] = f"x{r.controls_mean / r.pans:.2f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "ablation"]) if rows else pd.DataFrame()


def ablation_finding(comparison: pd.DataFrame, ablation: tuple[str, str] = PRIMARY_ABLATION,
                     balance: pd.DataFrame | None = None) -> Finding:
    """The findings-box line of one ablation's "strong biases" test, from :func:`primary_ablation_table`."""
    mode, region = ablation
    claim = ablation_claim(mode, region)
    t = primary_ablation_table(comparison, ablation)
    if t.empty:
        return Finding("not testable here", claim, _ablation_claimed(), "", "nothing measured",
                       needed="PANs and controls matched on the ablation's size", section=SECTIONS["ablation"])
    verdict = judge_all(t["verdict"])
    observed = ("KL with the PANs ablated vs size-matched controls: "
                + ", ".join(f"{m} {_pct(e)} {_pct_ci(lo, hi)}" for m, e, lo, hi in
                            zip(t.model, t.excess, t.excess_ci_low, t.excess_ci_high))
                + "; " + direction_counts(t.excess_ci_low, t.excess_ci_high, t.excess, "above the controls", "below"))
    det = t["detectable"][np.isfinite(t["detectable"])]
    detectable = (f"{_pct(det.min())} to {_pct(det.max())} per model (Holm's first step)" if len(det) else "")
    share = ""
    if balance is not None and len(balance):
        b = balance[(balance["mode"] == mode) & (balance["region"] == region)]
        if len(b):
            share = (f"PANs compared (matched in every draw): {int(b['matched'].sum())} of {int(b['pans'].sum())} "
                     f"({b['matched'].sum() / max(b['pans'].sum(), 1):.0%}); ")
    ratio = t["size_ratio"][np.isfinite(t["size_ratio"])]
    caliper = (balance["caliper"].dropna() if balance is not None and "caliper" in balance else pd.Series(dtype=float))
    note = share + (f"the controls' ablation size is x{ratio.min():.2f} to x{ratio.max():.2f} the PANs'"
                    + (f" (each control channel within x{caliper.max():g} of its PAN's)" if len(caliper) else "")
                    if len(ratio) else "")
    if ablation != PRIMARY_ABLATION:
        note += ("; " if note else "") + (f"secondary to the {'/'.join(PRIMARY_ABLATION)} line"
                                          + ("; a whole-map ablation measures breakdown, not the PANs' border response"
                                             if region == "all" else ""))
    n_controls = int(comparison["n_controls"].max()) if "n_controls" in comparison else 0
    n_images = int(t["n_images"].max()) if np.isfinite(t["n_images"]).any() else 0
    return Finding(verdict, claim, _ablation_claimed(), observed,
                   evidence_scale(t.model, n_images, f"{n_controls} size-matched controls per model"),
                   detectable=detectable,
                   test=(f"per model, paired bootstrap over images of the PANs' KL relative to the size-matched "
                         f"controls', {mode}/{region} ablation; Holm-adjusted p over the models: "
                         + ", ".join(f"{m} {_p(p, f)}" for m, p, f in zip(t.model, t.p_holm, t.p_floor))),
                   note=note, section=SECTIONS["ablation"])


def ablation_findings(comparison: pd.DataFrame, balance: pd.DataFrame | None = None) -> list[Finding]:
    """One "strong biases" line per ablation in :data:`ABLATIONS` that was run (the primary one first)."""
    run = set(zip(comparison["mode"], comparison["region"])) if len(comparison) else set()
    lines = [a for a in ABLATIONS if a in run] or [PRIMARY_ABLATION]
    return [ablation_finding(comparison, a, balance) for a in lines]


def _ablation_claimed() -> str:
    return (f"{_pct(ABLATION_SESOI)} or more KL than size-matched non-PAN channels, in every model (our reading of "
            f"\"strong\"; the paper gives no number)")


def dose_display(dose: pd.DataFrame) -> pd.DataFrame:
    """The top-k dose-response (``report_tables(...)['dose']``) in short columns: per model and k, KL of the
    top-k PANs and of their controls, the excess with its interval, and the controls' size ratio."""
    t = dose[dose["metric"] == "kl"] if len(dose) else dose
    if t.empty:
        return pd.DataFrame()
    return pd.DataFrame({"model": t["model"], "k": t["k"], "PANs ablated": t["pans_ablated"],
                         "KL, PANs": t["pans"].round(3), "matched": t["controls_mean"].round(3),
                         "PANs vs matched [95%]": [f"{_pct(e)} {_pct_ci(lo, hi)}" for e, lo, hi in
                                                   zip(t.excess, t.excess_ci_low, t.excess_ci_high)],
                         "size ratio": [f"x{r:.2f}" for r in t["size_ratio"]]}).set_index(["model", "k"])


def dose_sentence(dose: pd.DataFrame) -> str:
    """One computed sentence over the dose-response: at how many (model, k) steps the top-k PANs' KL resolves above
    and below their controls'."""
    t = dose[dose["metric"] == "kl"] if len(dose) else dose
    if t.empty:
        return "No dose-response was run."
    ratio = t["size_ratio"]
    return ("Top-k PANs against their nearest-size controls: KL "
            + direction_counts(t.excess_ci_low, t.excess_ci_high, t.excess, "above the controls'", "below",
                               unit="model-and-k steps")
            + f"; the controls' ablation size is x{ratio.min():.2f} to x{ratio.max():.2f} the PANs' (no caliper here)."
            + " Descriptive, not voting.")


# ---------------------------------------------------------------------------------------------------------
# Claim 2: characteristic biases


def mover_table(reports, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`padlib.experiments.ch3_ablation.mover_excess` for every PAN ablation (mode/region), the primary one
    (:data:`PRIMARY_ABLATION`) flagged; the others are secondary (shown, not voting)."""
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    conditions = sorted({k[2:] for r in reports for k in r.study.evaluations if k[0] == "PANs"})
    conditions = [c for c in conditions if c == PRIMARY_ABLATION] + [c for c in conditions if c != PRIMARY_ABLATION]
    rows = [_design.mover_excess(reports, mode, region, n_boot, seed) for mode, region in conditions]
    out = pd.DataFrame(rows)
    if len(out):
        out["primary"] = [c == PRIMARY_ABLATION for c in conditions]
    return out


def mover_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`mover_table` in a few short columns for the page."""
    return pd.DataFrame({"PAN ablation": [a + (" (primary)" if p else "") for a, p in zip(table.ablation, table.primary)],
                         "PANs": table["pans"].round(3), "matched": table["null"].round(3),
                         "difference [95%]": [f"{d:+.3f} {_num_ci(lo, hi, 3)}" for d, lo, hi in
                                              zip(table.difference, table.ci_low, table.ci_high)],
                         "p": [_p(p, bool(f)) for p, f in zip(table["p"], table.get("p_floor", [False] * len(table)))]
                         }).set_index("PAN ablation")


def mover_finding(table: pd.DataFrame) -> Finding:
    """The findings-box line of "the biases are characteristic", from :func:`mover_table`'s primary row."""
    primary = table[table["primary"]] if "primary" in table else table.iloc[:0]
    if primary.empty or not np.isfinite(primary["ci_low"].iloc[0]):
        return Finding("not testable here", MOVER_CLAIM, _mover_claimed(), "", "nothing measured",
                       needed="two or more models with size-matched controls of the same ablation",
                       section=SECTIONS["movers"])
    r = primary.iloc[0]
    verdict = judge(r.ci_low, r.ci_high, MOVER_SESOI, p=r.p)
    others = table[~table["primary"]]
    note = ""
    if len(others):
        note = ("secondary, not voting: in the other PAN ablations the difference is "
                + direction_counts(others.ci_low, others.ci_high, others.difference, "above the controls'", "below",
                                   unit="ablations"))
    scale = evidence_scale(str(r.models).split(", "), r.n_images,
                           f"{int(r.n_pairs)} model pair{'s' if r.n_pairs != 1 else ''}, "
                           f"{int(r.n_controls)} size-matched controls")
    return Finding(verdict, MOVER_CLAIM, _mover_claimed(),
                   f"mean cross-model correlation of the class movers {r.pans:.3f} for the PANs vs {r.null:.3f} for "
                   f"size-matched channels, difference {r.difference:+.3f} {_num_ci(r.ci_low, r.ci_high, 3)}",
                   scale, detectable=f"{detectable_effect(r.ci_low, r.ci_high):.3f}",
                   test=(f"bootstrap over images of the difference in mean correlation, {r.ablation} ablation (one test, "
                         f"p {_p_relation(r.p, bool(r.get('p_floor', False)))})"), note=note, section=SECTIONS["movers"])


def _mover_claimed() -> str:
    return (f"a cross-model correlation at least {MOVER_SESOI:.2f} above the size-matched controls' (our reading of "
            f"\"characteristic\"; the paper gives no number)")


# ---------------------------------------------------------------------------------------------------------
# Claim 3: even padding at inference


def size_comparison(reports, even: int = 225, control: int = 226, metric: str = "kl") -> pd.DataFrame:
    """Per model: does rendering at the even-padding size ``even`` move predictions more or less than the
    ``control`` size (226: the same feature-map size as 225 at every layer, uneven padding kept)? The paired
    t-test over images of (metric at ``even`` - metric at ``control``), its
    interval and p, the Holm-adjusted p over models, the smallest difference detectable at 80% power (Holm's first
    step) and the verdict (:func:`judge` against :data:`SIZE_SESOI`, the claimed direction being "less")."""
    if metric not in _DISRUPTION:
        raise PadlibError(f"metric must be one of {', '.join(_DISRUPTION)}, got {metric!r}")
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    rows = []
    for r in reports:
        if even not in r.sizes or control not in r.sizes:
            continue
        a, b = (r.sizes[s].per_image[metric].to_numpy(dtype=float) for s in (even, control))
        t = paired_t(a, b)
        rows.append({"model": r.model, f"{metric}_{even}": float(a.mean()), f"{metric}_{control}": float(b.mean()),
                     "difference": t.mean, "diff_ci_low": t.low, "diff_ci_high": t.high, "p": t.p, "n_images": t.n})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"], alpha = _holm_family(out["p"])
    out["detectable"] = [detectable_effect(lo, hi, n=n, alpha=alpha) for lo, hi, n in
                         zip(out.diff_ci_low, out.diff_ci_high, out.n_images)]
    claimed = SIZE_SESOI * _DISRUPTION[metric]
    out["verdict"] = [judge(lo, hi, claimed, p=p) for lo, hi, p in zip(out.diff_ci_low, out.diff_ci_high, out.p_holm)]
    return out


def size_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`size_comparison` in a few short columns for the page."""
    value_cols = [c for c in table.columns if re.fullmatch(r"[a-z0-9_]+_\d+", c)][:2]
    out = {"model": table["model"],
           **{_metric_label(c.rsplit("_", 1)[0]) + " at " + c.rsplit("_", 1)[1]: table[c].round(3) for c in value_cols},
           "difference [95%]": [f"{d:+.3f} {_num_ci(lo, hi, 3)}" for d, lo, hi in
                                zip(table.difference, table.diff_ci_low, table.diff_ci_high)],
           "Holm p": [_p(p) for p in table["p_holm"]], "verdict": table["verdict"]}
    return pd.DataFrame(out).set_index("model")


def size_finding(table: pd.DataFrame) -> Finding:
    """The findings-box line of the even-size claim, from :func:`size_comparison`."""
    if table is None or table.empty:
        return Finding("not testable here", SIZE_CLAIM, _size_claimed(), "", "nothing measured",
                       needed="the same images at an even-padding size and at a control size with the same map sizes",
                       section=SECTIONS["size"])
    value_cols = [c for c in table.columns if re.fullmatch(r"[a-z0-9_]+_\d+", c)][:2]
    even, control = (c.rsplit("_", 1)[1] for c in value_cols)
    metric = value_cols[0].rsplit("_", 1)[0]
    unit = " nats" if metric == "kl" else ""
    verdict = judge_all(table["verdict"])
    label = _metric_label(metric)
    observed = (f"{label} at {even} minus at {control}: "
                + ", ".join(f"{m} {d:+.2f} {_num_ci(lo, hi)}" for m, d, lo, hi in
                            zip(table.model, table.difference, table.diff_ci_low, table.diff_ci_high)) + f"{unit}; "
                + "the even size moves predictions "
                + direction_counts(table.diff_ci_low, table.diff_ci_high, table.difference, "more", "less"))
    det = table["detectable"][np.isfinite(table["detectable"])]
    return Finding(verdict, SIZE_CLAIM, _size_claimed(), observed,
                   evidence_scale(table.model, int(table["n_images"].max())),
                   detectable=(f"{det.min():.3f} to {det.max():.3f}{unit} per model (Holm's first step)"
                               if len(det) else ""),
                   test=(f"per model, paired t-test over images of {label} at {even} minus at {control}; "
                         "Holm-adjusted p: " + ", ".join(f"{m} {_p(p)}" for m, p in zip(table.model, table.p_holm))),
                   section=SECTIONS["size"])


def _size_claimed() -> str:
    return (f"KL from the intact predictions at least {abs(SIZE_SESOI):.2f} nats lower at the even-padding size than "
            f"at the control size, in every model (our reading of \"suits better\")")


# ---------------------------------------------------------------------------------------------------------
# Claims 4 and 5: PANs encode the distance to the border, and training built it


def _r2_difference(p, c, t, axis=-1):
    """R^2 of the PANs minus the mean R^2 of the comparison sets, from per-photograph sums of squared error
    (``p``: PANs, ``c``: sets x photographs) and of the target's deviation (``t``)."""
    return (c.sum(axis).mean(0) - p.sum(axis)) / t.sum(axis)


def readout_table(readout: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model, the border-distance readout (``report_tables(...)['readout']``): held-out R^2 of the PANs, of
    the layer-and-count-matched channel sets (their mean) and of the PANs' channels at random initialisation,
    and two tests, each a bootstrap over photographs (the folds' unit) with a Holm correction over the models:
    ``vs_matched`` (PANs - matched) and ``vs_init`` (PANs - random init), with intervals, p, Holm p, the
    smallest difference detectable at 80% power (Holm's first step) and the verdicts against
    :data:`READOUT_SESOI`."""
    rows = []
    if readout is None or readout.empty:
        return pd.DataFrame()
    for model, t in readout.groupby("model", sort=False):
        g = t.groupby(["set", "group"])[["sse", "sst"]].sum()
        groups = sorted(set(t["group"]))
        sse = g["sse"].unstack("group").reindex(columns=groups)
        sst = g["sst"].unstack("group").reindex(columns=groups).loc["PANs"].to_numpy(dtype=float)
        pan = sse.loc["PANs"].to_numpy(dtype=float)
        matched = sse.loc[[i for i in sse.index if str(i).startswith("matched")]].to_numpy(dtype=float)
        row = {"model": model, "n_photographs": len(groups), "n_images": int(t["image"].nunique()),
               "n_matched": len(matched), "r2_pans": 1 - pan.sum() / sst.sum(),
               "r2_matched": float(np.mean(1 - matched.sum(1) / sst.sum())) if len(matched) else np.nan}
        tests = {"vs_matched": (pan, matched, sst)}
        if "random init" in sse.index:
            init = sse.loc["random init"].to_numpy(dtype=float)
            row["r2_init"] = 1 - init.sum() / sst.sum()
            tests["vs_init"] = (pan, init[None], sst)
        for name, arrays in tests.items():
            if not len(arrays[1]):
                continue
            d, lo, hi, p = bootstrap_test(arrays, _r2_difference, n_boot, seed)
            row.update({name: d, f"{name}_low": lo, f"{name}_high": hi, f"{name}_p": p,
                        f"{name}_floor": _design.at_floor(p, n_boot)})
        rows.append(row)
    out = pd.DataFrame(rows)
    for name in ("vs_matched", "vs_init"):
        if name not in out:
            continue
        ok = np.isfinite(out[f"{name}_p"])
        out[f"{name}_holm"] = np.nan
        if ok.any():
            out.loc[ok, f"{name}_holm"], alpha = _holm_family(out.loc[ok, f"{name}_p"])
        else:
            alpha = ALPHA
        out[f"{name}_detectable"] = [detectable_effect(lo, hi, alpha=alpha) for lo, hi in
                                     zip(out[f"{name}_low"], out[f"{name}_high"])]
        out[f"{name}_verdict"] = [judge(lo, hi, READOUT_SESOI, p=p) if np.isfinite(lo) and np.isfinite(hi)
                                  else "not testable here" for lo, hi, p in
                                  zip(out[f"{name}_low"], out[f"{name}_high"], out[f"{name}_holm"])]
    return out


def readout_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`readout_table` in short columns for the page."""
    if table.empty:
        return pd.DataFrame()
    out = {"model": table["model"], "R², PANs": table["r2_pans"].round(3), "matched": table["r2_matched"].round(3)}
    if "r2_init" in table:
        out["random init"] = table["r2_init"].round(3)
    for name, label in (("vs_matched", "PANs - matched"), ("vs_init", "PANs - random init")):
        if name in table:
            out[f"{label} [95%]"] = [f"{d:+.3f} {_num_ci(lo, hi, 3)}" for d, lo, hi in
                                     zip(table[name], table[f"{name}_low"], table[f"{name}_high"])]
            out[f"Holm p ({label.split(' - ')[1]})"] = [_p(p, f) for p, f in
                                                         zip(table[f"{name}_holm"], table[f"{name}_floor"])]
    out["photographs"] = table["n_photographs"]
    return pd.DataFrame(out).set_index("model")


def readout_finding(table: pd.DataFrame, test: str = "vs_matched") -> Finding:
    """The box line of the border-distance readout: ``test='vs_matched'`` (PANs carry a spatial bias beyond
    other channels of their layers) or ``'vs_init'`` (it is learned)."""
    claim = READOUT_CLAIM if test == "vs_matched" else LEARNED_CLAIM
    other = "as many non-PAN channels of the same layers" if test == "vs_matched" else \
        "the same channels at random initialisation"
    claimed = (f"a held-out R² at least {READOUT_SESOI:.2f} above {other}, in every model (our reading; the paper "
               f"gives no number)")
    if table is None or table.empty or test not in table or not np.isfinite(table[f"{test}_low"]).any():
        return Finding("not testable here", claim, claimed, "", "nothing measured",
                       needed=f"PANs and {other}, read out on images from at least two photographs",
                       section=SECTIONS["readout"])
    t = table[np.isfinite(table[f"{test}_low"])]
    verdict = judge_all(t[f"{test}_verdict"])
    compared = "r2_matched" if test == "vs_matched" else "r2_init"
    observed = ("held-out R² of the distance to the nearest border, PANs vs "
                + ("matched channels" if test == "vs_matched" else "random init") + ": "
                + ", ".join(f"{m} {a:.3f} vs {b:.3f} ({d:+.3f} {_num_ci(lo, hi, 3)})" for m, a, b, d, lo, hi in
                            zip(t.model, t.r2_pans, t[compared], t[test], t[f"{test}_low"], t[f"{test}_high"]))
                + "; " + direction_counts(t[f"{test}_low"], t[f"{test}_high"], t[test], "higher for the PANs",
                                          "lower"))
    det = t[f"{test}_detectable"][np.isfinite(t[f"{test}_detectable"])]
    lo_ph, hi_ph = int(t["n_photographs"].min()), int(t["n_photographs"].max())
    scale = evidence_scale(t.model, int(t["n_images"].max()),
                           (f"{lo_ph} photographs" if lo_ph == hi_ph else f"{lo_ph} to {hi_ph} photographs")
                           + (f", {int(t['n_matched'].max())} matched channel sets" if test == "vs_matched" else ""))
    return Finding(verdict, claim, claimed, observed, scale,
                   detectable=(f"{det.min():.3f} to {det.max():.3f} R² per model (Holm's first step)"
                               if len(det) else ""),
                   test=(f"per model, bootstrap over photographs of the R² difference (ridge readout, folds by "
                         f"photograph); Holm-adjusted p over the models: "
                         + ", ".join(f"{m} {_p(p, f)}" for m, p, f in
                                     zip(t.model, t[f"{test}_holm"], t[f"{test}_floor"]))),
                   note=("the readout images are held out from the PAN scan (other crops of the same photographs)"
                         if test == "vs_matched" else "random init: the library's initialisation, BatchNorm "
                         "statistics recalibrated on probe images (chapter 1's reference)"),
                   section=SECTIONS["readout"])


# ---------------------------------------------------------------------------------------------------------
# The box


def chapter_findings_box(comparison: pd.DataFrame | None = None, movers: pd.DataFrame | None = None,
                         size_table: pd.DataFrame | None = None, readout: pd.DataFrame | None = None,
                         balance: pd.DataFrame | None = None) -> list[Finding]:
    """Chapter 3's findings, one :class:`padlib.chapters.findings.Finding` per claim and ablation, each from its
    primary test: the PAN ablations against size-matched controls, one line per ablation (``comparison``:
    ``report_tables``' 'comparison'; ``balance``: its 'balance', for how many PANs were matched), the class movers
    against the matched-control null (``movers``: :func:`mover_table`), the border-distance readout against
    matched channels and against random initialisation (``readout``: :func:`readout_table`), and the
    even-padding size against the control size (``size_table``: :func:`size_comparison`). A claim whose table is
    not given is left out, so each section can show its own lines."""
    out = []
    if comparison is not None:
        out += ablation_findings(comparison, balance)
    if movers is not None:
        out.append(mover_finding(movers))
    if readout is not None:
        out += [readout_finding(readout, "vs_matched"), readout_finding(readout, "vs_init")]
    if size_table is not None:
        out.append(size_finding(size_table))
    return out
