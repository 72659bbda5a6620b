"""Chapter 2's readings: the claims, their primary tests and verdicts, and the sentences under the figures.

Each claim is judged by a primary test named in advance (:func:`method_markdown`, shown in the chapter's method
dropdown) against a claimed effect that is our reading of the words, declared here as a named constant. The
verdicts come from :func:`padlib.chapters.findings.judge` and :func:`judge_all` on intervals; secondary checks are
shown but do not vote.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..chapters.findings import NOT_TESTABLE, Finding, judge, judge_all
from ..kernels import data_free_input_means
from ..stats import detectable_effect, direction, interval_sign

ALPHA = 0.05
# Our readings of the claims' words as numbers (none of them is a number from a paper):
TV_OF_INTEREST = 0.10    # "kernel types differ": at least 10 points of the type shares move (total variation)
PREDICT_LEVEL = 0.5      # "the weights predict the PANs": precision and recall both at least one half
ARI_OF_INTEREST = 0.2    # "types written in the kernel shapes": clusters agree with the types at least this well
LEAN_OF_INTEREST = 0.05  # a lean worth the name: 5 points more of a kernel's mass on one outer column/row
LEAN_DIRECTION = {"top/left": 1, "bottom/right": -1}  # away from the padding read (re-centring the stride-2 grid)
PRIMARY_FEATURES = "profile"  # the clustering check's primary feature set (the kernel's shape)
PRIMARY_MODE = "abs"          # the asymmetry index of the primary lean tests
_ABOVE = 1e-9  # an "at least a level" claim: any positive excess over the level is the claimed direction

SECTIONS = {"types": "learned-pans-against-random-init-pans", "detector": "the-activation-based-detector",
            "clusters": "unsupervised-check", "lean": "mean-kernel-asymmetry-did-uneven-padding-leave-a-lean"}


def at_least(low: float, high: float, level: float, p: float | None = None) -> str:
    """The verdict on "the effect is at least ``level``" from its interval: :func:`judge` on the excess over the
    level, where any positive excess is the claimed direction. Supported when the interval lies above the level
    (with the adjusted ``p`` at most alpha), contradicted when it lies below (the equivalence test and the
    opposite direction coincide here), inconclusive when it straddles the level. Not testable here when there is
    no interval (a model with no PANs has no precision or recall to judge)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return NOT_TESTABLE
    return judge(low - level, high - level, _ABOVE, p=p, alpha=ALPHA)


def _p(p: float) -> str:
    return "nan" if not np.isfinite(p) else f"{p:.2g}"


