"""Chapter 4's readings: one :class:`padlib.chapters.findings.Finding` per claim of Mind the Pad, each from the
primary test(s) the chapter names before its results, and the sentences printed under its figures.

Every claim has its own primary family: the tests listed in its ``*_finding`` function, Holm-adjusted within that
family only (:func:`primary`), judged with :func:`padlib.chapters.findings.judge` against the claimed effect (our
declared smallest effect of interest where the paper gives no number) and combined with ``judge_all`` when the
claim is made of every model axis or every size. The same function gives the findings box line and the section
line under the figure (:func:`chapter_findings_box` only collects them), so the two cannot disagree.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..chapters.findings import NOT_TESTABLE, Finding, judge, judge_all
from ..position_sensitivity import blind_sides
from ..stats import detectable_effect, holm_adjust

# Our readings of the paper's words, declared before any result (the paper gives no numbers for these claims).
ALPHA = 0.05          # family-wise error rate of each claim's primary family (Holm)
COMMON_SHARE = 0.5    # "common": uneven padding in more than half of the architecture families
COMMON_MARGIN = 0.10  # the smallest excess over COMMON_SHARE we would call common (its equivalence margin)
LEAN_SOI = 0.05       # smallest lean difference of interest, in spatial-bias index units (a border line's
                      # deviation from the interior, over the map's mean |activation|)
ENERGY_SOI = 0.02     # smallest shift of interest in a kernel's energy share (2% of its squared weight)
BLIND_SOI = 0.02      # smallest recall difference of interest (2 points), for blind zones, sides and mitigations
SMALL_OBJECT = 0.10   # an object is "small" when its side is at most this share of the canvas side
POSITION_SOI = 0.10   # smallest drop of interest in the object's log-probability, in nats (about 10% less
                      # probability), for the pretrained models' objects at every position (section 4)

SECTION_ZOO = "the-whole-timm-zoo"
SECTION_LEAN = "following-or-compensating"
SECTION_KERNELS = "the-stride-2-kernels"
SECTION_MAPS = "recall-by-ring-position"
SECTION_EFFECTS = "what-the-padding-adds"
SECTION_MATCHED_KERNELS = "kernels-of-the-matched-networks"
SECTION_POSITIONS = "small-objects-at-every-position-the-pretrained-models-at-224-px"

CONSTANTS = {"ALPHA": (ALPHA, "family-wise error rate of each claim's primary family (Holm within the family)"),
             "COMMON_SHARE": (COMMON_SHARE, "'common': uneven padding in more than this share of the families"),
             "COMMON_MARGIN": (COMMON_MARGIN, "the smallest excess over COMMON_SHARE we would call common"),
             "LEAN_SOI": (LEAN_SOI, "smallest lean difference of interest (spatial-bias index units)"),
             "ENERGY_SOI": (ENERGY_SOI, "smallest shift of interest in a kernel's energy share"),
             "BLIND_SOI": (BLIND_SOI, "smallest recall difference of interest (blind zone, side, mitigation)"),
             "SMALL_OBJECT": (SMALL_OBJECT, "largest object side, as a share of the canvas side, called small"),
             "POSITION_SOI": (POSITION_SOI, "smallest drop of interest in an object's log-probability (nats), "
                                            "pretrained models, objects at every position")}


def constants_markdown() -> str:
    """The readings declared above as a Markdown list (name, value, meaning), for the chapter's method section."""
    return "\n".join(f"- `{k}` = {v:g}: {m}" for k, (v, m) in CONSTANTS.items())


def _iv(mean, low, high, pct: bool = False) -> str:
    """An effect and its interval as printed: accuracy differences in points (``pct``), other measures to 3 digits."""
    if pct:
        return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] points"
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def fmt_p(p: float) -> str:
    """A p-value as printed: two significant digits, '< 0.001' below that, 'n/a' when unknown."""
    if p is None or not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def primary(tests: pd.DataFrame, claimed, alpha: float = ALPHA) -> pd.DataFrame:
    """One claim's primary family: Holm-adjusted p within the family (``p_adj``), each test's verdict
    (:func:`judge` with ``claimed``, one value or one per row) and the smallest effect it detects at 80% power
    at the first Holm step (``detectable``; ``n``: the sample size behind each interval, when the table has it)."""
    t = tests.reset_index(drop=True).copy()
    claimed = np.broadcast_to(np.asarray(claimed, dtype=float), (len(t),))
    t["claimed"] = claimed
    t["p_adj"] = holm_adjust(t["p"].to_numpy(dtype=float)) if len(t) else []
    t["verdict"] = [judge(r.ci_low, r.ci_high, c, p=r.p_adj, alpha=alpha) for r, c in zip(t.itertuples(), claimed)]
    m = max(len(t), 1)
    ns = t["n"] if "n" in t else pd.Series([None] * len(t))
    t["detectable"] = [detectable_effect(r.ci_low, r.ci_high, n=None if n is None or pd.isna(n) else int(n),
                                         alpha=alpha / m) for r, n in zip(t.itertuples(), ns)]
    t.attrs.update(tests.attrs)
    t.attrs["family"] = len(t)
    return t


