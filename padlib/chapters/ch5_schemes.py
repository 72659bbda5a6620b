"""Chapter 5's readings: the primary tests (the Padding Module and partial padding against zero padding; PPP's
learning-artefact claim), their verdicts, the printed lines and the findings box."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..chapters.findings import INCONCLUSIVE, NOT_TESTABLE, Finding, judge, judge_all
from ..errors import PadlibError
from ..experiments.ch5_schemes import ppp_at_ceiling
from ..experiments.training import run_clock
from ..stats import detectable_effect, holm_adjust, interval_sign, t_test


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


# ---------------------------------------------------------------------------------------------------------
# PPP: position information at initialisation and after training

PPP_PRIMARY_MEASURE = "position_depth_px"  # the measure the primary test uses (declared before the run)
PPP_DEPTH_OF_INTEREST = 1.0  # px: the smallest effect of interest for "formed in training minus present at init"


def _paired(d) -> tuple[float, float, float, float]:
    """(mean, 95% t-interval low, high, two-sided p) of per-seed paired differences ``d``."""
    r = t_test(d)
    return r.mean, r.low, r.high, r.p


def _direction_word(low: float, high: float, mean: float, words: tuple[str, str, str]) -> str:
    """``words`` = (above, below, neither) by the interval's sign; "unknown (one seed)" without an interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "unknown (one seed)"
    return {1: words[0], -1: words[1], 0: words[2]}[int(interval_sign(low, high, mean))]


def ppp_changes(ppp: pd.DataFrame, control: str = "circular") -> pd.DataFrame:
    """What training and the padding each do to every PPP measure: one row per (measure, scheme) of
    :func:`padlib.experiments.ch5_schemes.ppp_over_runs`, paired across seeds (same seed = same initial weights
    and batches for every scheme), 95% t-intervals of the per-seed differences, no floors.

    * ``change``: trained - init of the scheme minus the same change of the ``control`` at that seed (the
      control, circular padding, has no border, so its change is what training does to the measure anyway);
      ``training`` says "rises" / "falls" / "no resolved change" from its interval (the control: its raw change);
    * ``init_minus_control``: the scheme's initial value minus the control's at the same seed, the position
      the padding alone gives before anything is learned; ``at_init``: "above control" / "below control" /
      "at control level";
    * ``learned_minus_initial``: ``change`` minus ``init_minus_control`` per seed, with its interval and p: the
      part formed in training minus the part present at initialisation (the primary test's quantity).
    """
    wide = ppp.pivot_table(index=["measure", "scheme", "seed"], columns="state", values="value")
    missing = {"init", "trained"} - set(wide.columns)
    if missing:
        raise PadlibError(f"ppp_changes needs both states; missing {', '.join(sorted(missing))}")
    schemes = list(dict.fromkeys(ppp["scheme"]))
    rows = []
    for measure in dict.fromkeys(ppp["measure"]):
        w = wide.loc[measure]
        have = set(w.index.get_level_values(0))
        ctrl = w.loc[control] if control in have else None
        for scheme in [s for s in schemes if s in have]:
            g = w.loc[scheme]
            change = g["trained"] - g["init"]
            row = {"measure": measure, "scheme": scheme, "init": g["init"].mean(), "trained": g["trained"].mean()}
            if ctrl is not None and scheme != control:
                change = (change - (ctrl["trained"] - ctrl["init"])).dropna()
                initial = (g["init"] - ctrl["init"]).dropna()
                both = (change - initial).dropna()
                im, ilo, ihi, _ = _paired(initial)
                lm, llo, lhi, lp = _paired(both)
                row.update(init_minus_control=im, init_ci_low=ilo, init_ci_high=ihi,
                           at_init=_direction_word(ilo, ihi, im, ("above control", "below control", "at control level")),
                           learned_minus_initial=lm, lmi_ci_low=llo, lmi_ci_high=lhi, lmi_p=lp)
            else:
                row.update(init_minus_control=np.nan, init_ci_low=np.nan, init_ci_high=np.nan,
                           at_init="(control)" if scheme == control else "no control", learned_minus_initial=np.nan,
                           lmi_ci_low=np.nan, lmi_ci_high=np.nan, lmi_p=np.nan)
            m, lo, hi, _ = _paired(change.dropna())
            row.update(change=m, change_ci_low=lo, change_ci_high=hi,
                       training=_direction_word(lo, hi, m, ("rises", "falls", "no resolved change")),
                       n_seeds=int(change.notna().sum()))
            rows.append(row)
    return pd.DataFrame(rows)