def _count(n: int, word: str) -> str:
    """'1 model', '4 models'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _families(models) -> int:
    """How many architecture families the models come from (names up to their trailing version digits)."""
    return len({re.sub(r"[\d_]+$", "", str(m)) for m in models})


def _scale(models, what: str = "") -> str:
    models = list(dict.fromkeys(models))
    fam = _families(models)
    return (f"{len(models)} pretrained ImageNet model{'s' if len(models) != 1 else ''}, {fam} "
            f"famil{'ies' if fam != 1 else 'y'}" + (f"; {what}" if what else ""))


def _range(values, fmt: str = ".2f") -> str:
    v = [float(x) for x in values if np.isfinite(x)]
    if not v:
        return "nan"
    lo, hi = min(v), max(v)
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}"


def method_markdown(n_models: int | None = None) -> str:
    """The chapter's tests, fixed before the run: each claim's claimed effect (our reading, with its constant),
    its primary test and the family within which p is Holm-adjusted. Shown as a dropdown in the chapter."""
    m = f"the {n_models} models" if n_models else "the models"
    return "\n".join([
        "```{dropdown} How each claim is tested (fixed before the run)",
        "Each claim has one pre-specified primary test (two for the lean); its p is Holm-adjusted within that "
        "claim's family only, and the verdict comes from the interval and the adjusted p. The claimed effects are "
        "our readings of the words (the papers give no numbers for them). Everything else is shown, not voting.",
        "",
        f"* **Learned PAN types differ from a random network's.** Claimed: a total-variation distance of at least "
        f"{TV_OF_INTEREST:g} between the type shares of the learned PANs and of a random-init copy's padding-caused "
        f"channels, compared layer for layer. Both sets are cut at ONE threshold: the trained model's tau and "
        f"tau_corner (from its circular null) are applied to the random-init copy's scan table too, so a type "
        f"difference cannot come from cutting the random copy at its own, much lower threshold. Primary test, per "
        f"model: a permutation test stratified by layer (set labels shuffled within layers), Holm over {m}; "
        f"interval: cluster bootstrap over layers. Every model must show it.",
        f"* **The weights predict the PANs.** Claimed: the data-free detector's precision and recall both at least "
        f"{PREDICT_LEVEL:g} in every model. Primary test, per model and measure: the cluster-bootstrap interval over "
        f"layers against {PREDICT_LEVEL:g} (two-sided bootstrap p), Holm over {m} x 2 measures.",
        f"* **PAN types are written in the kernel shapes.** Claimed: an adjusted Rand index of at least "
        f"{ARI_OF_INTEREST:g} between k-means clusters of the kernels' `{PRIMARY_FEATURES}` features and our rule's "
        f"types. Primary test, per model: the cluster-bootstrap interval over layers (clusters held fixed) against "
        f"{ARI_OF_INTEREST:g}, Holm over {m}; an interval wholly below it contradicts the claim. The permutation "
        f"test against chance (types shuffled) is shown beside it.",
        f"* **Uneven padding leaves opposite, learned leans.** Claimed: stride-2 layers that read only top/left "
        f"padding lean towards bottom/right (> 0), those that read only bottom/right lean towards top/left (< 0), "
        f"beyond the same layers at random init and beyond the same models' stride-1 layers (which read every side "
        f"alike: a lean that training gives every layer cancels there); smallest lean of interest "
        f"{LEAN_OF_INTEREST:g}. Four primary tests of the `{PRIMARY_MODE}` index, per side read: a paired t-test over "
        f"the stride-2 layers, pretrained minus random init, and Welch's test of that difference against the "
        f"stride-1 layers' one, each Holm-adjusted over the 2 sides. All four must show it, so the verdict says "
        f"whether the lean survives the stride-1 control. Both indices are reported in the box line. The "
        f"`{PRIMARY_MODE}` index is primary because the re-centring reading predicts where a kernel's weight "
        f"*magnitude* sits, while the `signed` mean averages kernels of both polarities, which cancel; this choice "
        f"was made after earlier builds of this chapter had been read (they showed the `{PRIMARY_MODE}` index "
        f"resolving the lean and the `signed` one not), so it is a reasoned choice, not a blind one, and the `signed` "
        f"result stands beside it with what the same rule gives. A confound no test here removes: at a stride-2 "
        f"layer the sampled grid is shifted toward the side whose padding is read more, by half the difference of "
        f"the rows read, so the padding and the grid predict the same lean.",
        "```"])


def asymmetry_verdict(asym: pd.DataFrame, mode: str | None = None) -> str:
    """Plain-language summary of concatenated :func:`mean_kernel_asymmetry` tables (columns model, init).

    Compares the mean lean of stride-2 layers that read only top/left padding with those that read only
    bottom/right, pretrained and at random init, and counts layers whose bootstrap interval excludes 0.
    Every number in the text is computed here from ``asym``.
    """
    df = asym if mode is None or "mode" not in asym else asym[asym["mode"] == mode]
    lines = []
    leans = {}
    for init in ("pretrained", "random init"):
        for reads in ("top/left", "bottom/right"):
            g = df[(df["init"] == init) & (df["stride"] > 1) & (df["reads"] == reads)]
            if g.empty:
                continue
            lean = float((g["asym_lr"].mean() + g["asym_tb"].mean()) / 2)
            leans[(init, reads)] = lean
            n = len(g)
            pos, neg = _both_axes_lean(g)
            models = ", ".join(dict.fromkeys(g["model"]))
            lines.append(f"{init}, stride-2 layers reading {reads} padding ({n} layers; {models}): mean lean "
                         f"{lean:+.3f} (x and y averaged; > 0 = towards bottom/right); {pos} lean significantly "
                         f"towards bottom/right on both axes, {neg} towards top/left")
    even = df[(df["stride"] > 1) & (df["reads"] == "even")]
    for init in ("pretrained", "random init"):
        g = even[even["init"] == init]
        if len(g):
            lean = float((g["asym_lr"].mean() + g["asym_tb"].mean()) / 2)
            pos, neg = _both_axes_lean(g)
            lines.append(f"{init}, stride-2 layers that pad evenly at the model's input size ({len(g)} layers; "
                         f"{', '.join(dict.fromkeys(g['model']))}): mean lean {lean:+.3f}; {pos} lean significantly "
                         f"towards bottom/right on both axes, {neg} towards top/left")
    a, b = leans.get(("pretrained", "top/left")), leans.get(("pretrained", "bottom/right"))
    if a is not None and b is not None:
        opposite = a * b < 0
        lines.append(f"pretrained: the two groups lean {'in opposite directions' if opposite else 'the same way'} "
                     f"({a:+.3f} vs {b:+.3f})" + (", each away from the side whose padding it reads"
                                                  if opposite and a > 0 > b else ""))
        ra, rb = leans.get(("random init", "top/left")), leans.get(("random init", "bottom/right"))
        if ra is not None and rb is not None:
            ratio = max(abs(ra), abs(rb)) / max(min(abs(a), abs(b)), 1e-12)
            lines.append(f"random init: {ra:+.3f} vs {rb:+.3f}; the largest random-init lean is {ratio:.2f} times "
                         "the smaller pretrained lean")
    else:
        lines.append("not both padding conventions are present among the stride-2 layers: no comparison")
    return "\n".join(lines)


def agreement_verdict(agreement: pd.DataFrame, layers: pd.DataFrame) -> str:
    """Plain-language summary of :func:`detector_agreement` and :func:`disagreement_by_layer` (with ``model``).

    Ends with conclusions worded by fixed rules: the measured input means are said to help when they raise
    recall by more than 0.1 in every model; the dominant gap is the largest mean absolute one. (Whether the
    weights predict the PANs is the findings box's question, answered with intervals by
    :func:`chapter_findings_box`.) Every number is computed here from the two tables.
    """
    lines = []
    for name, g in agreement.groupby("model", sort=False):
        d = g.set_index("predictor")
        lines.append(f"{name}: data-free precision {d.loc['data-free', 'precision']:.2f}, recall "
                     f"{d.loc['data-free', 'recall']:.2f}, AP {d.loc['data-free', 'average_precision']:.2f}; with "
                     f"measured input means precision {d.loc['measured means', 'precision']:.2f}, recall "
                     f"{d.loc['measured means', 'recall']:.2f}, AP {d.loc['measured means', 'average_precision']:.2f}")
        if "recall_corner_only" in d:
            r = d.loc["data-free"]
            lines.append(f"  {int(r['corner_only_pans'])} of {int(r['pans'])} PANs are corner-only; data-free recall on "
                         f"side PANs {r['recall_sides']:.2f}, on corner-only PANs {r['recall_corner_only']:.2f} "
                         f"(a sides-only predictor: recall {r['recall_sides_only_rule']:.2f}, precision "
                         f"{r['precision_sides_only_rule']:.2f})")
    df = agreement[agreement["predictor"] == "data-free"]
    mm = agreement[agreement["predictor"] == "measured means"]
    if len(df) and len(mm) == len(df):
        gain = mm["recall"].to_numpy() - df["recall"].to_numpy()
        lines.append(f"conclusion: measured input means change recall by {gain.min():+.2f} to {gain.max():+.2f}: "
                     + ("estimating the input means and scale from BatchNorm statistics costs recall"
                        if (gain > 0.1).all() else "the misses are not mainly due to estimating the input "
                        "means and scale from BatchNorm statistics"))
    gaps = layers[["gap_estimate", "gap_position", "gap_inherited"]].mean()
    lines.append("mean absolute gaps over all layers (interior-std units): " +
                 ", ".join(f"{k.replace('gap_', '')} {v:.2f}" for k, v in gaps.items()) +
                 f"; the largest is '{gaps.idxmax().replace('gap_', '')}'" +
                 (f"; mean |zp - z| {layers['gap_total'].mean():.2f} (at most their sum, not equal to it)"
                  if "gap_total" in layers else ""))
    if "signed_total" in layers:
        sg = layers[["signed_estimate", "signed_position", "signed_inherited", "signed_total"]].mean()
        lines.append(f"mean signed gaps (these add up exactly): estimate {sg['signed_estimate']:+.3f} + position "
                     f"{sg['signed_position']:+.3f} + inherited {sg['signed_inherited']:+.3f} = "
                     f"{sg['signed_estimate'] + sg['signed_position'] + sg['signed_inherited']:+.3f} "
                     f"(mean zp - z: {sg['signed_total']:+.3f})")
    meaning = {"gap_inherited": "border contrast that the layer's own padding did not cause (handed down from "
                                "earlier layers, or content), which no single-layer formula can see",
               "gap_position": "the layer's input near the border differing from its mean (earlier layers' "
                               "padding responses passed through BatchNorm and the non-linearity)",
               "gap_estimate": "input means and scale estimated from BatchNorm statistics instead of measured"}
    lines.append(f"conclusion: the largest part of the disagreement is '{gaps.idxmax().replace('gap_', '')}': "
                 f"{meaning[gaps.idxmax()]}")
    deep = layers["depth"] >= layers.groupby("model")["depth"].transform("median")
    for col in ("gap_inherited", "gap_position", "gap_estimate"):
        lines.append(f"{col.replace('gap_', '')}: shallow half {layers.loc[~deep, col].mean():.2f}, "
                     f"deep half {layers.loc[deep, col].mean():.2f}")
    shallow = layers.loc[~deep, ["gap_estimate", "gap_position", "gap_inherited"]].mean()
    if shallow.notna().any():
        top = shallow.idxmax()
        lines.append(f"conclusion: in the shallow half the largest gap is '{top.replace('gap_', '')}' "
                     f"({shallow[top]:.2f}); " + ("the formula's own assumptions (input means, flat input up to the "
                                                  "border) fail most where little can be inherited"
                                                  if top != "gap_inherited" else
                                                  "even there most of the disagreement is inherited, not a failure "
                                                  "of the formula's assumptions"))
    rec = layers.groupby(deep)["recall"].mean()
    lines.append(f"recall of the data-free detector: shallow half {rec.get(False, np.nan):.2f}, deep half "
                 f"{rec.get(True, np.nan):.2f}")
    if "mean_ratio" in layers:
        zero = (layers["mean_zero_by_construction"].fillna(False).astype(bool) if "mean_zero_by_construction"
                in layers else pd.Series(False, index=layers.index))
        bad = layers[((layers["mean_ratio"] > 2) | (layers["mean_ratio"] < 0.5)) & ~zero]
        lines.append(f"layers where the BatchNorm-derived input means are off by more than 2x (median ratio): "
                     f"{len(bad)}" + (": " + ", ".join(f"{r.model} {r.layer} ({r.mean_ratio:.1f}x)"
                                                      for r in bad.itertuples()) if len(bad) else ""))
        if zero.any():
            lines.append("layers whose data-free input mean is 0 by construction (no data-free prediction possible): "
                         + ", ".join(f"{r.model} {r.layer}" for r in layers[zero].itertuples()))
    return "\n".join(lines)


def _group_lean(g: pd.DataFrame) -> float:
    """One number per group of layers: the mean of the left-right and top-bottom leans (> 0: bottom/right)."""
    return float((g["asym_lr"].mean() + g["asym_tb"].mean()) / 2) if len(g) else np.nan


def _significant(g: pd.DataFrame) -> np.ndarray:
    """Layers whose bootstrap interval excludes 0 on at least one axis."""
    if "asym_lr_lo" not in g:
        return np.zeros(len(g), bool)
    lr, tb = _axis_signs(g)
    return (lr != 0) | (tb != 0)


def _axis_signs(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, the direction (:func:`padlib.stats.interval_sign`) of its left/right and top/bottom lean."""
    return (interval_sign(g["asym_lr_lo"], g["asym_lr_hi"], g["asym_lr"]),
            interval_sign(g["asym_tb_lo"], g["asym_tb_hi"], g["asym_tb"]))


