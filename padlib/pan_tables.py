"""Tables read off a PAN scan: summaries, per side and depth, the learned-PAN control, single channels to show."""
from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from .errors import PadlibError
from .padding import LOCATIONS, SIDES
from .pans import PanScan, caused_scores


def learned_pan_summary(control: pd.DataFrame) -> pd.DataFrame:
    """Per model: trained counts and shares next to the random-init mean and range over seeds (shares in % and
    means rounded to one decimal: the table is shown as it is)."""
    rows = []
    for m, g in control.groupby("model", sort=False):
        tr, ri = g[g.init == "trained"].iloc[0], g[g.init == "random init"]
        row = {"model": m, "filters": int(tr.filters), "seeds": len(ri), "tau trained": round(float(tr.tau), 2),
               "tau random init mean": round(float(ri.tau.mean()), 2)}
        for col in [c for c in ("padding_caused", "learned", "specialist") if c in g]:
            row[f"{col} trained"] = int(tr[col])
            row[f"{col} trained %"] = round(float(tr[f"{col}_pct"]), 1)
            row[f"{col} random init mean"] = round(float(ri[col].mean()), 1)
            row[f"{col} random init range"] = f"{int(ri[col].min())}-{int(ri[col].max())}"
            row[f"{col} random init % (max)"] = round(float(ri[f"{col}_pct"].max()), 1)
        rows.append(row)
    return pd.DataFrame(rows)


def learned_score_table(scans: dict) -> pd.DataFrame:
    """Per channel, the padding-caused side score (:func:`caused_scores`) of each network of a
    :func:`learned_pan_control` (its ``{label: PanScan}``): ``network`` is "trained", "random init" (every
    control copy, column ``seed``) or "circular null" (the trained model's circular-padding copy), with the
    layer's random-init side threshold and the scan's tau beside it, tidy for a histogram."""
    frames = []
    for label, sc in scans.items():
        parts = [(label, sc.table)] + ([("circular null", sc.null)] if label == "trained" and sc.null is not None
                                       else [])
        thr = sc.init_thresholds.set_index("layer")["init_side_threshold"] if sc.init_thresholds is not None \
            else pd.Series(dtype=float)
        for network, t in parts:
            side, _ = caused_scores(t, sc.min_explained)
            frames.append(pd.DataFrame({
                "model": sc.model_name, "network": "random init" if label.startswith("random init") else network,
                "seed": int(label.rsplit(" ", 1)[1]) if label.startswith("random init") else -1,
                "layer": t["layer"].to_numpy(), "rel_depth": t["rel_depth"].to_numpy(), "side_score": side,
                "init_side_threshold": t["layer"].map(thr).to_numpy(dtype=float), "tau": sc.tau}))
    return pd.concat(frames, ignore_index=True)


def learned_depth_profile(scans: dict) -> pd.DataFrame:
    """Per model, padded layer and network (trained / random init, the copies averaged): the share of the
    layer's filters that are padding-caused, learned PANs and specialists, along relative depth."""
    rows = []
    for label, sc in scans.items():
        t = sc.table
        g = t.groupby("layer", sort=False).agg(rel_depth=("rel_depth", "first"), stride=("stride", "first"),
                                               filters=("channel", "size"), padding_caused=("padding_caused", "mean"),
                                               learned=("learned", "mean"), specialist=("specialist", "mean"))
        g[["padding_caused", "learned", "specialist"]] *= 100.0
        g.insert(0, "network", "trained" if label == "trained" else "random init")
        g.insert(0, "model", sc.model_name)
        rows.append(g.reset_index())
    out = pd.concat(rows, ignore_index=True)
    out = out.groupby(["model", "network", "layer"], sort=False, as_index=False).agg(
        rel_depth=("rel_depth", "first"), stride=("stride", "first"), filters=("filters", "first"),
        padding_caused_pct=("padding_caused", "mean"), learned_pct=("learned", "mean"),
        specialist_pct=("specialist", "mean"))
    return out


# ---------------------------------------------------------------------------------------------------------
# Summaries and selections the chapter shows.