def ppp_primary(changes: pd.DataFrame, measure: str = PPP_PRIMARY_MEASURE, control: str = "circular",
                claimed: float = PPP_DEPTH_OF_INTEREST, alpha: float = 0.05) -> pd.DataFrame:
    """The PPP claim's primary test, one row per scheme with a border: is position information *primarily* a
    learning artefact, i.e. does the part formed in training exceed the part the padding puts there before
    training (``learned_minus_initial`` of :func:`ppp_changes` on ``measure``, claimed > 0 by at least
    ``claimed``)? Paired t-test per scheme, Holm across the schemes (``p_holm``), the verdict of each
    (:func:`padlib.chapters.findings.judge`) and the smallest effect it detects at 80% power (first Holm step)."""
    v = changes[(changes.measure == measure) & (changes.scheme != control)].copy()
    if not len(v):
        return v.assign(p_holm=[], verdict=[], detectable=[])
    v["p_holm"] = holm_adjust(v["lmi_p"])
    m = len(v)
    v["verdict"] = [judge(r.lmi_ci_low, r.lmi_ci_high, claimed, p=r.p_holm, alpha=alpha)
                    if np.isfinite(r.lmi_ci_low) and np.isfinite(r.lmi_ci_high) else INCONCLUSIVE
                    for r in v.itertuples()]
    v["detectable"] = [detectable_effect(r.lmi_ci_low, r.lmi_ci_high, n=int(r.n_seeds), alpha=alpha / m)
                       for r in v.itertuples()]
    return v.reset_index(drop=True)


def _names(schemes) -> str:
    return ", ".join(schemes) if len(schemes) else "none"


def ppp_lines(changes: pd.DataFrame, control: str = "circular", ceilings: dict | None = None) -> list[str]:
    """Printed lines of :func:`ppp_changes`: per measure and scheme the change with training beyond the
    control and the initial excess over the control, then how many schemes with a border rise, fall and start
    above the control (counted from the table)."""
    lines = []
    ceiled = ppp_at_ceiling(changes, control, ceilings)
    for measure, g in changes.groupby("measure", sort=False):
        bordered = g[g.scheme != control]
        lines.append(f"{measure}:")
        for _, r in g.iterrows():
            if r.scheme == control:
                lines.append(f"  {r.scheme:15s} init {r.init:+.3f} -> trained {r.trained:+.3f}, change {r.change:+.3f} "
                             f"[{r.change_ci_low:+.3f}, {r.change_ci_high:+.3f}]: {r.training} (the control)")
                continue
            lines.append(f"  {r.scheme:15s} init {r.init:+.3f} -> trained {r.trained:+.3f}; change beyond {control}'s "
                         f"{r.change:+.3f} [{r.change_ci_low:+.3f}, {r.change_ci_high:+.3f}]: {r.training}; at init "
                         f"{r.init_minus_control:+.3f} [{r.init_ci_low:+.3f}, {r.init_ci_high:+.3f}]: {r.at_init}")
        rises = bordered[bordered.training == "rises"].scheme.tolist()
        falls = bordered[bordered.training == "falls"].scheme.tolist()
        above = bordered[bordered.at_init == "above control"].scheme.tolist()
        n = len(bordered)
        lines.append(f"  -> of {n} schemes with a border: {len(rises)} rise with training ({_names(rises)}), "
                     f"{len(falls)} fall ({_names(falls)}), {len(above)} start above the {control} control "
                     f"({_names(above)})")
        if measure in ceiled:
            lines.append("  -> at its maximum before and after training for every scheme with a border: the measure "
                         "saturates and cannot show a rise")
    return lines


def ppp_primary_lines(primary: pd.DataFrame, claimed: float = PPP_DEPTH_OF_INTEREST) -> list[str]:
    """Printed lines of :func:`ppp_primary` (the verdict words are the findings box's, shown under the figure)."""
    if not len(primary):
        return ["no scheme with a border to test"]
    unit = " px" if primary["measure"].iloc[0] == "position_depth_px" else ""
    out = [f"{primary['measure'].iloc[0]}: formed in training (beyond the control) minus present at initialisation "
           f"(beyond the control), per seed; claimed > 0 by at least {claimed:g}{unit}; Holm over {len(primary)} schemes:"]
    for r in primary.itertuples():
        side = _direction_word(r.lmi_ci_low, r.lmi_ci_high, r.learned_minus_initial,
                               ("training adds more than the padding gives at initialisation",
                                "the padding gives more at initialisation than training adds", "interval includes 0"))
        out.append(f"  {r.scheme:15s} {r.learned_minus_initial:+.2f}{unit} [{r.lmi_ci_low:+.2f}, {r.lmi_ci_high:+.2f}], "
                   f"{r.n_seeds} seeds, adjusted p {r.p_holm:.2g}: {side}")
    return out