def direction_word(low: float, high: float, up: str, down: str, neither: str) -> str:
    """The word for an interval's direction: ``up`` above 0, ``down`` below, ``neither`` when it straddles 0."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return neither
    return up if low > 0 else down if high < 0 else neither


# ---------------------------------------------------------------------------------------------------------
# Section 2: the zoo


def zoo_finding(units: dict, numbers: dict | None = None) -> Finding:
    """Common architectures pad unevenly: the share of families with uneven padding in most of their
    architectures (:func:`padlib.experiments.ch4_blind_spots.zoo_units`) against :data:`COMMON_SHARE`; one test
    (a binomial test over families, the independent unit), its Wilson interval judged with margin
    :data:`COMMON_MARGIN`."""
    from scipy.stats import binomtest

    k, n = units["uneven_families"], units["families"]
    p = float(binomtest(k, n, COMMON_SHARE).pvalue) if n else float("nan")
    lo, hi = units["family_low"] - COMMON_SHARE, units["family_high"] - COMMON_SHARE
    verdict = judge(lo, hi, COMMON_MARGIN, p=p) if n else NOT_TESTABLE
    fixed = ""
    if numbers:
        fixed = (f"; a size within {units.get('max_distance') or '?'} px of the default pads evenly for "
                 f"{numbers['uneven_fixed_by_nearest_size']} of the {numbers['uneven_at_default']} uneven ones")
    observed = (f"{k} of {n} families ({units['family_share']:.0%}, 95% Wilson interval {units['family_low']:.0%} to "
                f"{units['family_high']:.0%}); {units['uneven_architectures']} of {units['architectures']} "
                f"architectures ({units['arch_share']:.0%}, {units['arch_low']:.0%} to {units['arch_high']:.0%})"
                + fixed)
    version = f"timm {numbers['timm_version']} " if numbers and numbers.get("timm_version") else "timm "
    return Finding(verdict, "Common architectures pad unevenly at their default input size",
                   f"more than {COMMON_SHARE:.0%} of the architecture families (our reading of 'common'; margin "
                   f"{COMMON_MARGIN:.0%})", observed,
                   f"every {version}architecture ({units['architectures']}, in {n} families), audited at its default "
                   "size: padding arithmetic, no weights",
                   detectable=f"{100 * detectable_effect(lo, hi):.0f} points of the family share",
                   needed="" if n else "an audited zoo",
                   test=f"share of families against {COMMON_SHARE:.0%}, binomial test over families, p {fmt_p(p)} "
                        "(one test)", section=SECTION_ZOO)


# ---------------------------------------------------------------------------------------------------------
# Section 3: pretrained models against random init


def _convention(side: str) -> str:
    return "PyTorch" if side in ("top", "left") else "TF 'SAME'"


def lean_finding(leans: pd.DataFrame) -> Finding:
    """Mean maps lean toward the side that reads more padding, beyond what the padding arithmetic does to random
    weights: per model axis, pretrained minus random-init lean at the training size (Welch), Holm over the axes,
    each judged against +:data:`LEAN_SOI`; the claim is made of every axis (``judge_all``)."""
    t = primary(leans, LEAN_SOI)
    verdict = judge_all(t["verdict"])
    observed = "; ".join(f"{r.model} {r.axis} (toward {r.toward}) {_iv(r.mean, r.ci_low, r.ci_high)}, "
                         f"Holm p {fmt_p(r.p_adj)}" for r in t.itertuples())
    models = list(dict.fromkeys(t["model"]))
    conv = {r.model: _convention(r.toward) for r in t.itertuples()}
    away = int((t["pre_even_high"] < 0).sum()) if len(t) else 0
    return Finding(verdict, "Trained weights make mean feature maps lean further toward the side that reads more "
                            "padding (pretrained minus random init, training size)",
                   f"a lean beyond random init, toward that side (our reading; smallest effect of interest "
                   f"{LEAN_SOI:+.2f} in index units)", observed or "no axis reads more padding on one side",
                   f"{len(models)} pretrained ImageNet models ("
                   + ", ".join(f"{m}, {conv[m]} padding" for m in models) + f"), {len(t)} model axes; "
                   f"{_lean_splits(leans, t)} per model against "
                   f"{int(t['init_train_n'].max()) if len(t) else 0} random-init seeds",
                   detectable=_range(t["detectable"]) + " index units",
                   needed="" if len(t) else "a model that pads unevenly",
                   test=f"Welch t-test per model axis, Holm over the {len(t)} axes",
                   note=f"at the even size the pretrained maps lean away from that side on {away} of {len(t)} axes "
                        "(interval below 0; not a primary test)", section=SECTION_LEAN)


def _lean_splits(leans: pd.DataFrame, t: pd.DataFrame) -> str:
    """The pretrained models' unit of the lean interval, from :func:`padlib.experiments.ch4_blind_spots.lean_tests`'
    ``attrs``: "8 image splits", or "8 splits of whole photographs (17 photographs)" when the splits were made of
    whole photographs (the number of photographs per model from the data; a range when the models differ)."""
    n = int(t["pre_train_n"].max()) if len(t) else 0
    unit = leans.attrs.get("unit", "image splits")
    prefix = "splits of whole "
    if not unit.startswith(prefix):
        return f"{n} {unit}"
    kind = unit[len(prefix):]
    counts = sorted({int(c) for m, c in leans.attrs.get("groups", {}).items() if m in set(t["model"]) and c})
    if not counts:
        return f"{n} {unit}"
    many = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    return f"{n} {unit} ({many} {kind})"


def _dof(k: int) -> str:
    return f"{k} degree of freedom" if k == 1 else f"{k} degrees of freedom"


def _range(values) -> str:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return "n/a"
    return f"{v.min():.3f}" if np.isclose(v.min(), v.max()) else f"{v.min():.3f} to {v.max():.3f}"


def lean_lines(leans: pd.DataFrame) -> list[str]:
    """One sentence per model axis: the pretrained and random-init leans toward the side that reads more padding,
    at the training and the even size, and the primary difference with its Holm-adjusted p."""
    t = primary(leans, LEAN_SOI)
    sizes = leans.attrs.get("trained_sizes", {}), leans.attrs.get("even_sizes", {})
    lines = []
    for r in t.itertuples():
        word = direction_word(r.ci_low, r.ci_high, f"further toward {r.toward} than", f"less toward {r.toward} than",
                              "no differently from (interval spans 0)")
        lines.append(f"{r.model}, {r.axis}: at {sizes[0].get(r.model, 'the training size')} px the pretrained maps lean "
                     f"{word} random init: {_iv(r.mean, r.ci_low, r.ci_high)} (pretrained "
                     f"{_iv(r.pre_train, r.pre_train_low, r.pre_train_high)}, random init "
                     f"{_iv(r.init_train, r.init_train_low, r.init_train_high)}; Holm p {fmt_p(r.p_adj)}). At "
                     f"{sizes[1].get(r.model, 'the even size')} px: pretrained "
                     f"{_iv(r.pre_even, r.pre_even_low, r.pre_even_high)}, random init "
                     f"{_iv(r.init_even, r.init_even_low, r.init_even_high)}.")
    return lines


def kernel_finding(kernels: pd.DataFrame) -> Finding:
    """Pretrained stride-2 kernels put less energy toward the padding they read more than random-init copies:
    per model axis (:func:`padlib.experiments.ch4_blind_spots.kernel_energy_tests`), Holm over the axes, each
    judged against -:data:`ENERGY_SOI`; every axis (``judge_all``)."""
    t = primary(kernels.rename(columns={"seeds": "n"}), -ENERGY_SOI)
    verdict = judge_all(t["verdict"])
    observed = "; ".join(f"{r.model} {r.axis} {_iv(r.mean, r.ci_low, r.ci_high)}, Holm p {fmt_p(r.p_adj)}"
                         for r in t.itertuples())
    if len(t):
        observed = f"{kernel_sign_words(kernels)} ({observed})"
    models = list(dict.fromkeys(t["model"]))
    return Finding(verdict, "Pretrained stride-2 kernels put less energy on the side that reads more padding than "
                            "random-init kernels do",
                   f"less energy toward that side than random init (our reading of the paper's asymmetric "
                   f"weights; smallest effect of interest {-ENERGY_SOI:+.2f} energy share)",
                   observed or "no uneven stride-2 layer",
                   f"{len(models)} pretrained ImageNet models ({', '.join(models)}), {len(t)} model axes, against "
                   f"{int(t['n'].max()) if len(t) else 0} random-init copies each",
                   detectable=_range(t["detectable"]) + " energy share",
                   needed="" if len(t) else "a model with uneven stride-2 layers",
                   test=f"per model axis, the pretrained value against the random-init copies' spread (a t-test "
                        f"of one new draw, {_dof(int(t['n'].max()) - 1 if len(t) else 0)}), Holm over the {len(t)} axes",
                   note="the pretrained models were trained at one size only, so this cannot say that the uneven "
                        "padding caused the lean (section 5 tests that)", section=SECTION_KERNELS)


def _read_side(reads: str, axis: str) -> str:
    """The side of ``axis`` ('top/bottom' or 'left/right') that reads more padding ('top/left' or 'bottom/right')."""
    first, second = (reads.split("/") + ["", ""])[:2]
    return first if axis == "top/bottom" else second


def kernel_sign_words(kernels: pd.DataFrame) -> str:
    """The sign flip with the padding convention, in words, from :func:`kernel_energy_tests`' table: per model, its
    convention (which side reads more padding) and the sides on which its pretrained stride-2 kernels put less
    energy than random init (each axis by the sign of its estimate; those whose interval spans 0 are named as not
    resolved), then whether the side with less energy follows the convention in every model (the flip)."""
    parts, follows, resolved, conventions = [], True, True, set()
    for model, g in kernels.groupby("model", sort=False):
        reads = str(g["reads"].iloc[0])
        conventions.add(_convention(reads.split("/")[0]))
        sides, unresolved = [], []
        for r in g.itertuples():
            read = _read_side(reads, r.axis)
            other = r.axis.replace(read, "").strip("/")
            less = read if r.mean < 0 else other
            follows &= less == read
            sides.append(f"{less} {'row' if r.axis == 'top/bottom' else 'column'}")
            if not (r.ci_high < 0 or r.ci_low > 0):
                unresolved.append(r.axis)
                resolved = False
        note = f" (not resolved on {', '.join(unresolved)})" if unresolved else ""
        parts.append(f"{model} ({_convention(reads.split('/')[0])} padding, reads more {reads}) puts less energy "
                     f"than random init on its {' and '.join(sides)}{note}")
    text = "; ".join(parts)
    if follows and len(conventions) > 1:
        return text + (": the side with less energy flips with the padding convention" +
                       ("" if resolved else " (by the estimates; not every interval excludes 0)"))
    if follows:
        return text + ": the side with less energy is the side that reads more padding"
    return text + ": the side with less energy does not follow the padding convention in every model"


def kernel_lines(kernels: pd.DataFrame) -> list[str]:
    """One sentence per model axis: where the pretrained stride-2 kernels put their energy relative to the side that
    reads more padding, against the random-init copies."""
    t = primary(kernels.rename(columns={"seeds": "n"}), -ENERGY_SOI)
    lines = []
    for r in t.itertuples():
        row = "row" if r.axis == "top/bottom" else "column"
        word = direction_word(r.ci_low, r.ci_high, "more", "less", "no more and no less (interval spans 0)")
        lines.append(f"{r.model} stride-2 kernels, {r.axis} (reads more: {r.reads}): {word} energy on the {row} facing "
                     f"the padding read more than random init: {_iv(r.mean, r.ci_low, r.ci_high)} (pretrained "
                     f"{r.pretrained:+.3f}; random init {r.init_min:+.3f} to {r.init_max:+.3f} over {r.n} seeds; "
                     f"Holm p {fmt_p(r.p_adj)})")
    return lines


# ---------------------------------------------------------------------------------------------------------
# Section 5: trained detectors (the matched networks)


def _reads_sign(reads: str) -> float:
    """+1 when the uneven size reads the top/left padding (PyTorch), -1 for bottom/right (TF 'SAME')."""
    return -1.0 if reads == "bottom/right" else 1.0


def _matched_scale(attrs: dict, settings: dict | None, what: str) -> str:
    """The scale of a trained-network line: seeds, schemes, canvases, objects and architecture, from the settings."""
    s = settings or {}
    seeds = attrs.get("seeds") or len(s.get("seeds", [])) or "?"
    sizes = f"{attrs.get('uneven', s.get('uneven', '?'))}- and {attrs.get('even', '?')}-px canvases"
    if s.get("task") == "detection":
        lo, hi = s.get("object_sizes", ("?", "?"))
        where = "trained here" if s.get("trained_by", "here") == "here" else f"trained by {s['trained_by']}"
        return (f"small detectors {where}: {seeds} seeds per cell, {what}, {sizes}, {s.get('depth', '?')} "
                f"stride-2 layers and a heat map at stride {s.get('stride', '?')}; {s.get('object_size', '?')}-px "
                f"rings at every position ({_object_share(s)[0]:.0%} of the canvas side; trained on {lo} to {hi} px)")
    digits = f", {s['digit_size']}-px digits" if s.get("digit_size") else ""
    return f"small networks trained here: {seeds} seeds per cell, {what}, {sizes}{digits}"


def _object_share(settings: dict) -> tuple[float, bool]:
    """The trained design's object side as a share of its smaller canvas side, and whether that is small
    (:data:`SMALL_OBJECT`); unknown settings: NaN and not small."""
    s = settings
    side = s.get("object_size") or s.get("digit_size")
    share = side / min(s["sizes"]) if side and s.get("sizes") else float("nan")
    return share, bool(np.isfinite(share) and share <= SMALL_OBJECT)


def matched_kernel_tests(energy_fx: pd.DataFrame) -> pd.DataFrame:
    """The primary family of the matched kernel claim: zero padding, both axes, uneven minus even size, signed so
    that > 0 is more energy on the row (column) facing the padding the uneven size reads."""
    z = energy_fx[energy_fx["scheme"] == "zero"].copy()
    sign = _reads_sign(energy_fx.attrs.get("reads", "top/left"))
    z[["mean", "ci_low", "ci_high"]] = sign * z[["mean", "ci_low", "ci_high"]].to_numpy()
    if sign < 0:
        z[["ci_low", "ci_high"]] = z[["ci_high", "ci_low"]].to_numpy()
    z["axis"] = z["metric"].map({"energy_tb": "top/bottom", "energy_lr": "left/right"})
    z["n"] = energy_fx.attrs.get("seeds")
    z.attrs.update(energy_fx.attrs)
    return z


def matched_kernel_finding(energy_fx: pd.DataFrame, settings: dict | None = None) -> Finding:
    """Training at the uneven size moves kernel energy away from the padding read: zero padding, each axis,
    uneven minus even size paired by seed (:func:`padlib.experiments.ch4_blind_spots.energy_effects`), Holm over
    the two axes, each judged against -:data:`ENERGY_SOI`; both axes (``judge_all``)."""
    t = primary(matched_kernel_tests(energy_fx), -ENERGY_SOI)
    reads = energy_fx.attrs.get("reads", "top/left") or "top/left"
    verdict = judge_all(t["verdict"])
    observed = "; ".join(f"{r.axis} {_iv(r.mean, r.ci_low, r.ci_high)}, Holm p {fmt_p(r.p_adj)}"
                         for r in t.itertuples())
    return Finding(verdict, "Training at an uneven size moves kernel energy away from the padding it reads "
                            "(trained networks, zero padding, uneven minus even size)",
                   f"less energy on the row and column facing the {reads} padding (our reading of the paper's "
                   f"Fig. 6b; smallest effect of interest {-ENERGY_SOI:+.2f} energy share)",
                   observed + " (energy share on the side facing the padding read)",
                   _matched_scale(energy_fx.attrs, settings, "zero padding"),
                   detectable=_range(t["detectable"]) + " energy share",
                   test=f"paired t-test per axis over seeds, Holm over the {len(t)} axes", section=SECTION_MATCHED_KERNELS)


def matched_energy_lines(energy_fx: pd.DataFrame) -> list[str]:
    """Plain sentences for every scheme and axis of :func:`energy_effects`: the primary tests (zero padding) with
    their Holm p, the other schemes as secondary comparisons with unadjusted intervals."""
    t = primary(matched_kernel_tests(energy_fx), -ENERGY_SOI)
    reads = energy_fx.attrs.get("reads", "top/left") or "top/left"
    lines = []
    for r in t.itertuples():
        word = direction_word(r.ci_low, r.ci_high, "toward", "away from", "neither toward nor away from")
        if r.p_adj > ALPHA and word != "neither toward nor away from":  # resolved alone, not within its family
            word = f"neither toward nor away from (after Holm; unadjusted, {word})"
        lines.append(f"Primary, zero padding, {r.axis}: the uneven size moves energy {word} the {reads} padding: "
                     f"{_iv(r.mean, r.ci_low, r.ci_high)} (Holm p {fmt_p(r.p_adj)} over {len(t)} tests).")
    sec = energy_fx[energy_fx["scheme"] != "zero"]
    for r in sec.itertuples():
        axis = "top/bottom" if r.metric == "energy_tb" else "left/right"
        lines.append(f"Secondary, {r.scheme}, {axis}: {_iv(r.mean, r.ci_low, r.ci_high)} (top/left minus "
                     f"bottom/right share, unadjusted p {fmt_p(r.p)}).")
    return lines


def _points(t: pd.DataFrame, col: str = "detectable") -> str:
    """A range of recall differences in points, for a finding's detectable field."""
    v = t[col].to_numpy(dtype=float) if len(t) else np.array([np.nan])
    if not np.isfinite(v).any():
        return "n/a"
    lo, hi = 100 * np.nanmin(v), 100 * np.nanmax(v)
    return f"{lo:.1f} recall points" if abs(hi - lo) < 0.05 else f"{lo:.1f} to {hi:.1f} recall points"