def _both_axes_lean(g: pd.DataFrame) -> tuple[int, int]:
    """Layers leaning significantly towards bottom/right on both axes, and towards top/left on both."""
    if "asym_lr_lo" not in g:
        return 0, 0
    lr, tb = _axis_signs(g)
    return int(((lr > 0) & (tb > 0)).sum()), int(((lr < 0) & (tb < 0)).sum())


def stem_findings(models: dict, merged: dict, measured_input_means: dict | None = None) -> pd.DataFrame:
    """Per model, what the data-free detector can say about the stem (the conv reading the image).

    The stem's data-free input mean is the ImageNet mean after the model's own normalisation: exactly 0
    when the model normalises with the ImageNet mean itself (then the predicted border shift is 0 and no
    stem PAN can be predicted from the weights), small otherwise. Short columns, to fit the page, indexed by
    model: stem (the layer), the largest |mean| over input channels, data-free ("0 (normalised)" where it is 0 by
    construction) and measured (``measured_input_means``: {model: {layer: tensor}}), to 3 decimals, PANs measured
    in the stem and predicted data-free.
    """
    rows = []
    for name, model in models.items():
        means = data_free_input_means(model).set_index("layer")
        stems = means.index[means["source"] == "image"]
        for layer in stems:
            mu = np.abs(np.asarray(means.loc[layer, "mean"], float)).max()
            m = merged[name][merged[name]["layer"] == layer]
            meas = np.nan
            if measured_input_means and layer in measured_input_means.get(name, {}):
                meas = float(np.abs(np.asarray(measured_input_means[name][layer], float)).max())
            zero = mu < 1e-9
            rows.append({"model": name, "stem": layer,
                         "data-free |mean|": "0 (normalised)" if zero else f"{mu:.3f}",
                         "measured |mean|": f"{meas:.3f}", "PANs": int(m["is_pan"].sum()),
                         "predicted": int(m["pred_is_pan"].sum())})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame(rows)