def pan_summary(tables) -> pd.DataFrame:
    """Per model: layers, filters, PANs, share of filters, and PAN counts per sign and per side, each count
    also as a share of the model's padded filters (``<count>_pct``), so that models of different widths
    compare. A PAN counts once for each flagged side (a frame PAN counts for all four)."""
    rows = []
    for t in _tables(tables):
        p = t[t.is_pan]
        sides = p.sides.fillna("")
        filters = max(len(t), 1)
        row = {
            "model": t.attrs.get("model", ""),
            "layers": t.layer.nunique(),
            "filters": len(t),
            "pans": len(p),
            "share_pct": 100.0 * len(p) / filters,
            "fire": int((p.sign > 0).sum()),
            "silenced": int((p.sign < 0).sum()),
        }
        for s in SIDES:
            row[s] = int(sides.map(lambda v, s=s: s in v.split("+") or v == "frame").sum())
        row["frame"] = int((sides == "frame").sum())
        row["corner_only"] = int(sides.str.endswith("corner").sum() + sides.str.endswith("corners").sum())
        for k in ("fire", "silenced") + SIDES + ("frame", "corner_only"):
            row[f"{k}_pct"] = 100.0 * row[k] / filters
        row["tau"] = t.attrs.get("tau", float("nan"))
        row["fpr"] = t.attrs.get("fpr", float("nan"))
        row["n_images"] = t.attrs.get("n_images", 0)
        for k in ("padding_caused", "learned", "specialist"):
            if k in t:
                row[k] = int(t[k].sum())
        if "depthwise" in t:
            row["depthwise_pct"] = 100.0 * float(t.depthwise.mean())
            row["pans_depthwise_pct"] = 100.0 * float(p.depthwise.mean()) if len(p) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


READINGS = ("padding_caused", "learned", "specialist")


def _kind(sides: pd.Series) -> pd.Series:
    """One side, two sides, three, the frame, or corners only, from the ``sides`` label."""
    s = sides.fillna("")
    n = s.str.count(r"\+") + 1
    return pd.Series(np.select([s == "", s.str.contains("corner"), s == "frame", n == 1, n == 2],
                               ["", "corner only", "frame", "one side", "two sides"], "three sides"), index=s.index)


def readings_table(scans) -> pd.DataFrame:
    """Per model, the three readings side by side (padding-caused, learned, specialist), each by sign (fires at
    the border / silenced there) and kind (one side, two, three, frame, corner only), tidy: one row per (model,
    reading, sign, kind) with its count and share of the padded filters; plus the depthwise share of each set."""
    rows = []
    for sc in scans:
        t = sc.table
        kind = _kind(t.sides)
        for reading in [r for r in READINGS if r in t]:
            sel = t[reading].to_numpy(bool)
            for sign, word in ((1, "fires"), (-1, "silenced")):
                for k in ("one side", "two sides", "three sides", "frame", "corner only"):
                    m = sel & (t.sign.to_numpy() == sign) & (kind.to_numpy() == k)
                    rows.append({"model": sc.model_name, "reading": reading, "sign": word, "kind": k,
                                 "count": int(m.sum()), "pct": 100.0 * m.sum() / max(len(t), 1),
                                 "depthwise": int((m & t.depthwise.to_numpy(bool)).sum())})
    return pd.DataFrame(rows)


def readings_summary(scans) -> pd.DataFrame:
    """Per model: padded filters, the depthwise share of them, and each reading's count, share and depthwise share,
    with the specialists' selectivity bar, FDR and Benjamini-Hochberg bound on their false discoveries."""
    rows = []
    for sc in scans:
        t = sc.table
        row = {"model": sc.model_name, "filters": len(t), "depthwise_pct": 100.0 * float(t.depthwise.mean()),
               "n_images": sc.n_images}
        for r in [r for r in READINGS if r in t]:
            row[r] = int(t[r].sum())
            row[f"{r}_pct"] = 100.0 * float(t[r].mean())
            row[f"{r}_depthwise_pct"] = 100.0 * float(t.depthwise[t[r]].mean()) if t[r].any() else float("nan")
        row["selectivity_bar"] = sc.selectivity_threshold
        row["fdr"] = sc.fdr
        row["expected_false_discoveries"] = sc.expected_false_discoveries()
        rows.append(row)
    return pd.DataFrame(rows)