def _family(tests: pd.DataFrame, family: str, metrics=None) -> pd.DataFrame:
    t = tests[tests["family"] == family]
    if metrics is not None:
        t = t[t["metric"].isin(metrics)]
    out = t.reset_index(drop=True).copy()
    out.attrs.update(tests.attrs)
    return out


def detection_control(tests: pd.DataFrame, sesoi: float = BLIND_SOI) -> dict:
    """The positive control of the trained design: per side, the noisy-top networks' band deficit minus zero
    padding's (:func:`padlib.experiments.ch4_detection.detection_tests`, family ``positive control``), Holm over
    the four sides; a side is *found* when its interval lies below 0 and its Holm p passes :data:`ALPHA`, and
    the control is found *exactly* when the top, and only the top, is. ``estimate``: the top side's row."""
    t = _family(tests, "positive control")
    if not len(t):
        return {"ran": False, "found": [], "exact": False, "estimate": None, "tests": t}
    t = primary(t, -sesoi)
    t["side"] = t["metric"].str.replace("_deficit", "", regex=False)
    found = [r.side for r in t.itertuples() if r.ci_high < 0 and r.p_adj <= ALPHA]
    top = t[t["side"] == "top"]
    return {"ran": True, "found": found, "exact": found == ["top"], "tests": t,
            "estimate": top.iloc[0] if len(top) else None}


