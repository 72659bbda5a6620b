"""Chapter 3's readings: the pre-specified primary tests of its three claims, their verdicts and findings text.

Each claim has one primary test, named here and in the chapter's method dropdowns before any result is read:

* **PANs matter beyond their size** (the paper's "strong biases"): the ``mean``/``border`` ablation (the PANs'
  border response replaced by their interior mean, the network left working), KL from the intact model *per unit
  of perturbation*, PANs against the mean of their random controls, as a relative excess; one paired bootstrap
  over images per model, Holm across models; every model must show it (:func:`judge_all`).
* **Characteristic biases**: in the same ablation, the mean cross-model correlation of the PANs' class movers
  minus that of the random controls; one bootstrap over images (a family of one test).
* **Even padding suits the models better**: per model, the paired t-test over images of KL at the even-padding
  size minus KL at the equally small control size; Holm across models; every model must show it.

The other ablation modes and the raw KL are secondary: shown beside the primary test, never voting.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..chapters.findings import Finding, judge, judge_all
from ..errors import PadlibError, check_type
from ..experiments import ch3_ablation as _design
from ..stats import detectable_effect, holm_adjust, interval_sign, paired_t

_DISRUPTION = {"kl": 1, "agreement": -1, "top1_accuracy": -1, "top5_accuracy": -1, "kl_per_perturbation": 1}

PRIMARY_ABLATION = ("mean", "border")  # mode, region of every primary test on PAN ablation
PRIMARY_METRIC = "kl_per_perturbation"  # disruption per unit of perturbation: "beyond their size"
ALPHA = 0.05
# Declared smallest effects of interest (ours: the paper gives no number for any of the three claims)
ABLATION_SESOI = 0.25  # PANs' KL per unit of perturbation at least 25% above the random controls'
MOVER_SESOI = 0.10     # PAN movers' cross-model correlation at least 0.10 above the random controls'
SIZE_SESOI = -0.02     # the even-padding size moves predictions at least 0.02 nats less (KL) than the control size

ABLATION_CLAIM = ("PANs induce strong biases: removing their border response disrupts predictions more, per unit of "
                  "perturbation, than removing as many random channels")
MOVER_CLAIM = "The biases are characteristic: PAN ablations move the same classes across models"
SIZE_CLAIM = ("An input size that pads evenly suits the trained models better than an equally small resize that "
              "keeps uneven padding")
SECTIONS = {"ablation": "pan-ablation-against-random-controls",
            "movers": "characteristic-biases-which-classes-gain-and-lose",
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
# Claim 1: PANs matter beyond their size


def primary_ablation_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """The primary test of "PANs induce strong biases", per model: in the ``mean``/``border`` ablation, KL per
    unit of perturbation of the PANs against the mean of their random controls, as a relative excess (+0.5: half
    as large again) with its paired bootstrap interval over images and p, the Holm-adjusted p over models, the
    smallest excess the design detects at 80% power (Holm's first step), and the verdict (:func:`judge` against
    :data:`ABLATION_SESOI`)."""
    check_type("comparison", comparison, pd.DataFrame)
    mode, region = PRIMARY_ABLATION
    t = comparison[(comparison["metric"] == PRIMARY_METRIC) & (comparison["mode"] == mode)
                   & (comparison["region"] == region)]
    if t.empty or "excess" not in t:
        return pd.DataFrame(columns=["model", "pans", "random", "excess", "excess_ci_low", "excess_ci_high", "p",
                                     "p_holm", "detectable", "verdict"])
    t = t.reset_index(drop=True)
    p_holm, alpha = _holm_family(t["p"])
    out = pd.DataFrame({"model": t["model"], "pans": t["pans"], "random": t["controls_mean"], "excess": t["excess"],
                        "excess_ci_low": t["excess_ci_low"], "excess_ci_high": t["excess_ci_high"], "p": t["p"],
                        "p_holm": p_holm, "n_images": t["n_images"] if "n_images" in t else np.nan,
                        "p_floor": t["p_floor"].astype(bool) if "p_floor" in t else False})
    out["detectable"] = [detectable_effect(lo, hi, alpha=alpha) for lo, hi in zip(out.excess_ci_low, out.excess_ci_high)]
    out["verdict"] = [judge(lo, hi, ABLATION_SESOI, p=p) for lo, hi, p in
                      zip(out.excess_ci_low, out.excess_ci_high, out.p_holm)]
    return out


def primary_ablation_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`primary_ablation_table` rounded into a few short columns for the page."""
    return pd.DataFrame({"model": table["model"], "KL per unit, PANs": table["pans"].round(3),
                         "random": table["random"].round(3),
                         "PANs vs random [95%]": [f"{_pct(e)} {_pct_ci(lo, hi)}" for e, lo, hi in
                                                  zip(table.excess, table.excess_ci_low, table.excess_ci_high)],
                         "Holm p": [_p(p, f) for p, f in zip(table["p_holm"], table["p_floor"])],
                         "verdict": table["verdict"]}).set_index("model")


