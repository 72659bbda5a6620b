"""Chapter 5's readings: scheme verdicts against zero padding, PPP, cost and the findings box."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..chapters.findings import Finding
from ..errors import PadlibError
from ..experiments.ch5_schemes import ppp_at_ceiling
from ..experiments.training import run_clock
from ..stats import direction, interval_sign, t_test


def edge_prediction_findings(errors: "pd.DataFrame") -> tuple["pd.DataFrame", list[str]]:
    """(layer x predictor table of the error relative to zero, mean over seeds; printed lines) for errors of
    :func:`edge_prediction_error` from one or more runs (a ``seed`` column). A layer counts as won by the
    module when its error is below both replicate's and reflect's in every seed, not just on average."""
    table = errors.pivot_table(index="layer", columns="predictor", values="relative_to_zero", sort=False)
    by = ["seed", "layer"] if "seed" in errors.columns else ["layer"]
    wide = errors.pivot_table(index=by, columns="predictor", values="relative_to_zero")
    wins = (wide["padding_module"] < wide[["replicate", "reflect"]].min(axis=1)).groupby(level="layer").all()
    mean_wins = int((table["padding_module"] < table[["replicate", "reflect"]].min(axis=1)).sum())
    n_seeds = errors["seed"].nunique() if "seed" in errors.columns else 1
    ratio = (table["padding_module"] / table["replicate"])
    lines = [f"the trained module's edge error is below both replicate's and reflect's on {int(wins.sum())} of "
             f"{len(table)} layers in every one of {n_seeds} seed(s) ({mean_wins} of {len(table)} on the mean)",
             f"module / replicate error per layer: {', '.join(f'{k} {v:.2f}' for k, v in ratio.items())}"]
    return table, lines


def _effect_direction(d, floor: float) -> tuple[float, float, float, str]:
    """(mean, t-interval low, high, :func:`padlib.stats.direction`) of per-seed paired differences ``d``."""
    r = t_test(d)
    return r.mean, r.low, r.high, direction(r.low, r.high, r.mean, floor)


def ppp_learning_verdict(ppp: pd.DataFrame, control: str = "circular", floors: dict | None = None) -> pd.DataFrame:
    """Is each PPP measure a learning artefact? One row per (measure, scheme) from :func:`ppp_over_runs`.

    Both questions are paired across seeds (same seed = same initial weights and batches for every scheme),
    decided by the 95% t-interval of the per-seed differences *and* an effect-size floor per measure
    (``floors``, in the measure's units; 0 when not given): a difference counts only if its interval excludes
    0 and its mean reaches the floor ("below the floor" otherwise).

    * ``training``: trained - init of the scheme, minus the same change of the ``control`` at that seed (the
      control cannot form position from padding, so its change is what training does to the measure
      anyway): "rises" / "falls" / "below the floor" / "no resolved change"; for the control, its raw change;
    * ``at_init``: the scheme's initial value - the ``control``'s (circular: no border, so no position
      from padding) at the same seed: "above control" means the padding alone puts it there before any
      learning.

    A measure is a learning artefact for a scheme when it rises with training; it is a property of the
    padding when it is above the control at initialisation. ``unknown`` with a single seed.
    """
    floors = dict(floors or {})
    wide = ppp.pivot_table(index=["measure", "scheme", "seed"], columns="state", values="value")
    missing = {"init", "trained"} - set(wide.columns)
    if missing:
        raise PadlibError(f"ppp_learning_verdict needs both states; missing {', '.join(sorted(missing))}")
    schemes = list(dict.fromkeys(ppp["scheme"]))
    rows = []
    words = {"up": "rises", "down": "falls", "small": "below the floor", "flat": "no resolved change",
             "unknown": "unknown (one seed)"}
    init_words = {"up": "above control", "down": "below control", "small": "within the floor of the control",
                  "flat": "at control level", "unknown": "unknown (one seed)"}
    for measure in dict.fromkeys(ppp["measure"]):
        w = wide.loc[measure]
        floor = float(floors.get(measure, 0.0))
        ctrl = w.loc[control, "init"] if control in w.index.get_level_values(0) else None
        for scheme in schemes:
            if scheme not in w.index.get_level_values(0):
                continue
            g = w.loc[scheme]
            change = g["trained"] - g["init"]
            if ctrl is not None and scheme != control:  # beyond the control's drift at the same seed
                change = change - (w.loc[control, "trained"] - ctrl)
            m, lo, hi, dirn = _effect_direction(change.dropna(), floor)
            row = {"measure": measure, "scheme": scheme, "init": g["init"].mean(), "trained": g["trained"].mean(),
                   "change": m, "change_ci_low": lo, "change_ci_high": hi, "training": words[dirn], "floor": floor}
            if ctrl is not None and scheme != control:
                im, ilo, ihi, idir = _effect_direction((g["init"] - ctrl).dropna(), floor)
                row.update(init_minus_control=im, at_init=init_words[idir])
            else:
                row.update(init_minus_control=np.nan, at_init="(control)" if scheme == control else "no control")
            row["n_seeds"] = len(g)
            rows.append(row)
    return pd.DataFrame(rows)


def ppp_findings(verdict: pd.DataFrame, control: str = "circular", ceilings: dict | None = None) -> list[str]:
    """Printed lines: per measure, which schemes rise / fall / do not change with training and which are
    already above the control at initialisation, and whether the PPP paper's claim ("forms during training
    whatever the padding") holds in this run: it would need the measure to rise for every scheme with a border.
    """
    lines = []
    ceiled = ppp_at_ceiling(verdict, control, ceilings)
    for measure, g in verdict.groupby("measure", sort=False):
        bordered = g[g.scheme != control]
        floor = g["floor"].iloc[0] if "floor" in g else 0.0
        lines.append(f"{measure} (effect-size floor {floor:g}):")
        for _, r in g.iterrows():
            init_part = "" if r.scheme == control else f"; at init {r.at_init} ({r.init_minus_control:+.3f})"
            what = "change" if r.scheme == control else f"change beyond {control}'s"
            lines.append(f"  {r.scheme:15s} init {r.init:+.3f} -> trained {r.trained:+.3f}, {what} {r.change:+.3f} "
                         f"(95% CI {r.change_ci_low:+.3f} .. {r.change_ci_high:+.3f}): {r.training}{init_part}")
        rises = bordered[bordered.training == "rises"].scheme.tolist()
        falls = bordered[bordered.training == "falls"].scheme.tolist()
        at_init = bordered[bordered.at_init == "above control"].scheme.tolist()
        if (bordered.training.str.startswith("unknown")).any():
            claim = "cannot be decided with one seed"
        elif len(bordered) and len(rises) == len(bordered):
            claim = "SUPPORTED: it rises with training for every scheme with a border"
        else:
            claim = (f"NOT supported: it rises for {', '.join(rises) or 'no scheme'} of {len(bordered)} bordered "
                     f"schemes" + (f", falls for {', '.join(falls)}" if falls else ""))
        risen = bordered[bordered.training == "rises"]
        if len(risen) and bordered.init_minus_control.notna().any():
            top, base = risen.loc[risen.change.idxmax()], bordered.loc[bordered.init_minus_control.idxmax()]
            lines.append(f"  -> size: the largest rise beyond the control is {top.change:+.3f} ({top.scheme}); the largest "
                         f"initial excess over the control, from the padding alone, is {base.init_minus_control:+.3f} "
                         f"({base.scheme})")
        lines.append(f"  -> above the {control} control already at initialisation: {', '.join(at_init) or 'none'}; "
                     f"'forms during training whatever the padding': {claim}")
        if measure in ceiled:
            lines.append("  -> at its maximum before and after training for every scheme with a border: the measure "
                         "saturates and cannot show a rise")
    return lines


def convergence_lines(table: pd.DataFrame, what: str = "the tolerance") -> list[str]:
    """Printed lines of :func:`convergence_table` (``what``: what the tolerance is, in words)."""
    a = table.attrs
    share = a.get("last_fraction")
    base = a.get("baseline")
    lines = [f"gain of held-out accuracy over the last {share:.0%} of training (slope x span; flat: the 95% "
             f"interval's upper end below {a.get('tolerance'):.4f}, {what}):"
             if share else "late gain of held-out accuracy:"]
    for _, r in table.iterrows():
        vs = ""
        if "vs_baseline" in r and np.isfinite(r.get("vs_baseline", np.nan)):
            vs = f"; minus {base}'s at the same seed {r.vs_baseline:+.4f} ({r.vs_ci_low:+.4f} .. {r.vs_ci_high:+.4f})"
        lines.append(f"  {r.scheme:15s} {r.late_gain:+.4f} (95% CI {r.ci_low:+.4f} .. {r.ci_high:+.4f}, "
                     f"{r.n_runs} runs): {'flat at the end' if r.flat else 'NOT shown flat: may still be rising'}{vs}")
    return lines


def run_time_line(start: dict, what: str = "chapter") -> str:
    """``<what>_seconds=...``: wall time since ``start`` (:func:`run_clock`), the CPU seconds spent meanwhile (by
    this process and its finished workers: what the run costs, whoever else used the machine) and the load
    averages. A run that keeps every core busy by itself holds the 5-minute load near the number of cores; well
    above it, other work shared the machine and the wall time is longer than the run alone would take."""
    now = run_clock()
    load = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    shared = load[1] > cores + 0.5
    return (f"{what}_seconds={now['wall'] - start['wall']:.0f} (CPU seconds {now['cpu'] - start['cpu']:.0f}; load "
            f"average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} over 1 / 5 / 15 minutes on {cores} cores: "
            f"{'other work shared the machine' if shared else 'no sign of other work on the machine'})")


def longer_training_lines(table: pd.DataFrame, tolerance: float | None = None) -> list[str]:
    """Printed lines of :func:`longer_training_check` (``tolerance``: the smallest resolvable effect)."""
    out = []
    for _, r in table.iterrows():
        within = ""
        if tolerance is not None and np.isfinite(r.ci_high):
            within = (": within the resolvable effect, converged" if max(abs(r.ci_low), abs(r.ci_high)) < tolerance
                      else ": more training may still change it" if r.ci_low > 0 else
                      ": interval wider than the resolvable effect")
        out.append(f"{r.scheme:15s} trained {r.factor:g}x as long: final accuracy {r.gain:+.4f} (95% CI {r.ci_low:+.4f} .. "
                   f"{r.ci_high:+.4f}; per seed {', '.join(f'{v:+.4f}' for v in r.per_seed)}){within}")
    return out


def noise_band_line(band: dict | None) -> str:
    """One printed line on :func:`noise_band`."""
    if band is None:
        return "no noise twin trained: the noise floor is the seed-to-seed spread alone"
    return (f"noise band ({band['a']} - {band['b']}, the same function): {band['value']} {band['mean']:+.4f} "
            f"(95% CI {band['ci_low']:+.4f} .. {band['ci_high']:+.4f}, largest |difference| at one seed "
            f"{band['max_abs']:.4f}, {band['n_seeds']} seeds); noise floor {band['floor']:.4f}")


def resolvable_line(res: dict) -> str:
    """One printed line on :func:`resolvable_effect`."""
    return (f"smallest resolvable effect on {res['value']}: seed-to-seed SD of a paired difference {res['sd']:.4f}; "
            f"with {res['n_seeds']} seeds a 95% interval is +-{res['half_width']:.4f}, and an effect of "
            f"{res['mde']:.4f} is detected with {res['power']:.0%} power after Holm's correction over "
            f"{res['n_schemes']} schemes")


CH5_SECTIONS = {"accuracy": "final-accuracy-and-learning-speed-against-zero-padding",
                "convergence": "are-the-networks-trained-to-convergence",
                "cost": "what-the-padding-module-costs-and-what-it-buys",
                "ppp": "position-information-ppp-formed-by-training-whatever-the-padding"}


# What the papers report (quoted in the book's notes on the papers; never measured here)
PAPER_NUMBERS = {
    "padding_module": "the Padding Module paper reports +1.23% (arXiv; +1.49% in the journal) for VGG16 and +0.44% for "
                      "ResNet50 over zero padding, data set not available to us",
    "partial": "Liu et al. report ImageNet top-1 (mean of 5 runs) ResNet50 76.13 zero vs 76.61 partial and VGG16-BN "
               "73.68 vs 74.00",
}


def scheme_verdict(row, baseline: str = "zero", floor: float = 0.0, alpha: float = 0.05) -> str:
    """The verdict on one row of :func:`paired_comparison`: "better/worse than the baseline" when the 95% interval
    excludes 0, the Holm-adjusted p (when the table has one) is below ``alpha`` and the mean difference reaches
    the noise ``floor``; "below the noise floor" when it is resolved but smaller than the floor; else "not
    distinguishable" (at this budget and number of seeds)."""
    col = f"mean_diff_vs_{baseline}"
    mean = row[col]
    sign = int(interval_sign(row["ci_low"], row["ci_high"], mean))
    holm = row.get("p_holm", np.nan)
    if sign == 0 or (np.isfinite(holm) and holm >= alpha):
        return f"not distinguishable from {baseline}"
    if abs(mean) < floor:
        return "below the noise floor"
    return f"better than {baseline}" if sign > 0 else f"worse than {baseline}"


def chapter_findings_box(paired: pd.DataFrame | None, ppp_verdict: pd.DataFrame | None,
                         baseline: str = "zero", control: str = "circular", floor: float = 0.0,
                         resolvable: dict | None = None, ceiled=(), sections: dict | None = None,
                         longer: pd.DataFrame | None = None, cut: pd.DataFrame | None = None) -> list:
    """Chapter 5's findings, one :class:`padlib.chapters.findings.Finding` per paper claim: the Padding Module and partial
    padding against zero padding (final test accuracy paired over seeds, 95% intervals, Holm-adjusted across the
    schemes compared, a difference counted only above the noise ``floor``; ``resolvable`` from
    :func:`resolvable_effect` states the smallest effect the budget resolves; the papers' own numbers quoted as
    theirs), and PPP's "position information forms during training whatever the padding", per measure (measures
    in ``ceiled``, at their ceiling for every scheme, are left out). ``longer`` (:func:`longer_training_check`):
    a claimed scheme that still gained when trained longer is said to be short of convergence, with that gain.
    ``cut``: the same paired comparison on the digits cut by the border only (where extrapolating can pay),
    quoted beside the main number with its own Holm-adjusted p."""

    sections = {**CH5_SECTIONS, **dict(sections or {})}
    out = []
    col = f"mean_diff_vs_{baseline}"
    if paired is not None and len(paired):
        for scheme, claim in (("padding_module", "A learned Padding Module beats zero padding"),
                              ("partial", "Partial-convolution padding beats zero padding")):
            r = paired[paired.scheme == scheme]
            if not len(r):
                continue
            r = r.iloc[0]
            verdict = scheme_verdict(r, baseline, floor)
            holm = (f", Holm-adjusted p {r.p_holm:.3g} over {len(paired)} schemes" if "p_holm" in r and
                    np.isfinite(r.p_holm) else "")
            smallest = (f"; this budget resolves {resolvable['mde']:.3f} (80% power)" if resolvable else "")
            if cut is not None and scheme in set(cut["scheme"]):
                c = cut[cut.scheme == scheme].iloc[0]
                smallest += (f"; on the digits cut by the border {c[col]:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
                             + (f", Holm-adjusted p {c.p_holm:.3g}" if "p_holm" in c and np.isfinite(c.p_holm) else ""))
            if longer is not None and scheme in set(longer["scheme"]):
                lg = longer[longer.scheme == scheme].iloc[0]
                if lg.ci_low > 0 or min(lg.per_seed) > 0:
                    smallest += (f"; NOT converged: trained {lg.factor:g}x as long it gained {lg.gain:+.3f} more "
                                 f"(per seed {', '.join(f'{v:+.3f}' for v in lg.per_seed)})")
            out.append(Finding(
                "holds" if verdict.startswith("better") else "not here", claim,
                f"final test accuracy {r[col]:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] vs {baseline} over "
                f"{int(r.n_seeds)} seeds{holm}: {verdict}; noise floor {floor:.3f}{smallest}. Not a test of the "
                f"papers' ImageNet numbers: {PAPER_NUMBERS[scheme]}", sections["accuracy"]))
    if ppp_verdict is not None and len(ppp_verdict):
        v = ppp_verdict[(ppp_verdict.scheme != control) & ~ppp_verdict.measure.isin(list(ceiled))]
        rises, falls = v[v.training == "rises"], v[v.training == "falls"]
        above = v[v.at_init == "above control"]
        verdict = ("holds" if len(v) and len(rises) == len(v) else "partly" if len(rises) else "not here")
        text = (f"rises with training (beyond the {control} control's change and the measure's floor) in {len(rises)} "
                f"of {len(v)} measure-scheme pairs")
        if len(rises):
            text += ": " + "; ".join(f"{r.scheme} {r.measure} {r.change:+.3g} [{r.change_ci_low:+.3g}, "
                                     f"{r.change_ci_high:+.3g}]" for r in rises.itertuples())
        if len(falls):
            text += f"; falls in {len(falls)} ({', '.join(f'{r.scheme} {r.measure}' for r in falls.itertuples())})"
        if len(above):
            top = above.loc[above.init_minus_control.idxmax()]
            text += (f"; above the control already at initialisation, from the padding alone, in {len(above)} "
                     f"(largest: {top.scheme} {top.measure} {top.init_minus_control:+.3g})")
        if len(ceiled):
            text += f"; left out, at their ceiling for every scheme: {', '.join(ceiled)}"
        out.append(Finding(verdict, "Position information forms during training, whatever the padding (PPP)",
                           text, sections["ppp"]))
    return out


def paired_verdicts(paired: pd.DataFrame, baseline: str = "zero", floor: float = 0.0) -> pd.DataFrame:
    """Adds ``verdict`` to :func:`paired_comparison` (see :func:`scheme_verdict`: the 95% interval, the
    Holm-adjusted p when the table has one, and the noise ``floor``)."""
    out = paired.copy()
    out["verdict"] = [scheme_verdict(r, baseline, floor) for _, r in paired.iterrows()]
    return out


def paired_lines(paired: pd.DataFrame, baseline: str = "zero", what: str = "", floor: float = 0.0) -> list[str]:
    """One printed line per scheme of :func:`paired_verdicts`."""
    col = f"mean_diff_vs_{baseline}"
    return [f"{r.scheme:15s} {r[col]:+.4f} (95% CI {r.ci_low:+.4f} .. {r.ci_high:+.4f}, wins {r.wins}/{r.n_seeds}"
            + (f", Holm p {r.p_holm:.3g}" if "p_holm" in r and np.isfinite(r.p_holm) else "")
            + f"){' ' + what if what else ''}: {r.verdict}"
            for _, r in paired_verdicts(paired, baseline, floor).iterrows()]


def cost_benefit(cost: pd.DataFrame, paired: pd.DataFrame, baseline: str = "zero", floor: float = 0.0) -> pd.DataFrame:
    """Per scheme: its training-step time relative to the baseline (:func:`interleaved_step_cost`) next to what
    it buys, its paired accuracy effect with the 95% interval and verdict (:func:`paired_verdicts`)."""
    col = f"mean_diff_vs_{baseline}"
    if "ratio_to_zero" not in cost.columns:
        raise PadlibError("cost_benefit needs step times relative to zero padding (interleaved_step_cost with 'zero')")
    v = paired_verdicts(paired, baseline, floor).set_index("scheme")
    c = cost.set_index("scheme")
    rows = [{"scheme": s, "step_ratio": float(c.loc[s, "ratio_to_zero"]), "seconds_per_step": float(c.loc[s, "seconds_per_step"]),
             "accuracy_effect": float(v.loc[s, col]), "ci_low": float(v.loc[s, "ci_low"]),
             "ci_high": float(v.loc[s, "ci_high"]), "verdict": v.loc[s, "verdict"]}
            for s in c.index if s in v.index]
    return pd.DataFrame(rows)


def cost_benefit_lines(table: pd.DataFrame, baseline: str = "zero") -> list[str]:
    """Printed lines of :func:`cost_benefit`."""
    return [f"{r.scheme:15s} a training step costs {r.step_ratio:.2f}x {baseline} padding's; it buys "
            f"{r.accuracy_effect:+.4f} accuracy (95% CI {r.ci_low:+.4f} .. {r.ci_high:+.4f}): {r.verdict}"
            for _, r in table.iterrows()]


def border_concentration_lines(table: pd.DataFrame, baseline: str = "zero") -> list[str]:
    """Printed lines of :func:`border_concentration`."""
    return [f"{r.scheme:15s} gain vs {baseline}: {r.gain_touching:+.3f} on digits at the border, {r.gain_rest:+.3f} on "
            f"the rest, {r.gain_overall:+.3f} overall; border - rest {r.touching_minus_rest:+.3f} "
            f"(95% CI {r.ci_low:+.3f} .. {r.ci_high:+.3f}): {r.verdict}" for _, r in table.iterrows()]


PAN_BY_CONSTRUCTION = {
    "replicate": "the scanner's causal effect is measured against replicate padding, so it is 0 by construction",
    "symmetric": "with one ring of padding symmetric writes what replicate writes, so its effect is 0 as for "
                 "replicate",
    "circular": "the threshold is calibrated on the network's circular copy, i.e. on itself: at most about the "
                "false-positive rate of its filters can pass",
}


def pan_findings(pans: pd.DataFrame, one_ring: bool = True) -> list[str]:
    """Printed lines on :func:`pan_counts`: which counts are fixed by construction and what the others show.

    Replicate (and symmetric with ``one_ring`` padding) are the scanner's reference, circular is its own null,
    and an untrained Padding Module is initialised to replicate: their counts say nothing about the networks.
    For every other scheme and state: mean PANs and share of filters, and whether training lowered or raised
    the count in every seed.
    """
    lines = []
    mean = pans.groupby(["scheme", "state"], sort=False)[["pans", "share_pct", "filters"]].mean()
    wide = pans.pivot_table(index=["scheme", "seed"], columns="state", values="pans")
    for scheme in dict.fromkeys(pans["scheme"]):
        m = mean.loc[scheme]
        counts = ", ".join(f"{st} {m.loc[st, 'pans']:.1f} ({m.loc[st, 'share_pct']:.0f}% of "
                           f"{m.loc[st, 'filters']:.0f} filters)" for st in m.index)
        reason = PAN_BY_CONSTRUCTION.get(scheme) if (scheme != "symmetric" or one_ring) else None
        if reason:
            lines.append(f"{scheme:15s} {counts}: by construction ({reason})")
            continue
        note = ""
        if {"init", "trained"} <= set(wide.columns):
            d = (wide.loc[scheme, "trained"] - wide.loc[scheme, "init"]).dropna()
            if len(d):
                trend = ("fewer after training" if (d < 0).all() else "more after training" if (d > 0).all()
                         else "no consistent change")
                note = f"; trained - init per seed {', '.join(f'{v:+.0f}' for v in d)}: {trend}"
        if scheme == "padding_module":
            trained = m.loc["trained", "pans"] if "trained" in m.index else float("nan")
            lines.append(f"{scheme:15s} {counts}{note}; untrained it pads exactly as replicate, so its init count is 0 "
                         "by construction; trained, the learned padding differs from replicate, so the trained count "
                         "is a measurement: " + ("no filter's border response is caused by the learned padding "
                                                 "beyond the threshold" if trained == 0 else
                                                 "some filters respond to the learned border"))
        else:
            lines.append(f"{scheme:15s} {counts}{note}")
    measured = [s for s in dict.fromkeys(pans["scheme"]) if not (PAN_BY_CONSTRUCTION.get(s) and (s != "symmetric" or one_ring))]
    if "init" in set(pans["state"]):
        init_counts = {s: mean.loc[(s, "init"), "pans"] for s in measured if s != "padding_module"}
        listed = ", ".join(f"{s} {v:.1f}" for s, v in init_counts.items() if v > 0)
        lines.append("PANs before any training (random weights: a property of the padding, not learned): "
                     + (listed or "none"))
    if {"init", "trained"} <= set(wide.columns):
        d = (wide["trained"] - wide["init"]).groupby(level="scheme")
        fewer = [s for s in measured if (d.get_group(s) < 0).all()]
        more = [s for s in measured if (d.get_group(s) > 0).all()]
        lines.append(f"training lowered the count in every seed for: {', '.join(fewer) or 'none'}; "
                     f"raised it in every seed for: {', '.join(more) or 'none'}")
    return lines

