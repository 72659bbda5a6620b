"""Chapter 2's readings: verdicts and findings text for the kernel taxonomy and mean-kernel asymmetry."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..chapters.findings import Finding, verdict_of
from ..experiments.ch2_kernels import PAN_SETS
from ..kernels import data_free_input_means
from ..stats import interval_sign


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

    Ends with conclusions worded by fixed rules: a detector is called precise when its precision is >= 0.5
    in every model and said to miss most PANs when its recall is < 0.5 in every model; the measured input
    means are said to help when they raise recall by more than 0.1 in every model; the dominant gap is the
    largest mean absolute one. Every number is computed here from the two tables.
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
    prec, rec = df["precision"], df["recall"]
    if len(df):
        kind = ("right at least half of the time it flags a filter (precision >= 0.5 in every model)"
                if (prec >= 0.5).all() else "wrong more often than right in some models (precision < 0.5)")
        reach = ("misses most PANs (recall < 0.5 in every model)" if (rec < 0.5).all() else
                 "finds most PANs (recall >= 0.5 in every model)" if (rec >= 0.5).all() else
                 "finds most PANs in some models and misses most in others")
        conj = "but" if (prec >= 0.5).all() and (rec < 0.5).all() else "and"
        lines.append(f"conclusion: the data-free detector, precision {prec.min():.2f}-{prec.max():.2f} and recall "
                     f"{rec.min():.2f}-{rec.max():.2f} over {len(df)} models, is {kind} {conj} {reach}")
        if len(mm) == len(df):
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


def asymmetry_findings(asym: pd.DataFrame) -> pd.DataFrame:
    """Mind the Pad's prediction, broken into checks, each answered from :func:`asymmetry_with_control` tables.

    Per index mode, four checks (our reading of "uneven padding leads to asymmetric learned weights ...
    around down-sampling layers ... mostly disappears at the even size"; Alsallakh et al., ICLR 2021, Fig. 6b):
    ``opposite``: stride-2 layers reading top/left padding and those reading bottom/right lean with opposite
    signs (pretrained); ``learned``: the smaller of those two pretrained leans exceeds the larger random-init
    lean of the same groups (else noise of the same size is not excluded); ``even leans less``: per model
    with evenly padded stride-2 layers, their lean is smaller in magnitude than that of the same model's
    unevenly padded stride-2 layers; ``at down-sampling``: per model, fewer than half of the stride-1
    layers lean significantly (interval excluding 0 on at least one axis) and a larger share of the
    stride-2 layers does: if most stride-1 layers lean, the asymmetry is not confined to the down-sampling
    layers, and if stride-2 layers lean no more often, it is not concentrated there (our strict reading of
    "around down-sampling layers"; the random-init count is shown as the noise level).
    ``consistent`` is True / False, or None when the groups needed are absent. Every number is computed here.
    """
    rows = []
    modes = list(dict.fromkeys(asym["mode"])) if "mode" in asym else [None]
    for mode in modes:
        df = asym if mode is None else asym[asym["mode"] == mode]
        pre, rnd = df[df["init"] == "pretrained"], df[df["init"] == "random init"]
        s2 = lambda d, reads: d[(d["stride"] > 1) & (d["reads"] == reads)]  # noqa: E731
        a, b = _group_lean(s2(pre, "top/left")), _group_lean(s2(pre, "bottom/right"))
        ra, rb = _group_lean(s2(rnd, "top/left")), _group_lean(s2(rnd, "bottom/right"))
        both = np.isfinite(a) and np.isfinite(b)
        rows.append({"mode": mode, "check": "opposite", "model": "all",
                     "measured": f"top/left-reading stride-2 layers {a:+.3f}, bottom/right-reading {b:+.3f}",
                     "consistent": bool(a * b < 0) if both else None})
        if both and np.isfinite(ra) and np.isfinite(rb):
            small, big = min(abs(a), abs(b)), max(abs(ra), abs(rb))
            rows.append({"mode": mode, "check": "learned", "model": "all",
                         "measured": f"smaller pretrained |lean| {small:.3f}, larger random-init |lean| {big:.3f} "
                                     f"(random init = {big / max(small, 1e-12):.2f}x pretrained)",
                         "consistent": bool(small > big)})
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


def asymmetry_conclusion(findings: pd.DataFrame) -> str:
    """One line per mode from :func:`asymmetry_findings`: which checks hold, which count against the prediction."""
    lines = []
    for mode, g in findings.groupby("mode", sort=False, dropna=False):
        ok = g[g["consistent"] == True]  # noqa: E712 (None is neither)
        bad = g[g["consistent"] == False]  # noqa: E712
        fmt = lambda d: ", ".join(f"{r.check}" + (f" ({r.model})" if r.model != "all" else "")  # noqa: E731
                                  for r in d.itertuples()) or "none"
        core = g[g["check"].isin(["opposite", "learned"])]
        core_ok = len(core) == 2 and bool((core["consistent"] == True).all())  # noqa: E712
        verdict = ("the measurements support the prediction" if len(bad) == 0 and core_ok else
                   "the core prediction (opposite and learned leans) holds, but not every corollary" if core_ok else
                   "the core prediction (opposite and learned leans) fails")
        lines.append(f"{mode} index: {len(ok)} of {len(ok) + len(bad)} checks consistent with Mind the Pad "
                     f"({fmt(ok)}); against it: {fmt(bad)}; {verdict}")
    core = {m: bool(((g["check"].isin(["opposite", "learned"])) & (g["consistent"] == True)).sum() == 2)  # noqa: E712
            for m, g in findings.groupby("mode", sort=False)}
    if core.get("abs") and core.get("signed") is False:
        lines.append("the abs index leans opposite ways and beyond random init, the signed index does not: the lean "
                     "is in where the weight magnitude sits, not in the kernels' net (signed) response")
    elif core.get("abs") and core.get("signed"):
        lines.append("both indices lean opposite ways and beyond random init: the lean is in the weight magnitude "
                     "and in the net (signed) response")
    return "\n".join(lines)


ARI_POOR, ARI_GOOD = 0.2, 0.5  # wording bands for the adjusted Rand index (our convention, printed with it)


def taxonomy_findings(cluster_checks: dict, alpha: float = 0.05) -> str:
    """Conclusions of the unsupervised check: {(model, features): (clustered, summary)} from
    :func:`taxonomy_clusters`. Per feature set: the ARI range over the entries, how many beat the permutation
    null at ``alpha``, and a wording band (ARI < 0.2: poorly, < 0.5: partly, else well; our convention)."""
    lines = []
    feats = list(dict.fromkeys(f for _, f in cluster_checks))
    for f in feats:
        s = {name: v[1] for (name, ff), v in cluster_checks.items() if ff == f}
        ari = np.array([v["ari"] for v in s.values()])
        coarse = np.array([v["ari_coarse"] for v in s.values()])
        sig = sum(v["p_value"] < alpha for v in s.values())
        top = float(ari.max())
        band = "poorly" if top < ARI_POOR else "partly" if top < ARI_GOOD else "well"
        lines.append(f"{f} features: ARI {ari.min():.2f} to {top:.2f} over {len(ari)} sets ({', '.join(s)}); "
                     f"above the permutation null (p < {alpha}) in {sig} of {len(ari)}; coarse ARI "
                     f"{coarse.min():.2f} to {coarse.max():.2f}")
        lines.append(f"  -> with {f} features the kernels separate the rule types {band} (ARI bands: < {ARI_POOR} "
                     f"poorly, < {ARI_GOOD} partly); "
                     + ("better than chance, so the type is partly written in the weights, but most of it is not"
                        if sig and band != "well" else "not better than chance" if not sig else
                        "the type is largely written in the weights"))
    return "\n".join(lines)


def stem_findings(models: dict, merged: dict, measured_input_means: dict | None = None) -> pd.DataFrame:
    """Per model, what the data-free detector can say about the stem (the conv reading the image).

    The stem's data-free input mean is the ImageNet mean after the model's own normalisation: exactly 0
    when the model normalises with the ImageNet mean itself (then the predicted border shift is 0 and no
    stem PAN can be predicted from the weights), small otherwise. Columns: model, layer, max |data-free
    mean|, max |measured mean| (``measured_input_means``: {model: {layer: tensor}}), PANs measured in the
    stem, predicted data-free, note.
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
            rows.append({"model": name, "layer": layer, "datafree_mean_max": float(mu), "measured_mean_max": meas,
                         "pans": int(m["is_pan"].sum()), "predicted": int(m["pred_is_pan"].sum()),
                         "note": "data-free mean is 0 by construction (normalised input): no prediction possible"
                         if zero else "data-free mean is non-zero: the prediction uses it"})
    return pd.DataFrame(rows)


def chapter_findings(agreement: pd.DataFrame, layers: pd.DataFrame, cluster_checks: dict,
                     asym_findings: pd.DataFrame) -> str:
    """The chapter's conclusions in one place: the 'conclusion' lines of :func:`agreement_verdict`, the
    verdict lines of :func:`taxonomy_findings` and :func:`asymmetry_conclusion` (all computed there)."""
    detector = [ln for ln in agreement_verdict(agreement, layers).splitlines() if ln.startswith("conclusion")]
    taxonomy = [ln.strip() for ln in taxonomy_findings(cluster_checks).splitlines() if ln.strip().startswith("->")]
    return "\n".join(["data-free detector:"] + [f"  {ln}" for ln in detector] + ["taxonomy:"] +
                     [f"  {ln}" for ln in taxonomy] + ["mean-kernel asymmetry:"] +
                     [f"  {ln}" for ln in asymmetry_conclusion(asym_findings).splitlines()])


def chapter_findings_box(type_diff: pd.DataFrame | None = None, agreement: pd.DataFrame | None = None,
                         cluster_checks: dict | None = None, asym_findings: pd.DataFrame | None = None) -> list:
    """Chapter 2's findings, one :class:`padlib.chapters.findings.Finding` per question: learned PAN types against a
    random network's, the data-free detector, the rule types in the kernels, Mind the Pad's lean (abs index).
    A question whose table is not given is left out (a section shows its own line)."""

    out = []
    vs_random = (type_diff[type_diff.set_b == PAN_SETS[2]].dropna(subset=["tv_distance"]) if type_diff is not None
                 else [])
    if len(vs_random):
        out.append(Finding(
            verdict_of(vs_random.differs.mean()), "Learned PANs' kernel types differ from a random network's border responses",
            f"{int(vs_random.differs.sum())} of {len(vs_random)} models (Holm-adjusted chi-square); total-variation "
            f"distance {vs_random.tv_distance.min():.2f}-{vs_random.tv_distance.max():.2f}; largest moves: "
            + "; ".join(f"{r.model} {r.rises}, {r.falls}" for r in vs_random.itertuples()),
            "learned-pans-against-random-init-pans"))
    if agreement is not None:
        df = agreement[agreement.predictor == "data-free"]
        good = (df.precision >= 0.5) & (df.recall >= 0.5)
        out.append(Finding(
            verdict_of(good.mean()), "The weights alone predict which filters are PANs (our data-free formula)",
            f"precision {df.precision.min():.2f}-{df.precision.max():.2f}, recall {df.recall.min():.2f}-"
            f"{df.recall.max():.2f} over {len(df)} models; both at least 0.5 in {int(good.sum())}",
            "the-activation-based-detector"))
    if cluster_checks is not None:
        per_model = {name: v for (name, f), (_, v) in cluster_checks.items() if name != "all models" and f == "profile"}
        if per_model:
            aris = np.array([v["ari"] for v in per_model.values()])
            sig = np.array([v["p_value"] <= 0.05 for v in per_model.values()])
            out.append(Finding(
                "partly" if sig.any() and aris.max() < 0.5 else verdict_of(float((aris >= 0.5).mean())),
                "PAN types (our rule) are written in the kernel shapes",
                f"adjusted Rand index {aris.min():.2f}-{aris.max():.2f} (0 chance, 1 identical) over {len(aris)} models, "
                f"above the permutation null in {int(sig.sum())}", "unsupervised-check"))
    if asym_findings is not None:
        a = asym_findings[asym_findings["mode"] == "abs"]
        core = a[a.check.isin(["opposite", "learned"])]
        rest = a[~a.check.isin(["opposite", "learned"]) & a.consistent.notna()]
        core_ok = bool(len(core)) and bool(core.consistent.fillna(False).all())
        verdict = ("holds" if core_ok and rest.consistent.astype(bool).all() else "partly" if core_ok else "not here")
        out.append(Finding(
            verdict, "Uneven padding leaves opposite, learned leans in the mean kernels (Mind the Pad)",
            "; ".join(f"{r.check}: {r.measured}" for r in core.itertuples())
            + f"; {int(rest.consistent.astype(bool).sum())} of {len(rest)} corollary checks pass (abs index)",
            "mean-kernel-asymmetry-did-uneven-padding-leave-a-lean"))
    return out


def type_difference_findings(diff: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """One sentence per model on whether the learned PANs' kernel types differ from the comparison set's."""
    out = []
    for _, r in diff.iterrows():
        if not np.isfinite(r.tv_distance):
            out.append(f"{r.model}: too few PANs in one of the sets to compare ({r.n_a} vs {r.n_b}).")
            continue
        verdict = "differ" if r.differs else "do not differ detectably"
        moves = f"; largest rise {r.rises}, largest fall {r.falls}" if r.differs else ""
        out.append(f"{r.model}: the types of its {r.n_a} {r.set_a} PANs {verdict} from those of the {r.n_b} "
                   f"{r.set_b} channels (total-variation distance {r.tv_distance:.2f}, Holm-adjusted p "
                   f"{r.p_holm:.2g} at alpha {alpha:g}){moves}.")
    return out