def _control_words(ctrl: dict) -> str:
    """One clause on the positive control, for the notes of the trained-design lines."""
    if not ctrl["ran"]:
        return "no positive control ran"
    e = ctrl["estimate"]
    found = ", ".join(ctrl["found"]) or "no side"
    how = "exactly the planted side" if ctrl["exact"] else "not exactly the planted side"
    est = f" (top band {_iv(e['mean'], e['ci_low'], e['ci_high'], pct=True)} against zero padding)" if e is not None \
        else ""
    return f"positive control (the top side padded with noise at every conv, trained the same way): found {found}, {how}{est}"


def _levels(tests: pd.DataFrame, a: str, b: str) -> str:
    """The two schemes' mean recall over all positions at the uneven size: a border deficit in recall points is read
    at the operating point each network ends at, so a line comparing two schemes says where they are."""
    rec, size = tests.attrs.get("recall") or {}, tests.attrs.get("uneven")
    if (size, a) not in rec or (size, b) not in rec:
        return ""
    return (f"mean recall over all positions at {size} px: {a} {rec[(size, a)]:.0%}, {b} {rec[(size, b)]:.0%} "
            "(the deficits are read where each network ends)")


def _logit_words(tests: pd.DataFrame) -> str:
    """The blind-zone test repeated on the ring cell's logit, free of the threshold (secondary)."""
    rows = _logit_rows(tests)
    return f"on the ring cell's logit instead (secondary, unadjusted): {rows}" if rows else ""