def side_sign_counts(table: pd.DataFrame) -> pd.DataFrame:
    """PAN counts per side and sign: rows top/bottom/left/right (a PAN counts once per flagged side) and
    corner-only PANs, with each count as a share of the table's filters (``fire_pct``, ``silenced_pct``)."""
    p = table[table.is_pan]
    filters = max(len(table), 1)
    rows = []
    for s in SIDES:
        has = p.sides.map(lambda v, s=s: s in v.split("+") or v == "frame")
        rows.append({"side": s, "fire": int((has & (p.sign > 0)).sum()), "silenced": int((has & (p.sign < 0)).sum())})
    corner = p.sides.str.contains("corner")
    rows.append({"side": "corner only", "fire": int((corner & (p.sign > 0)).sum()),
                 "silenced": int((corner & (p.sign < 0)).sum())})
    out = pd.DataFrame(rows).set_index("side")
    out["fire_pct"] = 100.0 * out["fire"] / filters
    out["silenced_pct"] = 100.0 * out["silenced"] / filters
    return out


def side_sign_shares(tables) -> pd.DataFrame:
    """:func:`side_sign_counts` for several models, one row per (model, side): counts and shares of filters."""
    rows = []
    for t in _tables(tables):
        c = side_sign_counts(t).reset_index()
        c.insert(0, "model", t.attrs.get("model", ""))
        rows.append(c)
    return pd.concat(rows, ignore_index=True)


def strongest_pans(table: pd.DataFrame, per_group: int = 1) -> pd.DataFrame:
    """The strongest PANs of each (side, sign) category, by score (largest |z| over the flagged locations)."""
    p = table[table.is_pan].copy()
    p["strength"] = p[[f"z_{loc}" for loc in LOCATIONS]].abs().max(axis=1)
    p["side_kind"] = p.sides.map(lambda v: v if v in SIDES or v == "frame" else ("corner" if "corner" in v else "several"))
    return (p.sort_values("strength", ascending=False).groupby(["side_kind", "sign"], sort=True)
             .head(per_group).sort_values(["side_kind", "sign"]))


def explorer_channels(table: pd.DataFrame, k: int = 10, n_ordinary: int = 2, seed: int = 0) -> pd.DataFrame:
    """Channels worth a look: the strongest PAN of each (side kind, sign), then ordinary controls; ``k`` rows."""
    pans = strongest_pans(table, 1).sort_values("strength", ascending=False).head(max(k - n_ordinary, 0))
    ordinary = ordinary_channels(table, min(n_ordinary, k - len(pans)), seed)
    return pd.concat([pans, ordinary], ignore_index=True)


def pans_by_depth(tables) -> pd.DataFrame:
    """Per model and padded layer: filters, PANs, share, and the layer's stride and relative depth."""
    rows = []
    for t in _tables(tables):
        g = t.groupby(["layer"], sort=False).agg(depth=("depth", "first"), rel_depth=("rel_depth", "first"),
                                                 stride=("stride", "first"), filters=("channel", "size"),
                                                 pans=("is_pan", "sum"), fire=("sign", lambda s: int((s > 0).sum())),
                                                 silenced=("sign", lambda s: int((s < 0).sum())))
        g["share_pct"] = 100.0 * g["pans"] / g["filters"]
        g.insert(0, "model", t.attrs.get("model", ""))
        rows.append(g.reset_index())
    return pd.concat(rows, ignore_index=True)


def flagged_sides(label: str) -> set:
    """The sides a ``sides`` label names: its sides ("top+left", "frame"), or, for a corner-only PAN, both sides of
    each flagged corner ("top-left+bottom-left corners" names top, bottom and left)."""
    label = str(label)
    if label == "frame" or label == "all corners":
        return set(SIDES)
    words = label.replace(" corners", "").replace(" corner", "").replace("-", "+").split("+")
    return {w for w in words if w in SIDES}


def _counted_sides(row) -> set:
    """The sides a PAN counts for in :func:`side_counts`: every flagged side; for a corner-only PAN, the sides of its
    corners whose padding the layer reads (``reads_*``, when the table has them). A corner output reads the padding
    of both its sides only where the layer reads both: at a stride-2 layer that never reads its bottom padding, the
    bottom-left corner is a PAN of the left padding alone, and counting it for the bottom would put a flag on a side
    whose padding the layer never reads."""
    sides = flagged_sides(row.sides)
    if "corner" in str(row.sides):
        sides = {s for s in sides if bool(getattr(row, f"reads_{s}", True))}
    return sides