def secondary_ablation_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Every ablation (mode/region) per model: PANs against the mean of their random controls as a relative
    excess with its paired 95% interval, raw KL and KL per unit of perturbation, and how much larger the PANs'
    perturbation is. Secondary: shown beside the primary test, not voting."""
    check_type("comparison", comparison, pd.DataFrame)
    rows = []
    keyed = comparison.set_index(["model", "mode", "region", "metric"])
    for (model, mode, region) in dict.fromkeys(zip(comparison["model"], comparison["mode"], comparison["region"])):
        row = {"model": model, "ablation": f"{mode}/{region}" + (" (primary)" if (mode, region) == PRIMARY_ABLATION
                                                                  else "")}
        for metric, label in (("kl", "KL"), (PRIMARY_METRIC, "KL per unit")):
            key = (model, mode, region, metric)
            if key in keyed.index and "excess" in keyed.columns:
                r = keyed.loc[key]
                row[label] = f"{_pct(r.excess)} {_pct_ci(r.excess_ci_low, r.excess_ci_high)}"
        key = (model, mode, region, "perturbation")
        if key in keyed.index and keyed.loc[key].get("controls_mean", 0) > 0:
            r = keyed.loc[key]
            row["size ratio"] = f"x{r.pans / r.controls_mean:.2g}"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "ablation"]) if rows else pd.DataFrame()


def ablation_finding(comparison: pd.DataFrame) -> Finding:
    """The findings-box line of "PANs induce strong biases", from :func:`primary_ablation_table`."""
    t = primary_ablation_table(comparison)
    if t.empty:
        return Finding("not testable here", ABLATION_CLAIM, _ablation_claimed(), "", "nothing measured",
                       needed="PANs and random controls of equal size, with the perturbation size measured",
                       section=SECTIONS["ablation"])
    verdict = judge_all(t["verdict"])
    observed = ("KL per unit of perturbation, PANs vs random: "
                + ", ".join(f"{m} {_pct(e)} {_pct_ci(lo, hi)}" for m, e, lo, hi in
                            zip(t.model, t.excess, t.excess_ci_low, t.excess_ci_high))
                + "; " + direction_counts(t.excess_ci_low, t.excess_ci_high, t.excess, "above random", "below"))
    det = t["detectable"][np.isfinite(t["detectable"])]
    detectable = (f"{_pct(det.min())} to {_pct(det.max())} per model (Holm's first step)" if len(det) else "")
    raw = comparison[(comparison["metric"] == "kl") & (comparison["mode"] == PRIMARY_ABLATION[0])
                     & (comparison["region"] == PRIMARY_ABLATION[1])]
    size = comparison[(comparison["metric"] == "perturbation") & (comparison["mode"] == PRIMARY_ABLATION[0])
                      & (comparison["region"] == PRIMARY_ABLATION[1])]
    note = ""
    if len(raw) and "diff_ci_low" in raw:
        note = ("secondary, not voting: raw KL (not divided by the perturbation) is "
                + direction_counts(raw.diff_ci_low, raw.diff_ci_high, raw.difference, "above random", "below"))
    if len(size) and "controls_mean" in size:
        larger, smaller = int((size.pans > size.controls_mean).sum()), int((size.pans < size.controls_mean).sum())
        note += (("; " if note else "") + f"the PANs' perturbation is larger than the controls' in {larger} of "
                 f"{len(size)} models, smaller in {smaller} (size ratio in the table below)")
    n_controls = int(comparison["n_controls"].max()) if "n_controls" in comparison else 0
    n_images = int(t["n_images"].max()) if np.isfinite(t["n_images"]).any() else 0
    return Finding(verdict, ABLATION_CLAIM, _ablation_claimed(), observed,
                   evidence_scale(t.model, n_images, f"{n_controls} random-channel controls per model"),
                   detectable=detectable,
                   test=(f"per model, paired bootstrap over images of the PANs' KL per unit of perturbation relative to "
                         f"the random controls', {'/'.join(PRIMARY_ABLATION)} ablation; Holm-adjusted p: "
                         + ", ".join(f"{m} {_p(p, f)}" for m, p, f in zip(t.model, t.p_holm, t.p_floor))),
                   note=note, section=SECTIONS["ablation"])


def _ablation_claimed() -> str:
    return (f"{_pct(ABLATION_SESOI)} or more KL per unit of perturbation than random channels, in every model (our "
            f"reading of \"strong\"; the paper gives no number)")


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
                         "PANs": table["pans"].round(3), "random": table["null"].round(3),
                         "difference [95%]": [f"{d:+.3f} {_num_ci(lo, hi, 3)}" for d, lo, hi in
                                              zip(table.difference, table.ci_low, table.ci_high)],
                         "p": [_p(p, bool(f)) for p, f in zip(table["p"], table.get("p_floor", [False] * len(table)))]
                         }).set_index("PAN ablation")


def mover_finding(table: pd.DataFrame) -> Finding:
    """The findings-box line of "the biases are characteristic", from :func:`mover_table`'s primary row."""
    primary = table[table["primary"]] if "primary" in table else table.iloc[:0]
    if primary.empty or not np.isfinite(primary["ci_low"].iloc[0]):
        return Finding("not testable here", MOVER_CLAIM, _mover_claimed(), "", "nothing measured",
                       needed="two or more models with random-channel controls of the same ablation",
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
                           f"{int(r.n_controls)} random-channel controls")
    return Finding(verdict, MOVER_CLAIM, _mover_claimed(),
                   f"mean cross-model correlation of the class movers {r.pans:.3f} for the PANs vs {r.null:.3f} for "
                   f"random channels, difference {r.difference:+.3f} {_num_ci(r.ci_low, r.ci_high, 3)}",
                   scale, detectable=f"{detectable_effect(r.ci_low, r.ci_high):.3f}",
                   test=(f"bootstrap over images of the difference in mean correlation, {r.ablation} ablation (one test, "
                         f"p {_p_relation(r.p, bool(r.get('p_floor', False)))})"), note=note, section=SECTIONS["movers"])