def asymmetry_findings(asym: pd.DataFrame) -> pd.DataFrame:
    """Mind the Pad's corollaries, secondary to the primary lean tests (:func:`padlib.experiments.ch2_kernels.
    lean_tests`): shown, not voting. Per index mode: ``even leans less``: per model with evenly padded stride-2
    layers, their lean is smaller in magnitude than that of the same model's unevenly padded stride-2 layers
    ("mostly disappears at the even size"); ``at down-sampling``: per model, fewer than half of the stride-1
    layers lean significantly (interval excluding 0 on at least one axis) and a larger share of the stride-2
    layers does (our strict reading of "around down-sampling layers"; the random-init count is shown as the
    noise level). ``consistent`` is True / False. Every number is computed here."""
    rows = []
    modes = list(dict.fromkeys(asym["mode"])) if "mode" in asym else [None]
    for mode in modes:
        df = asym if mode is None else asym[asym["mode"] == mode]
        pre, rnd = df[df["init"] == "pretrained"], df[df["init"] == "random init"]
        for name, g in pre.groupby("model", sort=False):
            even, uneven = g[(g["stride"] > 1) & (g["reads"] == "even")], g[(g["stride"] > 1) & (g["reads"] != "even")]
            if len(even) and len(uneven):
                e, u = _group_lean(even), _group_lean(uneven)
                rows.append({"mode": mode, "check": "even leans less", "model": name,
                             "measured": f"{len(even)} even stride-2 layers {e:+.3f}, {len(uneven)} uneven {u:+.3f}",
                             "consistent": bool(abs(e) < abs(u))})
        for name, g in pre.groupby("model", sort=False):
            r = rnd[rnd["model"] == name]
            one, two, r1 = g[g["stride"] == 1], g[g["stride"] > 1], r[r["stride"] == 1]
            if not len(one) or not len(two):
                continue
            k1, k2, kr = int(_significant(one).sum()), int(_significant(two).sum()), int(_significant(r1).sum())
            rows.append({"mode": mode, "check": "at down-sampling", "model": name,
                         "measured": f"stride-1: {k1} of {len(one)} layers lean significantly (mean lean "
                                     f"{_group_lean(one):+.3f}; random init {kr} of {len(r1)}); stride-2: {k2} of "
                                     f"{len(two)} ({_group_lean(two):+.3f})",
                         "consistent": bool(k1 < len(one) / 2 and k2 / len(two) > k1 / len(one))})
    return pd.DataFrame(rows, columns=["mode", "check", "model", "measured", "consistent"])


def lean_lines(leans: pd.DataFrame) -> list[str]:
    """One line per index mode and side read from :func:`padlib.experiments.ch2_kernels.lean_tests`: the
    pretrained-minus-random-init lean with its interval, its direction (:func:`padlib.stats.direction`) against
    the predicted one, and the Holm-adjusted p."""
    out = []
    for r in leans.itertuples():
        want = "down" if LEAN_DIRECTION.get(r.reads, 1) < 0 else "up"
        got = direction(r.low, r.high, r.diff)
        rel = ("the predicted direction" if got == want else "the opposite of the predicted direction"
               if got in ("up", "down") else "no resolved direction")
        out.append(f"{r.mode} index, stride-2 layers reading {r.reads} padding ({r.layers} layers; {r.models}): "
                   f"pretrained {r.pretrained:+.3f}, random init {r.random_init:+.3f}; difference {r.diff:+.3f} "
                   f"[{r.low:+.3f}, {r.high:+.3f}], Holm-adjusted p {_p(r.p_holm)}: {rel} "
                   f"({'> 0' if want == 'up' else '< 0'} predicted)")
    return out