def ppp_table(ppp: pd.DataFrame, digits: int = 2, px_digits: int = 1) -> pd.DataFrame:
    """The PPP measures as a narrow table that fits the page: one row per measure, one column per scheme,
    "init→trained" (means over seeds; ``px_digits`` decimals for measures in pixels, ``digits`` for the others;
    names with spaces so that headers can wrap)."""
    mean = ppp.groupby(["measure", "scheme", "state"], sort=False)["value"].mean().unstack("state")

    def fmt(v, measure):
        d = px_digits if measure.endswith("_px") else digits
        return f"{round(float(v), d) + 0.0:.{d}f}"  # + 0.0: no "-0.00"

    cells = [f"{fmt(a, m)}→{fmt(b, m)}" for (m, _), a, b in zip(mean.index, mean["init"], mean["trained"])]
    t = pd.Series(cells, index=mean.index).unstack("scheme")
    t = t.reindex(index=list(dict.fromkeys(ppp["measure"])), columns=list(dict.fromkeys(ppp["scheme"])))
    t.index = [m.replace("_", " ") for m in t.index]
    t.columns = [s.replace("_", " ") for s in t.columns]
    t.index.name = "init→trained"
    return t


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
    base = table.attrs.get("baseline")
    for _, r in table.iterrows():
        within = ""
        if tolerance is not None and np.isfinite(r.ci_high):
            within = (": within the resolvable effect" if max(abs(r.ci_low), abs(r.ci_high)) < tolerance
                      else ": gained, more training may still change it" if r.ci_low > 0 else
                      ": lost, more training may still change it" if r.ci_high < 0 else
                      ": interval wider than the resolvable effect")
        vs = ""
        if base and "vs_baseline" in r and np.isfinite(r.get("vs_baseline", np.nan)):
            vs = (f"; minus {base}'s gain at the same seed {r.vs_baseline:+.4f} (per seed "
                  f"{', '.join(f'{v:+.4f}' for v in r.vs_baseline_per_seed)})")
        out.append(f"{r.scheme:15s} trained {r.factor:g}x as long: final accuracy {r.gain:+.4f} (95% CI {r.ci_low:+.4f} .. "
                   f"{r.ci_high:+.4f}; per seed {', '.join(f'{v:+.4f}' for v in r.per_seed)}){within}{vs}")
    return out


def resolvable_line(res: dict) -> str:
    """One printed line on :func:`resolvable_effect`."""
    return (f"smallest resolvable effect on {res['value']}: seed-to-seed SD of a paired difference {res['sd']:.4f}; "
            f"with {res['n_seeds']} seeds a 95% interval is +-{res['half_width']:.4f}, and an effect of "
            f"{res['mde']:.4f} is detected with {res['power']:.0%} power after Holm's correction over "
            f"{res['n_schemes']} schemes")


def run_cost_lines(cost: pd.DataFrame, seeds_of: dict, cores: int = 2) -> list[str]:
    """Printed lines of :func:`padlib.experiments.training.run_cost`: CPU seconds per run by scheme and epochs, and
    what the design spends (``seeds_of``: scheme -> number of seeds at the chapter's epochs): one paired seed of
    the schemes with the most seeds, and the whole training, in CPU seconds and in wall seconds on ``cores`` idle
    cores (CPU seconds / cores: a lower bound that assumes the cores never wait)."""
    lines = [f"{r.scheme:15s} {r.epochs:g} epochs: {r.median:.1f} CPU s per run (median of {r.runs})"
             for r in cost.itertuples()]
    first = cost.drop_duplicates("scheme").set_index("scheme")["median"]
    most = max(seeds_of.values()) if seeds_of else 0
    top = [s for s, n in seeds_of.items() if n == most and s in first.index]
    per_seed = float(first[top].sum()) if top else float("nan")
    total = float(cost["total"].sum())
    lines.append(f"one paired seed of {', '.join(top)}: {per_seed:.0f} CPU s (about {per_seed / cores:.0f} s on {cores} "
                 f"idle cores); all {int(cost['runs'].sum())} runs: {total:.0f} CPU s (about {total / cores:.0f} s on "
                 f"{cores} idle cores)")
    return lines