def _logit_rows(tests: pd.DataFrame) -> str:
    """Each size's logit blind-zone test with its direction, for the finding's note and the section's sentence."""
    return "; ".join(f"{int(r.size)} px {_iv(r.mean, r.ci_low, r.ci_high)} logits "
                     f"({direction_word(r.ci_low, r.ci_high, 'border stronger', 'border weaker', 'not resolved')})"
                     for r in _family(tests, "zone, logits").itertuples())


def _guarded(verdict: str, ctrl: dict) -> str:
    """A null without a working positive control cannot contradict: the design has not shown it can see the effect."""
    from ..chapters.findings import CONTRADICTED, INCONCLUSIVE

    return INCONCLUSIVE if verdict == CONTRADICTED and not ctrl["exact"] else verdict


def blind_zone_tests(tests: pd.DataFrame) -> pd.DataFrame:
    """The primary family of the blind-zone claim: per size, zero padding's border deficit minus circular padding's
    (the same detector with no border: the stride-8 grid and the edge cells are shared, so what is left is what the
    zero padding adds), paired by seed."""
    return _family(tests, "zone")


def blind_zone_finding(tests: pd.DataFrame, settings: dict | None = None) -> Finding:
    """A small object is detected less near the border: :func:`blind_zone_tests`, Holm over the sizes, each against
    -:data:`BLIND_SOI`; every size (``judge_all``). A null counts as contradicting only when the positive control
    was found exactly (:func:`detection_control`). Not testable here when the objects are not small."""
    s = settings or {}
    t = primary(blind_zone_tests(tests), -BLIND_SOI)
    ctrl = detection_control(tests)
    share, small = _object_share(s)
    observed = "; ".join(f"{int(r.size)} px {_iv(r.mean, r.ci_low, r.ci_high, pct=True)}, Holm p {fmt_p(r.p_adj)}"
                         for r in t.itertuples()) + \
        " (border bands minus the interior, zero padding minus circular padding)"
    verdict = _guarded(judge_all(t["verdict"]), ctrl) if small and len(t) else NOT_TESTABLE
    needed = "" if verdict != NOT_TESTABLE else (
        f"objects at most {SMALL_OBJECT:.0%} of the canvas side (here {share:.0%}) and a per-location output, with "
        "zero and circular padding trained alike")
    return Finding(verdict, "A small object is detected less near the border (blind zone; trained detectors, zero "
                            "padding against circular)",
                   f"lower recall in the border bands than in the interior, beyond circular padding's (our reading; "
                   f"smallest effect of interest {-100 * BLIND_SOI:+.0f} recall points)", observed,
                   _matched_scale({"seeds": tests.attrs.get("seeds"), "uneven": tests.attrs.get("uneven"),
                                   "even": tests.attrs.get("even")}, s, "zero and circular padding"),
                   detectable=_points(t), needed=needed,
                   test=f"paired t-test over seeds per size, Holm over the {len(t)} sizes",
                   note="; ".join(w for w in (_control_words(ctrl), _levels(tests, "zero", "circular"),
                                              _logit_words(tests)) if w), section=SECTION_MAPS)


def blind_side_tests(tests: pd.DataFrame) -> pd.DataFrame:
    """The primary family of the blind-side claim: per axis, top minus bottom (left minus right) recall, the uneven
    minus the even size for zero padding, minus the same for circular padding (which removes the sampling grid's
    change between the sizes), paired by seed."""
    return _family(tests, "side")