def asymmetry_conclusion(findings: pd.DataFrame, leans: pd.DataFrame | None = None) -> str:
    """Per mode: the primary lean tests (:func:`lean_lines`) and the secondary checks of :func:`asymmetry_findings`
    (shown, not voting), counted; then whether the two indices resolve the predicted directions on both sides."""
    lines = []
    if leans is not None and len(leans):
        lines += lean_lines(leans)
    for mode, g in findings.groupby("mode", sort=False, dropna=False):
        ok, bad = g[g["consistent"] == True], g[g["consistent"] == False]  # noqa: E712 (None is neither)
        fmt = lambda d: ", ".join(f"{r.check} ({r.model})" for r in d.itertuples()) or "none"  # noqa: E731
        lines.append(f"{mode} index, secondary checks (shown, not voting): {len(ok)} of {len(ok) + len(bad)} "
                     f"consistent with Mind the Pad ({fmt(ok)}); not consistent: {fmt(bad)}")
    if leans is not None and len(leans):
        both = {}
        for mode, g in leans.groupby("mode", sort=False):
            both[mode] = len(g) == len(LEAN_DIRECTION) and all(
                int(interval_sign(r.low, r.high, r.diff)) == LEAN_DIRECTION[r.reads] for r in g.itertuples())
        if both.get("abs") is not None and both.get("signed") is not None:
            say = lambda b: "resolves" if b else "does not resolve"  # noqa: E731
            lines.append(f"the abs index {say(both['abs'])} the predicted direction on both sides, the signed index "
                         f"{say(both['signed'])} it" + (": the lean is in where the weight magnitude sits, not in the "
                                                        "kernels' net (signed) response"
                                                        if both["abs"] and not both["signed"] else ""))
    return "\n".join(lines)


def taxonomy_findings(cluster_checks: dict, aris: pd.DataFrame | None = None, alpha: float = ALPHA) -> str:
    """Sentences on the unsupervised check: {(model, features): (clustered, summary)} from
    :func:`taxonomy_clusters`. Per feature set: the ARI range over the entries, how many beat the permutation
    null at ``alpha`` and how many reach :data:`ARI_OF_INTEREST`; with ``aris`` (:func:`padlib.experiments.
    ch2_kernels.ari_intervals`), how many intervals lie wholly below it and how many above."""
    lines = []
    feats = list(dict.fromkeys(f for _, f in cluster_checks))
    for f in feats:
        s = {name: v[1] for (name, ff), v in cluster_checks.items() if ff == f}
        ari = np.array([v["ari"] for v in s.values()])
        coarse = np.array([v.get("ari_coarse", np.nan) for v in s.values()])
        sig = sum(v["p_value"] < alpha for v in s.values())
        reach = int((ari >= ARI_OF_INTEREST).sum())
        lines.append(f"{f} features: ARI {ari.min():.2f} to {ari.max():.2f} over {len(ari)} sets ({', '.join(s)}); "
                     f"above the permutation null (p < {alpha:g}) in {sig} of {len(ari)}; at least the ARI of "
                     f"interest ({ARI_OF_INTEREST:g}) in {reach} of {len(ari)}"
                     + (f"; coarse ARI {np.nanmin(coarse):.2f} to {np.nanmax(coarse):.2f}"
                        if np.isfinite(coarse).any() else ""))
        if aris is not None and len(aris[aris.features == f]):
            a = aris[aris.features == f]
            below, above = int((a.high < ARI_OF_INTEREST).sum()), int((a.low > ARI_OF_INTEREST).sum())
            lines.append(f"  per model, the layer-bootstrap interval of the ARI lies wholly below {ARI_OF_INTEREST:g} "
                         f"in {below} of {len(a)} and wholly above it in {above} of {len(a)}")
    return "\n".join(lines)


def type_difference_findings(diff: pd.DataFrame) -> list[str]:
    """One sentence per model on whether the learned PANs' kernel types differ from the comparison set's, by
    the layer-swap permutation test (Holm-adjusted) of :func:`padlib.experiments.ch2_kernels.type_difference`."""
    out = []
    for _, r in diff.iterrows():
        if not np.isfinite(r.tv_distance):
            out.append(f"{r.model}: too few PANs in one of the sets to compare ({r.n_a} vs {r.n_b}).")
            continue
        alpha = diff.attrs.get("alpha", ALPHA)
        word = "differ" if r.p_holm < alpha else "do not differ detectably"
        moves = f"; largest rise {r.rises}, largest fall {r.falls}" if r.p_holm < alpha else ""
        out.append(f"{r.model}: the types of its {r.n_a} {r.set_a} PANs {word} from those of the {r.n_b} "
                   f"{r.set_b} channels (layer-matched total-variation distance {r.tv_distance:.2f} [{r.tv_low:.2f}, "
                   f"{r.tv_high:.2f}], Holm-adjusted p {_p(r.p_holm)} at alpha {alpha:g}){moves}.")
    return out