CH5_SECTIONS = {"accuracy": "final-accuracy-and-learning-speed-against-zero-padding",
                "convergence": "are-the-networks-trained-to-convergence",
                "cost": "what-the-padding-module-costs-and-what-it-buys",
                "ppp": "position-information-ppp-formed-by-training-whatever-the-padding"}


# The primary family: the two claims with a published number. The claimed effect is the paper's number (a
# gain in top-1 accuracy, in points, read as a fraction); it is not our data set, network or scale.
PRIMARY = ("partial", "padding_module")
CLAIMED_GAIN = {"padding_module": 0.0123, "partial": 0.0032}
CLAIMED_TEXT = {
    "padding_module": "+0.0123, the Padding Module paper's gain for VGG16 over zero padding (+1.23 points, arXiv "
                      "version; +1.49 in the journal version; +0.44 for ResNet50) on a data set its abstract does not "
                      "name, read as points of accuracy",
    "partial": "+0.0032, Liu et al.'s ImageNet top-1 gain for VGG16-BN (73.68 to 74.00, mean of 5 runs; ResNet50 "
               "76.13 to 76.61, +0.0048)",
}
CLAIMS = {"padding_module": "A learned Padding Module beats zero padding",
          "partial": "Partial-convolution padding beats zero padding"}


def evidence_scale(model, width: int, n_seeds: int, n_other: int | None, canvas: int, n_train: int,
                   probe: int | None = None, trained_here: bool = True) -> str:
    """The scale of the evidence in words, from the design: the network (its padded convolutions and first-stage
    width), the seeds (``n_other``: the other schemes' seeds, None when every scheme has ``n_seeds``), the
    canvases and, for PPP, the probe canvases' side; ``trained_here=False``: the runs were read from a folder
    that ``padlib train`` filled."""
    from ..padding import padded_convs

    seeds = (f"{n_seeds} paired seeds for zero padding and the primary schemes, {n_other} for the others"
             if n_other is not None else f"{n_seeds} paired seeds for every scheme")
    where = "trained here from scratch" if trained_here else "trained from scratch by padlib train (read from a runs folder)"
    text = (f"small networks {where} ({len(padded_convs(model))} padded 3x3 convolutions, first "
            f"stage {width} channels): {seeds}; {n_train} training canvases of {canvas} px with handwritten digits")
    if probe:
        text += f"; measured on {probe}-px probe canvases"
    return text


def scheme_tests(paired: pd.DataFrame, baseline: str = "zero", alpha: float = 0.05, order=None) -> pd.DataFrame:
    """The primary tests of the schemes against ``baseline`` (:func:`padlib.experiments.training.paired_comparison`
    over the primary family only, so ``p_holm`` is Holm over its rows): per scheme with a claimed gain
    (:data:`CLAIMED_GAIN`) its verdict (:func:`padlib.chapters.findings.judge` with the paper's number as the
    claimed effect) and the smallest effect the design detects at 80% power at the first Holm step. Rows in
    ``order`` (scheme names) when given."""
    col = f"mean_diff_vs_{baseline}"
    t = paired[paired.scheme.isin(list(CLAIMED_GAIN))].copy()
    if order is not None:
        rank = {s: i for i, s in enumerate(order)}
        t = t.sort_values("scheme", key=lambda c: c.map(lambda s: rank.get(s, len(rank))), kind="stable")
    m = max(len(t), 1)
    verdicts, detect = [], []
    for r in t.itertuples():
        lo, hi = r.ci_low, r.ci_high
        finite = np.isfinite(lo) and np.isfinite(hi)
        verdicts.append(judge(lo, hi, CLAIMED_GAIN[r.scheme], p=r.p_holm, alpha=alpha) if finite else INCONCLUSIVE)
        detect.append(detectable_effect(lo, hi, n=int(r.n_seeds), alpha=alpha / m) if finite else float("nan"))
    t["claimed"] = t["scheme"].map(CLAIMED_GAIN)
    t["verdict"], t["detectable"] = verdicts, detect
    t = t.rename(columns={col: "effect"})
    return t.reset_index(drop=True)