def blind_side_finding(tests: pd.DataFrame, reads: str = "top/left", settings: dict | None = None) -> Finding:
    """Uneven padding makes one side blinder: :func:`blind_side_tests`, Holm over the two axes, each against the
    claimed direction (the side that reads more padding loses recall) at :data:`BLIND_SOI`; both axes
    (``judge_all``), guarded by the positive control as :func:`blind_zone_finding`."""
    s = settings or {}
    t = primary(blind_side_tests(tests), -_reads_sign(reads) * BLIND_SOI)
    ctrl = detection_control(tests)
    share, small = _object_share(s)
    verdict = _guarded(judge_all(t["verdict"]), ctrl) if small and len(t) else NOT_TESTABLE
    near = "top and left" if _reads_sign(reads) > 0 else "bottom and right"
    observed = "; ".join(f"{r.metric.replace('_', ' ')} {_iv(r.mean, r.ci_low, r.ci_high, pct=True)}, Holm p "
                         f"{fmt_p(r.p_adj)}" for r in t.itertuples()) + \
        f" ({tests.attrs.get('uneven', '?')} minus {tests.attrs.get('even', '?')} px, zero minus circular padding)"
    return Finding(verdict, "Uneven padding makes one side blinder (trained detectors, uneven minus even size, zero "
                            "padding against circular)",
                   f"lower recall on the {near} sides, whose padding the uneven size reads (our reading; smallest "
                   f"effect of interest {100 * BLIND_SOI:.0f} recall points)", observed,
                   _matched_scale(tests.attrs, s, "zero and circular padding"),
                   detectable=_points(t),
                   needed="" if verdict != NOT_TESTABLE else (
                       f"objects at most {SMALL_OBJECT:.0%} of the canvas side (here {share:.0%}) and a per-location "
                       "output"),
                   test=f"paired t-test of the difference of differences per axis over seeds, Holm over the {len(t)} "
                        "axes", note=_control_words(ctrl), section=SECTION_EFFECTS)


def mitigation_tests(tests: pd.DataFrame) -> pd.DataFrame:
    """The primary family of the mitigation claim: symmetric minus zero padding on the border deficit at the uneven
    size (> 0: a smaller deficit), and the even size (the uneven minus the even size's border deficit, zero minus
    circular padding; < 0: the uneven size has the larger deficit). Circular padding is this design's control for
    what the padding adds, so its own mitigation is the blind-zone test read the other way."""
    uneven = tests.attrs.get("uneven")
    sym = tests[(tests["family"] == "symmetric") & (tests["size"] == uneven)]
    even = tests[tests["family"] == "even size"]
    t = pd.concat([sym, even], ignore_index=True)
    t["claimed_sign"] = np.where(t["family"] == "symmetric", 1.0, -1.0)
    t.attrs.update(tests.attrs)
    return t


def mitigation_finding(tests: pd.DataFrame, settings: dict | None = None) -> Finding:
    """Symmetric padding or the even size shrinks the border deficit (trained that way). Its premise is a blind
    zone that the padding adds (a blind-zone test whose interval lies below 0): without one there is nothing to
    shrink and the claim is not testable here. With one: :func:`mitigation_tests`, Holm over the family, each
    against :data:`BLIND_SOI` in its own direction; every mitigation (``judge_all``), guarded by the control."""
    s = settings or {}
    zone = blind_zone_tests(tests)
    premise = bool((zone["ci_high"] < 0).any())
    mt = mitigation_tests(tests)
    t = primary(mt, mt["claimed_sign"].to_numpy() * BLIND_SOI)
    ctrl = detection_control(tests)
    deficit = "; ".join(f"{int(r.size)} px {_iv(r.mean, r.ci_low, r.ci_high, pct=True)}" for r in zone.itertuples())
    observed = "; ".join(f"{r.comparison} {_iv(r.mean, r.ci_low, r.ci_high, pct=True)}, Holm p {fmt_p(r.p_adj)}"
                         for r in t.itertuples()) + " (border deficit)"
    verdict = _guarded(judge_all(t["verdict"]), ctrl) if premise and len(t) else NOT_TESTABLE
    return Finding(verdict, "Symmetric padding or the even size shrinks the border deficit (trained detectors)",
                   f"a smaller border deficit with each mitigation (our reading; smallest effect of interest "
                   f"{100 * BLIND_SOI:.0f} recall points)",
                   observed if premise else f"the border deficit that zero padding adds (against circular): {deficit}",
                   _matched_scale(tests.attrs, s, "zero, symmetric and circular padding"),
                   detectable=_points(t) if premise else "",
                   needed="" if premise else (
                       "a border deficit that zero padding adds, to shrink: here no size's blind-zone interval lies "
                       "below 0"),
                   test=f"paired t-test per mitigation over seeds, Holm over the {len(t)} mitigations",
                   note="; ".join(w for w in (
                       "circular padding is the control for what the padding adds, so its mitigation is the "
                       "blind-zone line read the other way", _levels(tests, "symmetric", "zero")) if w),
                   section=SECTION_EFFECTS)


def detection_primary_rows(tests: pd.DataFrame) -> list[int]:
    """Positions, in ``tests``, of the rows that are some claim's primary test (for the figure's bold labels)."""
    keys = lambda t: set(zip(t["family"], t["metric"], t["size"].fillna(-1)))  # noqa: E731
    primary_keys = keys(blind_zone_tests(tests)) | keys(blind_side_tests(tests)) | keys(mitigation_tests(tests))
    return [i for i, k in enumerate(zip(tests["family"], tests["metric"], tests["size"].fillna(-1)))
            if k in primary_keys]