def chapter_findings(agreement: pd.DataFrame, layers: pd.DataFrame, cluster_checks: dict,
                     asym_findings: pd.DataFrame, aris: pd.DataFrame | None = None,
                     leans: pd.DataFrame | None = None) -> str:
    """The chapter's secondary sentences in one place (the findings box has the verdicts): the 'conclusion'
    lines of :func:`agreement_verdict`, :func:`taxonomy_findings` and :func:`asymmetry_conclusion`."""
    detector = [ln for ln in agreement_verdict(agreement, layers).splitlines() if ln.startswith("conclusion")]
    return "\n".join(["data-free detector:"] + [f"  {ln}" for ln in detector] + ["taxonomy:"] +
                      [f"  {ln.strip()}" for ln in taxonomy_findings(cluster_checks, aris).splitlines()] +
                      ["mean-kernel asymmetry:"] +
                      [f"  {ln}" for ln in asymmetry_conclusion(asym_findings, leans).splitlines()])


def types_finding(type_diff: pd.DataFrame) -> Finding | None:
    """Learned PANs' types against a random-init copy's padding-caused channels, layer for layer: per model, the
    layer-stratified permutation test (Holm over the models) and the layer-bootstrap interval of the layer-matched
    total-variation distance, judged against :data:`TV_OF_INTEREST`; every model must show it."""
    from ..experiments.ch2_kernels import PAN_SETS

    d = type_diff[type_diff.set_b == PAN_SETS[2]].dropna(subset=["tv_distance"])
    if not len(d):
        return None
    verdicts = [judge(r.excess_low, r.excess_high, TV_OF_INTEREST, p=r.p_holm, alpha=ALPHA) for r in d.itertuples()]
    m = len(d)
    note = "largest moves: " + "; ".join(f"{r.model} {r.rises}, {r.falls}" for r in d.itertuples())
    if "coverage" in d:
        note = (f"the layers compared hold {_range(100 * d.coverage, '.0f')}% of the learned PANs; " + note)
    return Finding(
        judge_all(verdicts), "Learned PANs' kernel types differ from a random network's border responses",
        f"a total-variation distance at least {TV_OF_INTEREST:g} beyond chance between the type shares, layer for "
        "layer, in every model, both sets typed at the trained model's threshold (our reading of 'differ'; 0 same, "
        "1 disjoint; chance: the mean distance with the set labels shuffled within layers; the interval runs from "
        "the chance-corrected lower bound to the uncorrected upper one)",
        "layer-matched total-variation distance beyond chance " + "; ".join(
            f"{r.model} {r.tv_excess:+.2f} [{r.excess_low:+.2f}, {r.excess_high:+.2f}] ({r.tv_distance:.2f} "
            f"observed, {r.tv_chance:.2f} by chance)" for r in d.itertuples()),
        _scale(d.model, f"{int(d.n_a.sum())} learned PANs against {int(d.n_b.sum())} random-init channels at the "
                        "trained tau, "
                        f"{_range(d.layers, '.0f')} layers per model with both"),
        detectable="total-variation distance " + ", ".join(
            f"{detectable_effect(r.excess_low, r.excess_high, alpha=ALPHA / m):.2f}" for r in d.itertuples())
        + f" (at the first Holm step, alpha {ALPHA:g}/{m})",
        test=f"permutation test stratified by layer ({type_diff.attrs.get('n_perm', 'n')} permutations of the set "
             f"labels within layers), Holm-adjusted over {_count(m, 'model')}: p " + ", ".join(_p(p) for p in d.p_holm),
        note=note, section=SECTIONS["types"])


def detector_finding(detector: pd.DataFrame) -> Finding | None:
    """The data-free detector's precision and recall per model (layer-bootstrap intervals) against
    :data:`PREDICT_LEVEL` (:func:`at_least`, Holm over every model and measure); every one must reach it."""
    if detector is None or not len(detector):
        return None
    verdicts = [at_least(r.low, r.high, PREDICT_LEVEL, r.p_holm) for r in detector.itertuples()]
    verdict = judge_all(verdicts)
    m = len(detector)
    wide = {(r.model, r.measure): r for r in detector.itertuples()}
    models = list(dict.fromkeys(detector.model))
    fmt = lambda r: (f"{r.value:.2f} [{r.low:.2f}, {r.high:.2f}]" if np.isfinite(r.low) and np.isfinite(r.high)  # noqa: E731
                     else "not defined (no interval: no PANs or none flagged)")
    return Finding(
        verdict, "The weights alone predict which filters are PANs (our data-free formula)",
        f"precision and recall both at least {PREDICT_LEVEL:g} in every model (our reading of 'predict': right at "
        "least half the times it flags a filter, and finds at least half the PANs)",
        "; ".join(f"{mo} precision {fmt(wide[mo, 'precision'])}, recall {fmt(wide[mo, 'recall'])}" for mo in models),
        _scale(models, f"{int(detector.drop_duplicates('model').pans.sum())} PANs in "
                       f"{int(detector.drop_duplicates('model').layers.sum())} layers"),
        detectable=f"a distance from {PREDICT_LEVEL:g} of {_range([detectable_effect(r.low, r.high, alpha=ALPHA / m) for r in detector.itertuples()])} "
                   f"(at the first Holm step, alpha {ALPHA:g}/{m})",
        test=f"cluster bootstrap over layers ({detector.attrs.get('n_boot', 'n')} resamples) against "
             f"{PREDICT_LEVEL:g}, Holm-adjusted over {_count(m, 'test')}: p (precision / recall) "
             + ", ".join(f"{mo} {_p(wide[mo, 'precision'].p_holm)} / {_p(wide[mo, 'recall'].p_holm)}" for mo in models),
        note=f"{int((detector.low > PREDICT_LEVEL).sum())} of {m} intervals lie wholly above {PREDICT_LEVEL:g}, "
             f"{int((detector.high < PREDICT_LEVEL).sum())} wholly below it",
        needed=("PANs in at least one model (the scan flagged none, so there is nothing for the formula to predict)"
                if verdict == NOT_TESTABLE else ""),
        section=SECTIONS["detector"])


