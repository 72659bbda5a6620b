"""Chapter 4's readings: compensation verdicts, blind-spot effect lines and the findings box."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..chapters.findings import Finding, verdict_of
from ..experiments.ch4_blind_spots import EFFECT_FLOOR

LEAN_FLOOR = 0.25  # ours: a net lean over fewer than a quarter of the depths is no lean
_OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def lean_score(index, axis: str, toward: str) -> float:
    """Net lean of a :func:`spatial_bias_index` table on ``axis`` ("tb" or "lr") toward side ``toward``: (depths
    leaning toward it - depths leaning the other way) / depths, counting only leans beyond their t-test bound.
    +1: every depth leans toward that side, -1: every depth leans away, 0: none leans or they cancel."""
    col = f"lean_{axis}"
    t = index[index["left_right"].notna()] if "left_right" in index else index
    if not len(t) or toward not in _OPPOSITE:
        return float("nan")
    return float(((t[col] == toward).sum() - (t[col] == _OPPOSITE[toward]).sum()) / len(t))


def compensation_verdicts(indices: dict, predicted: dict, floor: float = LEAN_FLOOR):
    """Does training follow the uneven padding, compensate for it, or neither? (Mind the Pad's reading, our rule.)

    ``indices``: {(model, init, size kind): spatial_bias_index table} with init "pretrained"/"random init" and
    size kind "trained size"/"even size" (constant inputs: content-free maps); ``predicted``: {model: {"tb": side,
    "lr": side}}, the side that reads more padding at the training size (:func:`predicted_lean`). Per model and
    axis, with L the net lean toward that side (:func:`lean_score`) and ``floor`` the smallest net lean that counts:

    - **compensates**: the pretrained model at the even size leans *away* from that side (L <= -floor) while the
      random-init copies at the even size do not lean (|L| < floor): the weights carry a correction for the
      padding they were trained with, which shows once the padding is even;
    - **follows**: otherwise, the pretrained model at its training size leans toward that side (L >= floor), as
      the arithmetic predicts;
    - **none**: neither.
    The random-init copies at the training size show what the arithmetic alone does (``init_trained``)."""
    import pandas as pd

    rows = []
    for model, pred in predicted.items():
        for axis, name in (("tb", "top/bottom"), ("lr", "left/right")):
            side = pred.get(axis, "")
            if not side:
                continue
            L = {k: lean_score(indices[(model, *k)], axis, side) if (model, *k) in indices else float("nan")
                 for k in (("pretrained", "trained size"), ("pretrained", "even size"),
                           ("random init", "trained size"), ("random init", "even size"))}
            pre_t, pre_e = L[("pretrained", "trained size")], L[("pretrained", "even size")]
            ini_t, ini_e = L[("random init", "trained size")], L[("random init", "even size")]
            if pre_e <= -floor and abs(ini_e) < floor:
                verdict = "compensates"
            elif pre_t >= floor:
                verdict = "follows"
            else:
                verdict = "none"
            rows.append({"model": model, "axis": name, "reads_more": side, "pretrained_trained_size": pre_t,
                         "pretrained_even_size": pre_e, "init_trained_size": ini_t, "init_even_size": ini_e,
                         "verdict": verdict})
    out = pd.DataFrame(rows)
    out.attrs["floor"] = floor
    return out


def compensation_lines(verdicts, energy=None) -> list[str]:
    """Plain sentences from :func:`compensation_verdicts` and, when given, :func:`padlib.kernels.row_energy_summary`."""
    lines = []
    for r in verdicts.itertuples():
        lines.append(f"{r.model}, {r.axis} (reads more padding: {r.reads_more}): {r.verdict}. Net lean toward "
                     f"{r.reads_more}: pretrained {r.pretrained_trained_size:+.2f} at its size, "
                     f"{r.pretrained_even_size:+.2f} at the even size; random init {r.init_trained_size:+.2f} and "
                     f"{r.init_even_size:+.2f} (floor {verdicts.attrs.get('floor', LEAN_FLOOR):.2f}).")
    return lines + (energy_lines(energy) if energy is not None else [])


def energy_lines(energy) -> list[str]:
    """Plain sentences from :func:`padlib.kernels.row_energy_summary`: where the stride-2 kernels put their
    energy relative to the padding read more, against the random-init copies' range."""
    lines = []
    for r in energy.itertuples():
        near = {"top/left": ("top", "left"), "bottom/right": ("bottom", "right")}.get(r.reads, ("", ""))
        for col, axis, s in (("energy_tb", "top/bottom", near[0]), ("energy_lr", "left/right", near[1])):
            v = getattr(r, col)
            toward = (v > 0) == (s in ("top", "left"))
            differs = getattr(r, f"{col}_differs")
            lines.append(f"{r.model} stride-2 kernels, {axis}: {'more' if toward else 'less'} energy on the "
                         f"{s} {'row' if col == 'energy_tb' else 'column'}, the one facing the padding read "
                         f"more ({v:+.3f}; random init "
                         f"{getattr(r, f'{col}_init_min'):+.3f} to {getattr(r, f'{col}_init_max'):+.3f})"
                         + ("" if differs else ": not beyond random init"))
    return lines


def effect_lines(effects: pd.DataFrame) -> list[str]:
    """Plain sentences: the resolved effects, and the smallest effect this design resolves."""
    lines = []
    n = effects.attrs.get("n_tests", len(effects))
    res = effects[effects["resolved"]]
    for r in res.itertuples():
        where = f"with {r.scheme} padding" if r.effect == "size" else f"at {int(r.size)} px"
        lines.append(f"{r.comparison} on {r.metric.replace('_', ' ')} {where}: {r.mean:+.3f} "
                     f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] (Holm p {r.p_holm:.3g} over {n} tests)")
    if res.empty:
        lines.append(f"No effect is resolved (Holm's correction over {n} tests, floor "
                     f"{effects.attrs.get('floor', EFFECT_FLOOR):.2f} accuracy).")
    hw = effects["half_width"]
    lines.append(f"Smallest effect resolved (interval half-width): {hw.min():.3f}-{hw.max():.3f} accuracy, "
                 f"median {hw.median():.3f}; floor {effects.attrs.get('floor', EFFECT_FLOOR):.2f} accuracy.")
    return lines


def chapter_findings_box(zoo_numbers: dict | None, compensation: pd.DataFrame, energy_summary: pd.DataFrame,
                         energy_fx: pd.DataFrame, cells: pd.DataFrame, effects: pd.DataFrame) -> list:
    """Chapter 4's findings, one :class:`padlib.chapters.findings.Finding` per claim of Mind the Pad, from its tables: uneven
    padding in the zoo; mean maps leaning toward the padding read (pretrained); learned compensation (maps at the
    even size, kernel energy: pretrained against random init, and matched networks at the uneven vs even size);
    blind spots at the border and on the side the padding leaves (matched networks); the mitigations."""

    out = []
    if zoo_numbers:
        out.append(Finding("holds" if zoo_numbers["uneven_at_default"] else "not here",
                           "Common architectures pad unevenly at their default input size",
                           f"{zoo_numbers['uneven_at_default']} of {zoo_numbers['audited']} timm architectures "
                           f"({zoo_numbers['share_uneven']:.0%}); a nearby size pads evenly for "
                           f"{zoo_numbers['uneven_fixed_by_nearest_size']} of them", "the-whole-timm-zoo"))
    floor = compensation.attrs.get("floor", 0.25)
    toward = compensation["pretrained_trained_size"] >= floor
    comp = compensation["verdict"] == "compensates"
    out.append(Finding(verdict_of(toward.mean()),
                       "Mean feature maps lean toward the side that reads more padding (pretrained, training size)",
                       f"{int(toward.sum())} of {len(compensation)} model axes lean that way by at least {floor:g} "
                       f"net (random-init copies: {int((compensation['init_trained_size'] >= floor).sum())} of "
                       f"{len(compensation)}); {int(comp.sum())} of {len(compensation)} compensate instead (next "
                       "line)", "following-or-compensating"))
    uneven = energy_fx[energy_fx["scheme"] == "zero"]
    moved = uneven[uneven["resolved"] & (uneven["mean"] < 0)]
    pre_moved = [f"{r.model} {c.split('_')[1]} {getattr(r, c):+.3f}" for r in energy_summary.itertuples()
                 for c in ("energy_tb", "energy_lr") if getattr(r, f"{c}_differs")]
    n_pre = 2 * len(energy_summary)
    lines = (f"pretrained stride-2 kernels beyond random init on {len(pre_moved)} of {n_pre} model axes "
             f"({'; '.join(pre_moved) or 'none'}); matched networks, zero padding, {energy_fx.attrs.get('uneven')} - "
             f"{energy_fx.attrs.get('even')} px: " + "; ".join(
                 f"{r.metric.split('_')[1]} {r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" for r in uneven.itertuples()))
    share = (len(pre_moved) / max(n_pre, 1) + len(moved) / max(len(uneven), 1)) / 2
    out.append(Finding(verdict_of(share),
                       "Uneven padding leaves learned, asymmetric kernels that move energy away from the padding read",
                       lines + (f"; pretrained maps lean the other way at the even size on {int(comp.sum())} of "
                                f"{len(compensation)} axes" if len(compensation) else ""), "following-or-compensating"))
    zero_cells = cells[(cells.metric == "border_deficit") & (cells.scheme == "zero")]
    deficit = zero_cells[zero_cells["ci_high"] < -EFFECT_FLOOR]
    out.append(Finding(verdict_of(len(deficit) / max(len(zero_cells), 1)),
                       "A small object is recognised less near the border (blind zone; matched networks, zero padding)",
                       "; ".join(f"{int(r.size)} px: {r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
                                 for r in zero_cells.itertuples()) + " accuracy, frame minus interior",
                       "blind-spots-in-networks-trained-at-the-size-they-are-tested-at"))
    side = effects[(effects.effect == "size") & (effects.scheme == "zero") &
                   effects.metric.isin(["top_minus_bottom", "left_minus_right"])]
    out.append(Finding(verdict_of(side["resolved"].mean()) if len(side) else "not here",
                       "Uneven padding makes one side blinder (uneven minus even size, zero padding)",
                       "; ".join(f"{r.metric.replace('_', ' ')} {r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
                                 for r in side.itertuples()) + f"; Holm over {effects.attrs.get('n_tests')} tests",
                       "blind-spots-in-networks-trained-at-the-size-they-are-tested-at"))
    mit = effects[((effects.effect == "padding") & (effects.metric == "border_deficit")) |
                  ((effects.effect == "size") & (effects.scheme == "zero") & (effects.metric == "border_deficit"))]
    helps = mit["resolved"] & np.where(mit.effect == "padding", mit["mean"] > 0, mit["mean"] < 0)
    out.append(Finding(verdict_of(helps.mean()) if len(mit) else "not here",
                       "Symmetric or circular padding, or the even size, shrinks the border deficit (trained that way)",
                       f"resolved in {int(helps.sum())} of {len(mit)} comparisons; smallest effect resolved "
                       f"{mit['half_width'].min():.3f}-{mit['half_width'].max():.3f} accuracy",
                       "blind-spots-in-networks-trained-at-the-size-they-are-tested-at"))
    return out