def _mover_claimed() -> str:
    return (f"a cross-model correlation at least {MOVER_SESOI:.2f} above the random controls' (our reading of "
            f"\"characteristic\"; the paper gives no number)")


# ---------------------------------------------------------------------------------------------------------
# Claim 3: even padding at inference


def size_comparison(reports, even: int = 225, control: int = 223, metric: str = "kl") -> pd.DataFrame:
    """Per model: does rendering at the even-padding size ``even`` move predictions more or less than the equally
    small ``control`` resize? The paired t-test over images of (metric at ``even`` - metric at ``control``), its
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
                       needed="the same images at an even-padding size and at an equally small control size",
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
# The box


def chapter_findings_box(comparison: pd.DataFrame | None = None, movers: pd.DataFrame | None = None,
                         size_table: pd.DataFrame | None = None) -> list[Finding]:
    """Chapter 3's findings, one :class:`padlib.chapters.findings.Finding` per claim, each from its primary test:
    the PAN ablation against random controls per unit of perturbation (``comparison``: ``report_tables``'
    'comparison'), the class movers against the random-control null (``movers``: :func:`mover_table`), and the
    even-padding size against the control size (``size_table``: :func:`size_comparison`). A claim whose table is
    not given is left out, so each section can show its own line."""
    out = []
    if comparison is not None:
        out.append(ablation_finding(comparison))
    if movers is not None:
        out.append(mover_finding(movers))
    if size_table is not None:
        out.append(size_finding(size_table))
    return out