def clusters_finding(aris: pd.DataFrame) -> Finding | None:
    """Rule types against k-means clusters of the kernels (:data:`PRIMARY_FEATURES`): per model, the ARI's
    layer-bootstrap interval against :data:`ARI_OF_INTEREST` (:func:`at_least`, Holm over the models); the
    permutation test against chance is shown beside it."""
    if aris is None or not len(aris):
        return None
    a = aris[aris.features == PRIMARY_FEATURES]
    if not len(a):
        return None
    verdicts = [at_least(r.low, r.high, ARI_OF_INTEREST, r.p_holm) for r in a.itertuples()]
    m = len(a)
    chance = int((a.p_perm_holm <= ALPHA).sum())
    return Finding(
        judge_all(verdicts), "PAN types (our rule) are written in the kernel shapes",
        f"an adjusted Rand index of at least {ARI_OF_INTEREST:g} between k-means clusters of the kernels' "
        f"{PRIMARY_FEATURES} features and the rule types, in every model (our reading of 'written in the shapes'; "
        "0 chance, 1 identical)",
        "adjusted Rand index " + "; ".join(f"{r.model} {r.ari:.2f} [{r.low:.2f}, {r.high:.2f}]" for r in a.itertuples()),
        _scale(a.model, f"{int(a.n.sum())} PANs in {int(a.layers.sum())} layers"),
        detectable=f"a distance from {ARI_OF_INTEREST:g} of {_range([detectable_effect(r.low, r.high, alpha=ALPHA / m) for r in a.itertuples()])} "
                   f"(at the first Holm step, alpha {ALPHA:g}/{m})",
        test=f"cluster bootstrap over layers ({aris.attrs.get('n_boot', 'n')} resamples, clusters held fixed) "
             f"against {ARI_OF_INTEREST:g}, Holm-adjusted over {_count(m, 'model')}: p " + ", ".join(_p(p) for p in a.p_holm),
        note=f"above chance (permutation test, types shuffled, Holm-adjusted p <= {ALPHA:g}) in {chance} of {_count(m, 'model')}: p " + ", ".join(_p(p) for p in a.p_perm_holm),
        section=SECTIONS["clusters"])


def _lean_verdicts(rows: pd.DataFrame, low: str = "low", high: str = "high") -> list[str]:
    """:func:`judge` per side read: the interval against :data:`LEAN_OF_INTEREST` in the direction of
    :data:`LEAN_DIRECTION`, with the Holm-adjusted p."""
    return [judge(getattr(r, low), getattr(r, high), LEAN_DIRECTION[r.reads] * LEAN_OF_INTEREST, p=r.p_holm,
                  alpha=ALPHA) if np.isfinite(getattr(r, low)) else "not testable here" for r in rows.itertuples()]


def _lean_text(leans: pd.DataFrame, controls: pd.DataFrame | None, mode: str) -> str:
    g = leans[leans["mode"] == mode]
    c = controls[controls["mode"] == mode].set_index("reads") if controls is not None and len(controls) else None
    parts = []
    for r in g.itertuples():
        text = f"{r.reads}-reading {r.diff:+.3f} [{r.low:+.3f}, {r.high:+.3f}] ({r.layers} layers)"
        if c is not None and r.reads in c.index:
            k = c.loc[r.reads]
            text += f", beyond the stride-1 layers {k.excess:+.3f} [{k.low:+.3f}, {k.high:+.3f}]"
        parts.append(text)
    return f"{mode} index: " + "; ".join(parts)


