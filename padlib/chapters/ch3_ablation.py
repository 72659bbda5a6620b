"""Chapter 3's readings: verdicts and findings text for PAN ablation, padding swaps and movers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..chapters.findings import Finding, verdict_of
from ..errors import PadlibError, check_type
from ..stats import bootstrap_ci

_DISRUPTION = {"kl": 1, "agreement": -1, "top1_accuracy": -1, "top5_accuracy": -1, "kl_per_perturbation": 1}


def pan_verdicts(comparison: pd.DataFrame, metric: str = "kl") -> pd.DataFrame:
    """Per model, mode and region: is ablating the PANs more or less disruptive than ablating random
    channels? Disruptive means higher KL / lower agreement or accuracy. 'more' (or 'less') needs both the
    paired bootstrap interval of the difference to exclude 0 in that direction and the PAN value to lie
    beyond every control; otherwise 'indistinguishable'."""
    if metric not in _DISRUPTION:
        raise PadlibError(f"metric must be one of {', '.join(_DISRUPTION)}, got {metric!r}")
    sign = _DISRUPTION[metric]
    t = comparison[comparison["metric"] == metric].copy()
    if t.empty or "difference" not in t:
        return t
    lo, hi = sign * t["diff_ci_low"], sign * t["diff_ci_high"]
    lower_bound, upper_bound = np.minimum(lo, hi), np.maximum(lo, hi)
    beyond = t["pans"] * sign > t["controls_max" if sign > 0 else "controls_min"] * sign
    short = t["pans"] * sign < t["controls_min" if sign > 0 else "controls_max"] * sign
    t["more_disruptive_than"] = t["controls_below_pans"] if sign > 0 else t["controls_above_pans"]
    t["verdict"] = np.where((lower_bound > 0) & beyond, "more disruptive than random",
                            np.where((upper_bound < 0) & short, "less disruptive than random", "indistinguishable"))
    cols = ["model", "mode", "region", "pans", "controls_mean", "controls_min", "controls_max", "difference",
            "diff_ci_low", "diff_ci_high", "more_disruptive_than", "n_controls", "verdict"]
    return t[[c for c in cols if c in t]].reset_index(drop=True)


def _fmt_ci(lo, hi) -> str:
    return f"[{lo:+.3g}, {hi:+.3g}]"


def ablation_findings(comparison: pd.DataFrame) -> str:
    """The chapter's answer to "is removing PANs worse than removing random channels?", in plain text.

    Per ablation (mode/region): how many models put the PANs above, below or level with their random
    controls on KL (:func:`pan_verdicts`), then the same after dividing KL by the size of the ablation where
    it acts ('kl_per_perturbation', when measured), so that "PANs matter more" can be told from "we
    perturbed more". Per model: the KL values with the paired interval, the perturbation sizes (PANs vs
    controls, ratio), and the agreement, with a floor flag when PANs and every control leave no image's
    top-1 class unchanged (agreement 0: the measure cannot tell them apart, only KL can).
    """
    check_type("comparison", comparison, pd.DataFrame)
    if comparison.empty:
        return "no PAN ablation to report (no PANs found)"
    kl = pan_verdicts(comparison, "kl").set_index(["model", "mode", "region"])
    sized = (pan_verdicts(comparison, "kl_per_perturbation").set_index(["model", "mode", "region"])
             if (comparison["metric"] == "kl_per_perturbation").any() else None)
    rows = comparison.set_index(["model", "mode", "region", "metric"])
    short = {"more disruptive than random": "more", "less disruptive than random": "less",
             "indistinguishable": "indistinguishable"}
    lines = []
    for (mode, region), block in kl.groupby(level=["mode", "region"], sort=False):
        n = len(block)
        counts = block["verdict"].map(short).value_counts()
        head = (f"{mode}/{region}: on KL, PAN ablation is more disruptive than random in {counts.get('more', 0)}/{n} "
                f"models, less in {counts.get('less', 0)}/{n}, indistinguishable in {counts.get('indistinguishable', 0)}/{n}")
        if sized is not None:
            sc = sized.xs((mode, region), level=["mode", "region"])["verdict"].map(short).value_counts()
            head += (f"; per unit of perturbation: more in {sc.get('more', 0)}/{n}, less in {sc.get('less', 0)}/{n}, "
                     f"indistinguishable in {sc.get('indistinguishable', 0)}/{n}")
        lines.append(head)
        for (model, _, _), r in block.iterrows():
            text = (f"  {model}: KL PANs {r.pans:.3g} vs random {r.controls_mean:.3g} (controls {r.controls_min:.3g}"
                    f"..{r.controls_max:.3g}), difference {r.difference:+.3g} {_fmt_ci(r.diff_ci_low, r.diff_ci_high)}"
                    f" -> {short[r.verdict]}")
            key = (model, mode, region)
            if key + ("perturbation",) in rows.index:
                p = rows.loc[key + ("perturbation",)]
                ratio = p.pans / p.controls_mean if p.controls_mean > 0 else float("nan")
                text += f"; perturbation PANs {p.pans:.3g} vs random {p.controls_mean:.3g} (x{ratio:.2g})"
            if sized is not None and key in sized.index:
                q = sized.loc[key]
                text += f"; KL per unit {q.pans:.3g} vs {q.controls_mean:.3g} -> {short[q.verdict]}"
            if key + ("agreement",) in rows.index:
                a = rows.loc[key + ("agreement",)]
                text += f"; agreement PANs {a.pans:.3f} vs random {a.controls_mean:.3f}"
                if a.pans == 0 and a.get("controls_max", np.nan) == 0:
                    text += " (FLOOR: agreement 0 for PANs and every control; only KL discriminates)"
                elif a.pans == 1 and a.get("controls_min", np.nan) == 1:
                    text += " (CEILING: no top-1 class changed for PANs or any control)"
            lines.append(text)
    return "\n".join(lines)


def chapter_findings_box(comparison: pd.DataFrame | None = None, consistency: pd.DataFrame | None = None,
                         size_table=None) -> list:
    """Chapter 3's findings, one :class:`padlib.chapters.findings.Finding` per claim: is removing the PANs' border
    response more disruptive than removing random channels' (KL, and per unit of perturbation), are the class
    movers characteristic (shared across models beyond the random-control null), and does the even-padding
    size move predictions less than the control size. A claim whose table is not given is left out."""

    out = []
    if comparison is not None:
        raw = pan_verdicts(comparison, "kl")
        unit = pan_verdicts(comparison, "kl_per_perturbation")
        r = raw[(raw["mode"] == "mean") & (raw.region == "border")]
        u = unit[(unit["mode"] == "mean") & (unit.region == "border")]
        more, more_u = r.verdict.eq("more disruptive than random"), u.verdict.eq("more disruptive than random")
        out.append(Finding(
            verdict_of(more_u.mean()) if more.any() else "not here",
            "PANs induce strong biases: removing their border response (mean, border ring) disrupts more than "
            "removing random channels'",
            f"more disruptive on KL in {int(more.sum())} of {len(r)} models (paired 95% intervals beyond every "
            f"control), per unit of perturbation in {int(more_u.sum())} of {len(u)}",
            "pan-ablation-against-random-controls"))
    if consistency is not None and len(consistency):
        verdicts = [v for *_, v in _mover_verdicts(consistency)[0] if v is not None]
        above, total = verdicts.count("above"), len(verdicts)
        out.append(Finding(verdict_of(above / max(total, 1)),
                           "The biases are characteristic: PAN ablations move the same classes across models",
                           f"cross-model correlation above the random-control null in {above} of {total} PAN ablations",
                           "characteristic-biases-which-classes-gain-and-lose"))
    if size_table is not None and len(size_table):
        less = size_table.verdict.eq("even size moves predictions less")
        more = size_table.verdict.eq("even size moves predictions more")
        out.append(Finding(verdict_of(less.mean()),
                           "An input size that pads evenly suits the trained models better than an equally small "
                           "resize that keeps uneven padding",
                           f"moves predictions less in {int(less.sum())} of {len(size_table)} models, more in "
                           f"{int(more.sum())} (paired 95% intervals on KL)", "padding-at-inference-and-input-size"))
    return out


def _mover_verdicts(consistency: pd.DataFrame) -> tuple[list, pd.Series, pd.DataFrame]:
    """Per PAN ablation family of a consistency table: (family, mean correlation, the random-control null's
    per-control means, "above"/"below"/"within", or None without a matched null); with the per-control means of
    every random family and the table with its ``family`` column."""
    c = consistency.copy()
    if "family" not in c:
        c["family"] = c["intervention"].astype(str).str.replace(r" #\d+$", "", regex=True)
    per_control = c[c["family"].str.startswith("random ")].groupby(["family", "intervention"])["correlation"].mean()
    out = []
    for family in dict.fromkeys(f for f in c["family"] if f.startswith("PANs ")):
        pan = float(c.loc[c["family"] == family, "correlation"].mean())
        null_family = "random " + family[len("PANs "):]
        if null_family not in per_control.index.get_level_values(0):
            out.append((family, pan, None, None))
            continue
        null = per_control.loc[null_family]
        out.append((family, pan, null, "above" if pan > null.max() else "below" if pan < null.min() else "within"))
    return out, per_control, c


def mover_findings(consistency: pd.DataFrame) -> str:
    """Are the class movers of PAN ablations "characteristic", i.e. shared across models beyond what any
    ablation does? Per ablation family, the mean cross-model correlation of per-class probability-mass
    changes against the random-control null of the same mode/region: 'above the null' needs the PAN mean
    to exceed the mean of every single control index, 'below' to fall under every one, else 'within'.
    Padding swaps and sizes have no matched null; their mean is printed next to the range of all
    random-control means for scale."""
    check_type("consistency", consistency, pd.DataFrame)
    if consistency.empty:
        return "one model only: no cross-model consistency to report"
    verdicts, per_control, c = _mover_verdicts(consistency)
    lines, tally = [], {"above": 0, "below": 0, "within": 0}
    for family, pan, null, verdict in verdicts:
        if verdict is None:
            lines.append(f"{family}: mean correlation {pan:.3f} (no random control to compare)")
            continue
        tally[verdict] += 1
        lines.append(f"{family}: mean cross-model correlation {pan:.3f}; random-control null {null.mean():.3f} "
                     f"(per control {null.min():.3f}..{null.max():.3f}) -> {verdict} the null")
    n = sum(tally.values())
    if n:
        lines.insert(0, f"PAN class movers vs the random-control null: above in {tally['above']}/{n} ablations, "
                        f"below in {tally['below']}/{n}, within in {tally['within']}/{n}")
    others = [f for f in dict.fromkeys(c["family"]) if not f.startswith(("PANs ", "random "))]
    if others and len(per_control):
        lines.append(f"no matched null for the following; random-control means range {per_control.min():.3f}.."
                     f"{per_control.max():.3f}:")
        for family in others:
            lines.append(f"  {family}: mean cross-model correlation {c.loc[c['family'] == family, 'correlation'].mean():.3f}")
    return "\n".join(lines)


def size_findings(size_table: pd.DataFrame) -> str:
    """Plain-text reading of :func:`size_comparison`: per model the two sizes' values, the paired interval and
    the verdict, and how many models the even-padding size moves more / less than the control size."""
    check_type("size_table", size_table, pd.DataFrame)
    if size_table.empty:
        return "no size comparison (needs two sizes)"
    value_cols = [col for col in size_table.columns if col.count("_") >= 1 and col.split("_")[-1].isdigit()]
    (even_col, control_col) = value_cols[:2]
    even, control = even_col.split("_")[-1], control_col.split("_")[-1]
    n = len(size_table)
    counts = size_table["verdict"].value_counts()
    lines = [f"size {even} vs size {control}: moves predictions more in {counts.get('even size moves predictions more', 0)}/{n}"
             f" models, less in {counts.get('even size moves predictions less', 0)}/{n}, indistinguishable in "
             f"{counts.get('indistinguishable', 0)}/{n}"]
    for r in size_table.itertuples():
        lines.append(f"  {r.model}: {even_col} {getattr(r, even_col):.3g} vs {control_col} {getattr(r, control_col):.3g},"
                     f" difference {r.difference:+.3g} {_fmt_ci(r.diff_ci_low, r.diff_ci_high)} -> {r.verdict}")
    return "\n".join(lines)


def size_comparison(reports, even: int = 225, control: int = 223, metric: str = "kl", n_boot: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """Per model: does rendering at the even-padding size move predictions more than the equally small
    control resize? Paired bootstrap over images of (metric at ``even`` - metric at ``control``)."""
    if metric not in _DISRUPTION:
        raise PadlibError(f"metric must be one of {', '.join(_DISRUPTION)}, got {metric!r}")
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    rows = []
    for r in reports:
        if even not in r.sizes or control not in r.sizes:
            continue
        a, b = (r.sizes[s].per_image[metric].to_numpy() for s in (even, control))
        lo, hi = bootstrap_ci(a - b, n_boot, seed)
        more = _DISRUPTION[metric] * np.array([lo, hi])
        verdict = ("even size moves predictions more" if more.min() > 0 else
                   "even size moves predictions less" if more.max() < 0 else "indistinguishable")
        rows.append({"model": r.model, f"{metric}_{even}": float(a.mean()), f"{metric}_{control}": float(b.mean()),
                     "difference": float((a - b).mean()), "diff_ci_low": lo, "diff_ci_high": hi, "verdict": verdict})
    return pd.DataFrame(rows)

