"""The report's border-reach stage: how much overlap tiles of the report's input size need (dense models only).

:func:`reach_stage` runs :func:`padlib.border_reach` with tiles of the report's input size cut from a few probe
photographs at twice that size, for the model's own padding and with reflect, replicate and circular padding
swapped in at inference; :class:`ReachStage` holds the result and writes the summary's sentence and the
recommendation's words from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ._hooks import keeps_model
from .data import probe_images
from .errors import PadlibError
from .tiling import AS_GIVEN, SWAPS, BorderReach, border_reach

REACH_IMAGES = 4  # photographs at twice the input size (the units of the interval) ...
REACH_TILES = 8  # ... and tiles cut from each: 4 x (8 tiles + one whole image of four tiles' area) per padding
REACH_TOLERANCE = 0.01  # of the spread of the whole-image output: the margin where the tiled error stays under it
REACH_N_BOOT = 1000
REACH_RANGE = (2, 64)  # photographs: an interval over photographs needs two; more is a study, not a report stage


@dataclass
class ReachStage:
    """What the report's border-reach stage measured (``result``, a :class:`padlib.BorderReach`), or why it did
    not run (``skipped``, one line)."""

    tile: int
    n_images: int = REACH_IMAGES
    result: BorderReach | None = field(default=None, repr=False)
    skipped: str = ""

    def _overlap(self, padding: str) -> tuple[float, float, float]:
        r = self.result.schemes.set_index("padding").loc[padding]
        return float(r["overlap"]), float(r["overlap_low"]), float(r["overlap_high"])

    def comparison(self, padding: str) -> str:
        """How the swap's overlap compares with the model's own: 'shorter' or 'longer' where their bootstrap
        intervals over images do not overlap, 'the same' where both are the same number of pixels with the same
        interval, else 'not resolved' (an interval over so few images is wide)."""
        own, swap = self._overlap(AS_GIVEN), self._overlap(padding)
        if any(math.isnan(v) for v in own + swap):
            return "not resolved"
        if swap[2] < own[1]:
            return "shorter"
        if swap[1] > own[2]:
            return "longer"
        if own == swap:
            return "the same"
        return "not resolved"

    @staticmethod
    def _px(v: float) -> str:
        return "beyond the tile" if math.isinf(v) else "?" if math.isnan(v) else f"{int(v)} px"

    def swap_words(self, reasons: bool = True) -> list[str]:
        """Per swap: 'reflect 64 px [48, 64], the same as with the model's own padding', or that it could not run
        (with the reason unless ``reasons`` is False)."""
        out = []
        for padding in SWAPS:
            if padding in self.result.skipped:
                out.append(f"{padding}: not run" + (f" ({self.result.skipped[padding]})" if reasons else ""))
                continue
            if padding not in set(self.result.schemes["padding"]):
                continue
            v, lo, hi = self._overlap(padding)
            bound = lambda b: "beyond the tile" if math.isinf(b) else str(int(b))  # noqa: E731
            interval = "" if math.isnan(lo) or math.isnan(hi) else f" [{bound(lo)}, {bound(hi)}]"
            word = self.comparison(padding)
            tail = {"shorter": "shorter than with the model's own padding",
                    "longer": "longer than with the model's own padding",
                    "the same": "the same as with the model's own padding",
                    "not resolved": "not resolved from the model's own padding"}[word]
            out.append(f"{padding} {self._px(v)}{interval}, {tail}")
        return out

    def summary_line(self) -> str:
        """The summary's sentence: the overlap at the tolerance (with its interval over images), then each swap."""
        if self.skipped:
            return f"Border reach: not run ({self.skipped})."
        head = self.result.summary()
        swaps = self.swap_words()
        return (f"Border reach ({self.result.n_tiles} tiles from {self.result.n_images} photographs at "
                f"{2 * self.tile} px): {head}" + (f"; with the padding swapped in at inference: {'; '.join(swaps)}"
                                                  if swaps else "") + ".")

    def record(self) -> dict:
        """The JSON-ready form: per padding its overlap (rows, columns, the larger) with intervals and the margins
        per side, or why it was skipped."""
        if self.skipped:
            return {"skipped": self.skipped}
        r = self.result

        def num(v):
            v = float(v)
            return None if math.isnan(v) else ("inf" if math.isinf(v) else v)

        schemes = {row["padding"]: {k: num(row[k]) for k in (
            "overlap", "overlap_low", "overlap_high", "overlap_rows", "overlap_cols", "margin", "margin_top",
            "margin_bottom", "margin_left", "margin_right")} for _, row in r.schemes.iterrows()}
        for padding in schemes:
            if padding != AS_GIVEN:
                schemes[padding]["compared_with_model"] = self.comparison(padding)
        return {"tile": r.tile, "tolerance": r.tolerance, "stride": r.stride, "align": r.align,
                "n_images": r.n_images, "n_tiles": r.n_tiles, "output": r.output, "paddings": schemes,
                "skipped_swaps": dict(r.skipped), "summary": self.summary_line()}


@keeps_model
def reach_stage(model, size: int, kind: str, n_images: int = REACH_IMAGES, *, image_dir=None, seed: int = 0,
                batch_size: int = 8, device="cpu", output=None, n_boot: int = REACH_N_BOOT) -> ReachStage:
    """:func:`padlib.border_reach` as the report runs it: tiles of ``size`` px (the report's input size) from
    ``n_images`` probe photographs (or ``image_dir``'s images) at twice that size, :data:`REACH_TILES` tiles each,
    at :data:`REACH_TOLERANCE`, for the model's own padding and reflect, replicate and circular swapped in (a swap
    that cannot run is left out with its reason). Skipped, with a one-line reason, for class logits (``kind``: no
    map to tile) and where the map cannot be tiled at this size (e.g. the size is not a multiple of the model's
    largest stride)."""
    stage = ReachStage(int(size), int(n_images))
    if kind != "dense":
        stage.skipped = "the model's output is class logits, not a map: there is nothing to tile"
        return stage
    try:
        photos = probe_images(n_images, size=2 * size, seed=seed, image_dir=image_dir, model=model)
        stage.result = border_reach(model, photos, tile=size, tolerance=REACH_TOLERANCE, tiles_per_image=REACH_TILES,
                                    padding=True, output=output, batch_size=batch_size, device=device,
                                    n_boot=n_boot, seed=seed)
    except PadlibError as e:
        stage.skipped = str(e)
    return stage