def lean_finding(leans: pd.DataFrame, corollaries: pd.DataFrame | None = None,
                 controls: pd.DataFrame | None = None, grid: pd.DataFrame | None = None) -> Finding | None:
    """Mind the Pad's lean. Primary, index :data:`PRIMARY_MODE`, per side read: (1) the stride-2 lean pretrained
    minus random init (:func:`padlib.experiments.ch2_kernels.lean_tests`) and, with ``controls``, (2) the same beyond
    the same models' stride-1 layers (:func:`padlib.experiments.ch2_kernels.stride1_control`): each judged against
    :data:`LEAN_OF_INTEREST` in the direction of :data:`LEAN_DIRECTION` with its Holm-adjusted p; every one must show
    it, so the verdict says whether the lean survives the stride-1 control. The other index is reported beside it
    with what the same rule would give (not voting). ``grid`` (:func:`padlib.experiments.ch2_kernels.grid_offsets`):
    the sampling-grid confound, counted in the note. ``corollaries`` (:func:`asymmetry_findings`): counted in the
    note, not voting."""
    if leans is None or not len(leans):
        return None
    g = leans[leans["mode"] == PRIMARY_MODE]
    if not len(g):
        return None
    verdicts = _lean_verdicts(g)
    c = None
    if controls is not None and len(controls):
        c = controls[controls["mode"] == PRIMARY_MODE]
        verdicts += _lean_verdicts(c)
    missing = [s for s in LEAN_DIRECTION if s not in set(g.reads)]
    m = len(g)
    notes = []
    others = [mo for mo in dict.fromkeys(leans["mode"]) if mo != PRIMARY_MODE]
    for mo in others:
        o = leans[leans["mode"] == mo]
        ov = _lean_verdicts(o)
        if controls is not None and len(controls):
            ov += _lean_verdicts(controls[controls["mode"] == mo])
        notes.append(f"the {mo} index (secondary, not voting) would be {judge_all(ov)} by the same rule")
    if grid is not None and len(grid):
        uneven = grid[grid["reads"] != "even"]
        notes.append(f"in {int(uneven.toward_read.sum())} of {len(uneven)} unevenly padded stride-2 layers the sampled "
                     "grid is shifted toward the padding read, by half the difference of the rows read (by "
                     "construction): a lean that re-centres the grid and one that answers the padding point the same "
                     "way, and no layer here separates them")
    if corollaries is not None and len(corollaries):
        cc = corollaries[corollaries["mode"] == PRIMARY_MODE].dropna(subset=["consistent"])
        notes.append(f"secondary checks (shown, not voting): {int(cc.consistent.astype(bool).sum())} of {len(cc)} "
                     f"corollaries consistent ({PRIMARY_MODE} index)")
    models = [mo.strip() for ms in g.models for mo in ms.split(",")]
    intervals = [(r.low, r.high) for r in g.itertuples()] + ([(r.low, r.high) for r in c.itertuples()]
                                                             if c is not None else [])
    det = [detectable_effect(lo, hi, alpha=ALPHA / m) for lo, hi in intervals]
    observed = "; ".join(_lean_text(leans, controls, mo) for mo in [PRIMARY_MODE] + others)
    return Finding(
        judge_all(verdicts) if not missing else "not testable here",
        "Stride-2 layers that read one side's padding lean away from it, beyond random init and beyond their "
        "models' stride-1 layers (Mind the Pad)",
        "stride-2 layers reading only top/left padding lean towards bottom/right (> 0), those reading only "
        "bottom/right towards top/left (< 0), pretrained minus random init and beyond the same models' stride-1 "
        f"layers; smallest lean of interest {LEAN_OF_INTEREST:g} (our reading: the paper gives no size or direction)",
        "pretrained minus random-init lean, " + observed,
        _scale(models, f"{int(g.layers.sum())} stride-2 layers, one input size each"),
        detectable=f"a lean of {_range(det, '.3f')} (at the first Holm step, alpha {ALPHA:g}/{m})",
        needed=("stride-2 layers reading only " + " and only ".join(missing) + " padding" if missing else ""),
        test=(f"{PRIMARY_MODE} index, per side read: paired t-test over the stride-2 layers, pretrained minus random "
              f"init" + (", and Welch's test of that against the stride-1 layers' difference" if c is not None else "")
              + f"; Holm over the {_count(m, 'side')}" + (" within each" if c is not None else "")
              + "; all must show it: p " + ", ".join(
                  f"{r.reads} {_p(r.p_holm)}" for r in g.itertuples())
              + ("; beyond stride 1 " + ", ".join(f"{r.reads} {_p(r.p_holm)}" for r in c.itertuples())
                 if c is not None else "")),
        note="; ".join(notes), section=SECTIONS["lean"])


def chapter_findings_box(type_diff: pd.DataFrame | None = None, detector: pd.DataFrame | None = None,
                         aris: pd.DataFrame | None = None, leans: pd.DataFrame | None = None,
                         corollaries: pd.DataFrame | None = None, controls: pd.DataFrame | None = None,
                         grid: pd.DataFrame | None = None) -> list:
    """Chapter 2's findings, one :class:`padlib.chapters.findings.Finding` per claim, each from its primary test:
    learned PAN types against a random network's (:func:`types_finding`), the data-free detector
    (:func:`detector_finding`), the rule types in the kernels (:func:`clusters_finding`), Mind the Pad's lean
    (:func:`lean_finding`). A claim whose table is not given is left out (a section shows its own line)."""
    found = [types_finding(type_diff) if type_diff is not None else None, detector_finding(detector),
             clusters_finding(aris), lean_finding(leans, corollaries, controls, grid)]
    return [f for f in found if f is not None]


def threshold_sentence(thresholds: pd.DataFrame) -> str:
    """Which threshold types the random-init copies, in one sentence (every number from
    :func:`padlib.experiments.ch2_kernels.threshold_table`)."""
    t = thresholds
    return (f"Both sets are typed at one threshold, the trained model's: tau {_range(t.tau_trained)} (corners "
            f"{_range(t.tau_corner_trained)}) applied to each random-init copy's scan table. At that threshold the "
            f"copies have {_range(t.caused_at_trained_tau, '.0f')} padding-caused channels ("
            f"{_range(100 * t.caused_at_trained_tau / t.filters, '.1f')}% of their padded filters); their own circular "
            f"nulls would set tau at {_range(t.tau_copy)} and flag {_range(t.caused_at_copy_tau, '.0f')} ("
            f"{_range(100 * t.caused_at_copy_tau / t.filters, '.1f')}%).")