def scheme_tests_table(tests: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """:func:`scheme_tests` as a narrow table for the page: effect, interval, Holm-adjusted p, the claimed effect
    and the smallest detectable one, rounded; one row per primary scheme."""
    t = tests.set_index("scheme")[["effect", "ci_low", "ci_high", "p_holm", "claimed", "detectable"]]
    t = t.rename(columns={"ci_low": "95% low", "ci_high": "95% high", "p_holm": "Holm p"})
    t.index = [s.replace("_", " ") for s in t.index]
    out = t.round(digits)
    out["Holm p"] = [f"{p:.2g}" for p in t["Holm p"]]
    return out


def _longer_note(longer: pd.DataFrame | None, scheme: str) -> str:
    if longer is None or scheme not in set(longer["scheme"]):
        return ""
    lg = longer[longer.scheme == scheme].iloc[0]
    n = int(lg.n_seeds)
    short = len(lg.per_seed) and all(v > 0 for v in lg.per_seed)
    text = (("not converged at this budget: " if short else "")
            + f"trained {lg.factor:g}x as long ({n} seed{'s' if n != 1 else ''}) its accuracy changed by {lg.gain:+.4f} (per seed "
            f"{', '.join(f'{v:+.4f}' for v in lg.per_seed)})")
    if "vs_baseline" in lg and np.isfinite(lg.get("vs_baseline", np.nan)):
        text += (f" and its difference to {longer.attrs.get('baseline', 'zero')} by {lg.vs_baseline:+.4f} (per seed "
                 f"{', '.join(f'{v:+.4f}' for v in lg.vs_baseline_per_seed)})")
    return text


def chapter_findings_box(tests: pd.DataFrame | None = None, ppp: pd.DataFrame | None = None,
                         changes: pd.DataFrame | None = None, longer: pd.DataFrame | None = None,
                         scale: str = "small networks trained here", ppp_scale: str = "",
                         control: str = "circular", sections: dict | None = None) -> list:
    """Chapter 5's findings, one :class:`padlib.chapters.findings.Finding` per claim.

    ``tests`` (:func:`scheme_tests`): the Padding Module and partial padding against zero padding, final test
    accuracy paired over seeds, Holm over these two primary tests, judged against the paper's number;
    ``longer`` (:func:`padlib.experiments.training.longer_training_check`) adds what training twice as long did.
    ``ppp`` (:func:`ppp_primary`) and ``changes`` (:func:`ppp_changes`): PPP's "position information forms during
    training, whatever the padding", judged on every scheme with a border (one that contradicts is enough),
    with the initial excess over the control per scheme beside it. ``scale`` / ``ppp_scale``: the evidence's scale.
    """
    sections = {**CH5_SECTIONS, **dict(sections or {})}
    out = []
    if tests is not None and len(tests):
        m = len(tests)
        family = ", ".join(tests["scheme"])
        for r in tests.itertuples():
            note = "; ".join(x for x in (_longer_note(longer, r.scheme), "not a test of the paper's own number: another "
                                         "data set, network and scale; the paper's gain is the size that would matter")
                             if x)
            det = f"{r.detectable:.4f} in accuracy" if np.isfinite(r.detectable) else "not computable with one seed"
            out.append(Finding(
                r.verdict, CLAIMS[r.scheme], CLAIMED_TEXT[r.scheme],
                f"{r.effect:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] final test accuracy minus zero padding's, "
                f"{int(r.n_seeds)} paired seeds", scale, detectable=det,
                test=(f"paired t-test against zero padding, Holm over the {m} primary tests ({family}): adjusted p "
                      f"{r.p_holm:.2g}"), note=note, section=sections["accuracy"]))
    if ppp is not None and len(ppp):
        unit = " px" if ppp["measure"].iloc[0] == "position_depth_px" else ""
        verdict = judge_all(ppp["verdict"])
        observed = (f"{ppp['measure'].iloc[0]}{unit and ' (px)'} formed in training minus present at initialisation, "
                    f"per scheme: " + ", ".join(f"{r.scheme} {r.learned_minus_initial:+.1f} [{r.lmi_ci_low:+.1f}, "
                                                 f"{r.lmi_ci_high:+.1f}]" for r in ppp.itertuples()))
        if changes is not None:
            c = changes[(changes.measure == ppp["measure"].iloc[0]) & (changes.scheme != control)]
            if len(c) and c.init_minus_control.notna().any():
                lo_s, hi_s = c.loc[c.init_minus_control.idxmin()], c.loc[c.init_minus_control.idxmax()]
                observed += (f"; present at initialisation beyond the {control} control: "
                             + ", ".join(f"{r.scheme} {r.init_minus_control:+.1f}" for r in c.itertuples())
                             + f" (from {lo_s.init_minus_control:+.1f}{unit} with {lo_s.scheme} to "
                               f"{hi_s.init_minus_control:+.1f}{unit} with {hi_s.scheme})")
        det = ppp["detectable"].max()
        notes = []
        if "padding_module" in set(ppp["scheme"]):
            notes.append("the Padding Module's change with training is confounded: its padding is itself trained, so "
                         "position it gains may come from the learned padding rather than from the features")
        out.append(Finding(
            verdict if verdict != NOT_TESTABLE else INCONCLUSIVE,
            "Position information forms during training, whatever the padding (PPP)",
            f"our reading of 'primarily a learning artefact': for every scheme with a border, the position formed "
            f"in training exceeds the position the padding gives before training, by at least "
            f"{PPP_DEPTH_OF_INTEREST:g}{unit} (declared smallest effect)", observed, ppp_scale or scale,
            detectable=(f"{det:.1f}{unit} (the largest over the schemes)" if np.isfinite(det)
                        else "not computable with one seed"),
            test=(f"per scheme a paired t-test over seeds, Holm over the {len(ppp)} schemes with a border; adjusted p "
                  + ", ".join(f"{r.scheme} {r.p_holm:.2g}" for r in ppp.itertuples())),
            note="; ".join(notes), section=sections["ppp"]))
    return out


def paired_word(low: float, high: float, mean: float) -> str:
    """Where a paired interval lies: "above 0", "below 0" or "includes 0" (computed from the interval)."""
    return _direction_word(low, high, mean, ("interval above 0", "interval below 0", "interval includes 0"))


def paired_lines(paired: pd.DataFrame, baseline: str = "zero", what: str = "") -> list[str]:
    """One printed line per scheme of :func:`padlib.experiments.training.paired_comparison`: the mean difference,
    its 95% interval, wins, the Holm-adjusted p within the table's family and where the interval lies."""
    col = f"mean_diff_vs_{baseline}"
    return [f"{r.scheme:15s} {r[col]:+.4f} (95% CI {r.ci_low:+.4f} .. {r.ci_high:+.4f}, wins {r.wins}/{r.n_seeds}"
            + (f", Holm p {r.p_holm:.2g}" if "p_holm" in r and np.isfinite(r.p_holm) else "")
            + f"){' ' + what if what else ''}: {paired_word(r.ci_low, r.ci_high, r[col])}"
            for _, r in paired.iterrows()]


def cost_benefit(cost: pd.DataFrame, paired: pd.DataFrame, baseline: str = "zero") -> pd.DataFrame:
    """Per scheme: its training-step time relative to the baseline (:func:`interleaved_step_cost`) next to what
    it buys, its paired accuracy effect with the 95% interval (``paired``: one or more paired tables)."""
    col = f"mean_diff_vs_{baseline}"
    if "ratio_to_zero" not in cost.columns:
        raise PadlibError("cost_benefit needs step times relative to zero padding (interleaved_step_cost with 'zero')")
    v = paired.set_index("scheme")
    c = cost.set_index("scheme")
    rows = [{"scheme": s, "step_ratio": float(c.loc[s, "ratio_to_zero"]), "seconds_per_step": float(c.loc[s, "seconds_per_step"]),
             "accuracy_effect": float(v.loc[s, col]), "ci_low": float(v.loc[s, "ci_low"]),
             "ci_high": float(v.loc[s, "ci_high"]), "n_seeds": int(v.loc[s, "n_seeds"])}
            for s in c.index if s in v.index]
    return pd.DataFrame(rows)


def cost_benefit_lines(table: pd.DataFrame, baseline: str = "zero") -> list[str]:
    """Printed lines of :func:`cost_benefit`."""
    return [f"{r.scheme:15s} a training step costs {r.step_ratio:.2f}x {baseline} padding's; it buys "
            f"{r.accuracy_effect:+.4f} accuracy (95% CI {r.ci_low:+.4f} .. {r.ci_high:+.4f}, {r.n_seeds} seeds): "
            f"{paired_word(r.ci_low, r.ci_high, r.accuracy_effect)}"
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

