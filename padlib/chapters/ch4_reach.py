"""Chapter 4, section 5's description of the trained detectors' border reach (tile overlap): the sentences, from
:func:`padlib.experiments.ch4_detection.reach_tests` and the study's ``reach_summary``. A description, not one of the
chapter's claims (no findings-box line)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..report_rules import _and
from .ch4_blind_spots import ALPHA, fmt_p

REACH_CONTROL = "noisy top"  # the positive control's scheme (padlib.experiments.ch4_detection.CONTROL)


def _scheme_name(scheme: str) -> str:
    return "the noisy-top control" if scheme == REACH_CONTROL else scheme


def _n(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def _seeds_phrase(k: int, n: int) -> str:
    return f"in every seed ({n})" if k == n else f"in {k} of {n} seeds"


def _span(values) -> str:
    """Px over seeds: '40' when every seed agrees, else '16 to 48' (the range)."""
    v = np.asarray(values, dtype=float)
    return _n(v.min()) if v.min() == v.max() else f"{_n(v.min())} to {_n(v.max())}"


def _reach_phrase(g: pd.DataFrame) -> str:
    """One scheme's networks at one tile size, over their seeds: "need N px of overlap ..." (the overlap, per axis
    where the rows' and columns' overlaps differ, and the px each side drops: each the value every seed agrees on,
    else the range over the seeds whose reach fits the tile) or "are too small ..." where the reach is beyond it."""
    n = len(g)
    ov = g["overlap"].to_numpy(dtype=float)
    fits = np.isfinite(ov)
    k = int(fits.sum())
    if k == 0:
        return (f"are too small {_seeds_phrase(n, n)}: at some edge the tiled heat map stays off the whole-image one "
                f"by more than the tolerance up to the tile's centre ({_n(g['max_distance'].iloc[0])} px in), so no "
                "overlap leaves a part of the tile that agrees with the whole image")
    f = g[fits]
    over = f"over the {n} seeds" if k == n else f"over {k} of {n} seeds"
    how = _seeds_phrase(k, n) if ov[fits].min() == ov[fits].max() else over
    beyond = "" if k == n else f" and are too small in the other {n - k}"
    m = {side: _span(f[f"margin_{side}"]) for side in ("top", "bottom", "left", "right")}
    rows, cols = _span(f["overlap_rows"]), _span(f["overlap_cols"])
    axes = "" if rows == cols else f"{rows} px between tile rows and {cols} between tile columns; "
    if m["top"] == m["left"] and m["bottom"] == m["right"]:
        sides = f"{m['top']} px in from a top or left edge and {m['bottom']} px from a bottom or right edge"
    else:
        sides = f"{m['top']} px in from a top edge, {m['bottom']} from a bottom, {m['left']} from a left and " \
                f"{m['right']} from a right edge"
    return f"need {_span(ov[fits])} px of overlap {how}{beyond} ({axes}the tiled heat map differs for {sides})"


def _reach_word(r, family: int, alpha: float = ALPHA) -> str:
    """The comparison of one pair's reach (a minus b, paired by seed): its word decided by the interval's sign
    (:func:`padlib.stats.interval_sign`: a zero-width interval takes its mean's sign) and the Holm-adjusted p."""
    from ..stats import interval_sign

    a, b = r.a, r.b
    if r.beyond_a or r.beyond_b:
        parts = [f"{x} in {k} of {r.seeds} seeds" for x, k in ((a, r.beyond_a), (b, r.beyond_b)) if k]
        return f"{a} against {b}: not compared (beyond the tile for {_and(parts)})"
    if not np.isfinite(r.p):
        return f"{a} against {b}: not compared ({r.n} paired seed{'s' if r.n != 1 else ''})"
    if r.ci_low == r.ci_high == 0:
        return f"{a} and {b} the same in every seed ({r.n})"
    sign = int(interval_sign(r.ci_low, r.ci_high, r["mean"]))
    iv = f"{r['mean']:+.0f} px [{r.ci_low:+.0f}, {r.ci_high:+.0f}], {'Holm ' if family > 1 else ''}p {fmt_p(r.p_adj)}"
    if sign and r.p_adj <= alpha:
        longer, shorter = (a, b) if sign > 0 else (b, a)
        return f"{longer} longer than {shorter} ({a} minus {b} {iv})"
    after = " after Holm" if sign else ""
    return f"{a} against {b} not resolved{after} ({a} minus {b} {iv})"


def reach_lines(reach_summary: pd.DataFrame, tests: pd.DataFrame | None = None) -> list[str]:
    """Plain sentences on the trained detectors' border reach (``DetectionStudy.reach_summary``, from
    :func:`padlib.experiments.ch4_detection.detector_reach`): per tile size, the overlap each padding's networks need
    at the tolerance (median and range over seeds, per axis where they differ, and the px dropped at each side), and
    whose reach is longer (:func:`padlib.experiments.ch4_detection.reach_tests`: the four margins' total, paired by
    seed, Holm over the pairs compared). A description, not one of the chapter's claims."""
    from ..experiments.ch4_detection import reach_tests

    if reach_summary is None or not len(reach_summary):
        return ["No border reach was measured (it needs networks whose size is a multiple of the stride, 32 px)."]
    tests = reach_tests(reach_summary) if tests is None else tests
    order = list(dict.fromkeys(reach_summary["scheme"]))
    order = [s for s in order if s != REACH_CONTROL] + [s for s in order if s == REACH_CONTROL]
    lines = []
    for tile, t in reach_summary.groupby("tile", sort=True):
        groups = {}
        for scheme in order:
            g = t[t["scheme"] == scheme]
            if len(g):
                groups.setdefault(_reach_phrase(g), []).append(scheme)

        def subject(names):
            trained = [x for x in names if x != REACH_CONTROL]
            words = [f"{_and(trained)} padding"] if trained else []
            return _and(words + ([_scheme_name(REACH_CONTROL)] if REACH_CONTROL in names else []))

        if len(groups) == 1 and len(next(iter(groups.values()))) > 1:
            body = f"with every padding ({subject(next(iter(groups.values())))}) they {next(iter(groups))}"
        else:
            body = "; ".join(f"with {subject(names)} they {phrase}" for phrase, names in groups.items())
        tol = f"{100 * float(t['tolerance'].iloc[0]):g}%"
        trained = " (the size the detectors were trained at)" if set(t["size"]) == {tile} else ""
        stride = "" if not np.isfinite(t["overlap"].to_numpy(dtype=float)).any() else \
            f"; an overlap is an axis's two margins rounded up to the {int(t['align'].iloc[0])}-px stride"
        lines.append(f"Tiles of {int(tile)} px{trained}, at {tol} tolerance (of the whole-image heat map's spread): "
                     f"{body}{stride}.")
    if len(tests):
        family = int(tests["p"].notna().sum())
        holm = (f"Holm over the {family} pairs compared" if family > 1 else
                "one pair compared, no adjustment" if family == 1 else "no pair compared")
        per_tile = []
        for tile, t in tests.groupby("tile", sort=True):
            same = (t["ci_low"] == 0) & (t["ci_high"] == 0)
            if ((t["beyond_a"] == t["seeds"]) & (t["beyond_b"] == t["seeds"])).all():
                per_tile.append(f"at {int(tile)} px not readable (every reach is beyond the tile)")
            elif same.all() and len(t) > 1:
                schemes = list(dict.fromkeys(list(t["a"]) + list(t["b"])))
                per_tile.append(f"at {int(tile)} px the same for {_and(schemes)} padding in every seed "
                                f"({int(t['n'].min())})")
            else:
                per_tile.append(f"at {int(tile)} px " + "; ".join(_reach_word(r, family) for _, r in t.iterrows()))
        lines.append("Whose reach is longer (the four margins' total in px, paired by seed, " + holm + "): " +
                     "; ".join(per_tile) + ".")
    return lines