def detection_lines(tests: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Plain sentences under the tests figure: the positive control, the position effects circular padding shows
    by itself (not padding's), and the secondary rows."""
    lines = []
    ctrl = detection_control(tests)
    if ctrl["ran"]:
        lines.append(_control_words(ctrl)[0].upper() + _control_words(ctrl)[1:] + ".")
        for r in ctrl["tests"].itertuples():
            lines.append(f"  {r.side} band: {_iv(r.mean, r.ci_low, r.ci_high, pct=True)} (Holm p {fmt_p(r.p_adj)} "
                         "over the 4 sides).")
    logits = _logit_rows(tests)
    if logits:
        lines.append("The blind-zone test on the ring cell's logit instead of recall (free of the threshold, since "
                     f"the schemes' recall levels differ; secondary, unadjusted): {logits}, zero minus circular "
                     "padding.")
    circ = summary[summary["scheme"] == "circular"]
    for size, g in circ.groupby("size"):
        m = g[["border_deficit", "top_minus_bottom", "left_minus_right"]].mean()
        lines.append(f"Circular padding at {int(size)} px, which has no border (position effects that padding does not "
                     f"explain): border deficit {100 * m['border_deficit']:+.1f}, top minus bottom "
                     f"{100 * m['top_minus_bottom']:+.1f}, left minus right {100 * m['left_minus_right']:+.1f} recall "
                     f"points (means over {len(g)} seeds).")
    means = summary.groupby(["size", "scheme"], sort=False)[["mean", "false_alarms"]].mean()
    lines.append("Mean recall over all positions, and the share of cells above 1/2 on canvases without a ring: " +
                 "; ".join(f"{sc} {int(sz)} px {100 * r['mean']:.0f}% ({100 * r['false_alarms']:.1f}%)"
                           for (sz, sc), r in means.iterrows()) + ".")
    return lines


# ---------------------------------------------------------------------------------------------------------
# Section 4: objects at every position, the pretrained models at their own size


def _holm_models(k: int) -> str:
    return f"Holm over the {k} models" if k > 1 else "one model, no adjustment"


def _position_scale(study) -> str:
    """The scale of the position lines' evidence: models, objects and backgrounds, the object's share of the canvas,
    and what the design is (a pooled classifier, not a detector)."""
    s = study.settings
    t = study.tests[(study.tests["variant"] == "model") & (study.tests["test"] == "border")]
    per = ", ".join(f"{r.model}: {int(r.n_objects)} object{'s' if r.n_objects != 1 else ''} on {int(r.n)} "
                    f"backgrounds, {int(r.n_pairs)} pairs" for r in t.itertuples())
    return (f"{len(s['models'])} pretrained ImageNet classifiers at {s['size']} px ({per or 'no object recognised'}); "
            f"objects of {s['object_size']} px ({s['side_share']:.0%} of the canvas side, {s['area_share']:.0%} of its "
            f"area) at {s['n_positions']}x{s['n_positions']} positions on crops of other photographs; classifiers "
            "with global pooling, not detectors")


def position_primary(study, test: str) -> tuple[pd.DataFrame, list]:
    """One position claim's primary family: per model with an interval (objects recognised on at least two
    backgrounds), the test ``test`` ('border' or 'padding side') against -:data:`POSITION_SOI`, Holm over those
    models; the models without an interval, as not testable."""
    t = study.tests[(study.tests["variant"] == "model") & (study.tests["test"] == test)]
    ok = np.isfinite(t["ci_low"].to_numpy(dtype=float)) & np.isfinite(t["ci_high"].to_numpy(dtype=float))
    tested = set(t.loc[ok, "model"])
    return primary(t[ok], -POSITION_SOI), [m for m in study.settings["models"] if m not in tested]


def _small_check(study) -> str:
    """How many object-background pairs the models recognise at the chapter's small-object size, if measured."""
    r = study.recognition
    small = [z for z in study.settings.get("check_sizes", []) if z <= SMALL_OBJECT * study.settings["size"]]
    if not small or not len(r):
        return ""
    z = max(small)
    d = r[r["object_size"] == z]
    per = ", ".join(f"{m} {int(g['recognised'].sum())} of {len(g)}" for m, g in d.groupby("model", sort=False))
    return (f"at {z} px ({z / study.settings['size']:.0%} of the side, within what this chapter calls small) the "
            f"classifiers recognise {per} object-background pairs centred")


def _position_needed(untested: list, study) -> str:
    return (f"objects that {', '.join(untested)} recognise{'s' if len(untested) == 1 else ''} centred on at least "
            f"two backgrounds (fewer here at {study.settings['object_size']} px with probability >= "
            f"{study.settings['min_prob']:g})")


def border_position_finding(study) -> Finding:
    """A pretrained classifier recognises an object less near the border: per model, the mean over the four side
    bands minus the interior of the change in the object's log-probability (objects averaged within each background,
    t-test over backgrounds; :func:`padlib.experiments.ch4_blind_spots.position_tests`), Holm over the models, each
    against -:data:`POSITION_SOI`; every model (``judge_all``). Not testable for a model that recognises no object
    on two backgrounds."""
    t, untested = position_primary(study, "border")
    s = study.settings
    verdict = judge_all(list(t["verdict"]) + [NOT_TESTABLE] * len(untested))
    observed = "; ".join(f"{r.model} {_iv(r.mean, r.ci_low, r.ci_high)} nats, Holm p {fmt_p(r.p_adj)}"
                         for r in t.itertuples())
    if observed:
        observed += " (border bands minus the interior, change in log-probability against the object centred)"
    small = _small_check(study)
    note = (f"the objects are {s['side_share']:.0%} of the canvas side, more than the {SMALL_OBJECT:.0%} this chapter "
            "calls small" + (f"; {small}" if small else "") + "; Mind the Pad's case is a detector missing a small "
            "object") if s["side_share"] > SMALL_OBJECT else ""
    if untested:
        note = (note + "; " if note else "") + f"not testable for {', '.join(untested)} (no object recognised)"
    return Finding(verdict, "A pretrained classifier recognises an object less near the border (objects at every "
                            "position, no intervention)",
                   f"a lower log-probability of the object's class in the border bands than in the interior (our "
                   f"reading of the blind spots; smallest effect of interest {-POSITION_SOI:+.2f} nats, ours)",
                   observed, _position_scale(study),
                   detectable=_range(t["detectable"]) + " nats" if len(t) else "",
                   needed=_position_needed(untested, study) if verdict == NOT_TESTABLE else "",
                   test=f"t-test over backgrounds per model (objects averaged within a background), "
                        f"{_holm_models(len(t))}", note=note, section=SECTION_POSITIONS)


def padding_side_finding(study) -> Finding:
    """A pretrained classifier recognises an object less on the side that reads more padding: per model, the band on
    each side that reads more padding (its padding audit at the model's size: top and left for PyTorch padding,
    bottom and right for TF 'SAME') minus the opposite band, averaged over the two axes (t-test over backgrounds),
    Holm over the models, each against -:data:`POSITION_SOI`; every model. The positive control's result is the
    note (:func:`position_control`)."""
    t, untested = position_primary(study, "padding side")
    verdict = judge_all(list(t["verdict"]) + [NOT_TESTABLE] * len(untested))
    conv = {m: f"{m}, {_convention(r['tb'] or r['lr'])} padding, reads more "
               f"{'/'.join(x for x in (r['tb'], r['lr']) if x) or 'neither side'}" for m, r in study.reads.items()}
    observed = "; ".join(f"{r.model} ({r.sides} minus the opposite) {_iv(r.mean, r.ci_low, r.ci_high)} nats, Holm p "
                         f"{fmt_p(r.p_adj)}" for r in t.itertuples())
    control = position_control(study)
    found = "; ".join(f"{r.model} with its {r.planted} band attenuated: found {r.found or 'no side'}"
                      + ("" if r.exact else f" (the {r.planted} band {_iv(r.estimate, r.ci_low, r.ci_high)} nats over "
                         f"{r.n} backgrounds, not resolved beyond {-POSITION_SOI:+.2f} after Holm over the four "
                         "sides: too few backgrounds to show a weak side)")
                      for r in control.itertuples())
    note = f"positive control (the same pipeline on a planted weak side): {found}" if len(control) else ""
    if untested:
        note = (note + "; " if note else "") + f"not testable for {', '.join(untested)} (no object recognised)"
    return Finding(verdict, "A pretrained classifier recognises an object less on the side that reads more padding",
                   "a lower log-probability of the object's class in the band on the side that reads more padding "
                   f"than on the opposite side ({'; '.join(conv.values())}; our reading; smallest effect of interest "
                   f"{-POSITION_SOI:+.2f} nats, ours)", observed, _position_scale(study),
                   detectable=_range(t["detectable"]) + " nats" if len(t) else "",
                   needed=_position_needed(untested, study) if verdict == NOT_TESTABLE else "",
                   test=f"t-test over backgrounds per model, {_holm_models(len(t))}", note=note,
                   section=SECTION_POSITIONS)


def position_control(study, sesoi: float = POSITION_SOI) -> pd.DataFrame:
    """The positive control, per model: the planted side (:attr:`controls`), and what :func:`padlib.blind_sides`
    finds at ``sesoi`` in the control's side bands (Holm over the four sides): ``found`` (the blind sides, joined),
    ``no_blind_band``, ``undecided``, ``exact`` (found exactly the planted side), and the planted side's estimate
    with its interval."""
    rows = []
    summary = study.summary[study.summary["variant"] == "control"]
    for model, g in summary.groupby("model", sort=False):
        g = g.drop(columns=["model", "variant"]).reset_index(drop=True)
        g.attrs.update(level=0.95)
        b = blind_sides(g, sesoi)
        planted = study.controls[model]["side"]
        p = g[g["side"] == planted].iloc[0]
        rows.append({"model": model, "planted": planted, "found": ", ".join(b.blind),
                     "no_blind_band": ", ".join(b.no_blind_band), "undecided": ", ".join(b.undecided),
                     "exact": b.blind == [planted], "estimate": p["estimate"], "ci_low": p["ci_low"],
                     "ci_high": p["ci_high"], "n": int(p["n_backgrounds"])})
    return pd.DataFrame(rows, columns=["model", "planted", "found", "no_blind_band", "undecided", "exact", "estimate",
                                       "ci_low", "ci_high", "n"])


def position_lines(study) -> list[str]:
    """Plain sentences for the section: what was recognised, and the positive control per model."""
    s, lines = study.settings, []
    r = study.recognition
    if len(r):
        r = r[r["object_size"] == s["object_size"]]
        for m, g in r.groupby("model", sort=False):
            ok = g[g["recognised"]]
            classes = ok.groupby("object", sort=False)["target_name"].first()
            names = ", ".join(f"{o} as '{n}'" for o, n in classes.items())
            top = "top-1" if s.get("top_k", 1) == 1 else f"among the top {s['top_k']}"
            lines.append(f"{m} recognises {ok['object'].nunique()} of {g['object'].nunique()} candidate objects at "
                         f"{s['object_size']} px on at least one background ({names or 'none'}): {len(ok)} of "
                         f"{len(g)} object-background pairs ({top}, probability >= {s['min_prob']:g}), on "
                         f"{ok['background'].nunique()} backgrounds.")
    for c in position_control(study).itertuples():
        word = "exactly the planted side" if c.exact else "not exactly the planted side"
        lines.append(f"Positive control, {c.model} with the {c.planted} band ({study.controls[c.model]['width']} px) "
                     f"multiplied by {study.controls[c.model]['factor']:g}: blind side found: {c.found or 'none'}; "
                     f"no blind band: {c.no_blind_band or 'none'}; undecided: {c.undecided or 'none'} ({word}; "
                     f"{c.planted} band minus interior {_iv(c.estimate, c.ci_low, c.ci_high)} nats over {c.n} "
                     "backgrounds).")
    small = _small_check(study)
    if small:
        lines.append(small[:1].upper() + small[1:] + ".")
    return lines


def chapter_findings_box(zoo_units_: dict | None, leans: pd.DataFrame, kernels: pd.DataFrame,
                         energy_fx: pd.DataFrame, detection: pd.DataFrame, zoo_numbers: dict | None = None,
                         settings: dict | None = None, positions=None) -> list:
    """Chapter 4's findings, one per claim of Mind the Pad, in the order of the chapter's sections; each comes
    from the same ``*_finding`` function that the section under its figure shows. ``positions``: the pretrained
    position study (:func:`padlib.experiments.ch4_blind_spots.pretrained_position_study`), when run;
    ``detection``: the trained detectors' tests (:func:`padlib.experiments.ch4_detection.detection_tests`)."""
    out = [zoo_finding(zoo_units_, zoo_numbers)] if zoo_units_ else []
    out += [lean_finding(leans), kernel_finding(kernels)]
    if positions is not None:
        out += [border_position_finding(positions), padding_side_finding(positions)]
    out += [blind_zone_finding(detection, settings),
            blind_side_finding(detection, energy_fx.attrs.get("reads") or "top/left", settings),
            mitigation_finding(detection, settings),
            matched_kernel_finding(energy_fx, settings)]
    return out