def side_counts(tables) -> pd.DataFrame:
    """PAN counts per model, stride, side and sign (a PAN counts once for each flagged side; corner-only
    PANs count for the sides of their corners whose padding the layer reads, :func:`_counted_sides`)."""
    rows = []
    for t in _tables(tables):
        p = t[t.is_pan]
        for stride, ps in p.groupby(p.stride.astype(str), sort=True):
            counted = [_counted_sides(r) for r in ps.itertuples()]
            for s in SIDES:
                has = np.array([s in c for c in counted], dtype=bool)
                sign = ps.sign.to_numpy()
                rows.append({"model": t.attrs.get("model", ""), "stride": stride, "side": s,
                             "fire": int((has & (sign > 0)).sum()), "silenced": int((has & (sign < 0)).sum())})
    return pd.DataFrame(rows)


def corner_flags_on_unread_sides(tables, stride: str = "2") -> pd.DataFrame:
    """Per model, the corner-only PANs of its stride-``stride`` layers whose corner touches a side whose padding the
    layer never reads (``pans``), and the flags that counting both sides of every corner would have put on those
    unread sides (``unread_flags``): what :func:`side_counts` no longer counts."""
    rows = []
    for t in _tables(tables):
        p = t[t.is_pan & (t.stride.astype(str) == str(stride)) & t.sides.astype(str).str.contains("corner")]
        lost = [len(flagged_sides(r.sides) - _counted_sides(r)) for r in p.itertuples()]
        rows.append({"model": t.attrs.get("model", ""), "pans": int(sum(1 for x in lost if x)),
                     "unread_flags": int(sum(lost))})
    return pd.DataFrame(rows, columns=["model", "pans", "unread_flags"])


def _tables(tables) -> list[pd.DataFrame]:
    if isinstance(tables, (pd.DataFrame, PanScan)):
        tables = [tables]
    return [t.table if isinstance(t, PanScan) else t for t in tables]


def ordinary_channels(table: pd.DataFrame, k: int = 4, seed: int = 0) -> pd.DataFrame:
    """``k`` random non-PAN, non-constant channels (seeded), as controls next to the PANs."""
    pool = table[~table.is_pan & ~table.constant]
    return pool.sample(min(k, len(pool)), random_state=seed)


def border_profile(scan: PanScan, layer: str, channel: int, depth: int | None = None) -> pd.DataFrame:
    """Mean pre-activation at distance 0, 1, ... from each border (averaged along it), in interior-std units."""
    if layer not in scan.maps:
        raise PadlibError(f"layer '{layer}' was not scanned; scanned layers: {', '.join(list(scan.maps)[:4])}...")
    m = scan.maps[layer][channel].double()
    row = scan.table[(scan.table.layer == layer) & (scan.table.channel == channel)]
    if row.empty:
        raise PadlibError(f"channel {channel} does not exist in layer '{layer}'")
    row = row.iloc[0]
    h, w = m.shape
    depth = depth or max(1, min(h, w) // 2)
    std = row.interior_std if row.interior_std > 0 else 1.0
    rows = []
    for d in range(min(depth, (min(h, w) + 1) // 2)):
        inner_w, inner_h = slice(1, w - 1) if w > 2 else slice(None), slice(1, h - 1) if h > 2 else slice(None)
        vals = {"top": m[d, inner_w].mean(), "bottom": m[h - 1 - d, inner_w].mean(),
                "left": m[inner_h, d].mean(), "right": m[inner_h, w - 1 - d].mean()}
        for s, v in vals.items():
            rows.append({"distance": d, "side": s, "z": float((v - row.interior_mean) / std)})
    return pd.DataFrame(rows)


def channel_view(scan: PanScan, model: nn.Module | None, layer: str, channel: int) -> dict:
    """Everything the explorer shows for one channel: map, profile, kernels, scores."""
    row = scan.table[(scan.table.layer == layer) & (scan.table.channel == channel)]
    if row.empty:
        raise PadlibError(f"no channel {channel} in layer '{layer}' of {scan.model_name}")
    raw = None
    if model is not None:
        conv = dict(model.named_modules())[layer]
        raw = conv.weight.detach()[channel].float().cpu()
    return {"row": row.iloc[0], "map": scan.maps[layer][channel], "profile": border_profile(scan, layer, channel),
            "kernel": raw, "effective_kernel": scan.kernels[layer][channel]}

