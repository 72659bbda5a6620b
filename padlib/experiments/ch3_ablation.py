"""Chapter 3's design: PAN ablation against controls matched on ablation size, the top-k dose-response, the
border-distance readout, padding and size interventions, per model."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._memory import check_run_memory
from ..audit import audit_summary, padding_audit
from ..data import labelled_images, probe_images
from ..errors import PadlibError
from ..evaluation import output_info
from ..interventions import (
    ABLATION_MODES,
    ABLATION_REGIONS,
    Evaluation,
    Perturbations,
    _table_norms,
    _tidy,
    ablate_channels,
    ablation_perturbations,
    border_sensitivity,
    channel_means,
    channel_selection,
    compare_logits,
    consuming_norms,
    intervention_table,
    means_from_scan,
    model_logits,
    mover_consistency,
    padding_interventions,
    random_control,
    reference_logits,
    size_interventions,
    top_movers,
)
from ..models import channels_last_inference, load_model, preprocessing
from ..outputs import output_words
from ..pans import find_pans
from ..stats import bootstrap_ci, bootstrap_test
from .ch3_controls import (border_readout, channel_sizes, dose_steps, matched_control, matching_balance,
                           ranking)

CONTROL_KINDS = ("matched", "random")  # the kind of a control set: matched on ablation size, or on count alone


@dataclass
class AblationStudy:
    """PAN ablation against controls: ``summary`` (one row per run and metric), ``evaluations``
    keyed by (channels, control, mode, region), and the PAN-vs-control ``comparison``."""

    summary: pd.DataFrame
    evaluations: dict
    comparison: pd.DataFrame


def pan_ablation(model: nn.Module, images, pans, controls: pd.DataFrame | None = None, modes=ABLATION_MODES,
                 regions=ABLATION_REGIONS, means=None, reference=None, labels=None, batch_size: int = 8,
                 n_boot: int = 1000, seed: int = 0, progress: bool = True, norms: dict | None = None,
                 perturbations: Perturbations | None = None, control_kind: str = "random") -> AblationStudy:
    """Ablate the PANs, and each control set, under every mode and region.

    ``pans``: the PAN rows (or pairs); ``controls``: a :func:`random_control` table (columns control, layer,
    channel). Either may instead be a dict ``{(mode, region): rows}``: a set per ablation, as
    :func:`padlib.experiments.ch3_controls.matched_control` gives (controls matched on each ablation's size), then
    ``control_kind='matched'`` names them. ``means`` (from
    :func:`channel_means` over every layer involved) and ``reference`` logits are reused when given. The
    comparison gives, per mode, region and metric, the PAN value, the controls' mean and range, the paired
    difference PAN - mean of controls with a bootstrap interval over images, and how many controls the
    PAN ablation exceeds. With ``perturbations`` (:func:`ablation_perturbations`) every run also gets the
    metric 'perturbation' (the size of the ablation where it acts) and the comparison a row
    'kl_per_perturbation' (mean KL / mean perturbation: the disruption per unit of intervention size).
    ``norms``: {layer: BN name} (e.g. from the table's ``bn`` column), saving the dummy forward.
    """
    from tqdm.auto import tqdm

    labels, reference = reference_logits(model, images, labels, reference, batch_size)
    if control_kind not in CONTROL_KINDS:
        raise PadlibError(f"control_kind must be one of {CONTROL_KINDS}, got {control_kind!r}")
    conditions = [(m, r) for m in modes for r in regions]
    per_pans = pans if isinstance(pans, dict) else {c: pans for c in conditions}
    per_controls = controls if isinstance(controls, dict) else {c: controls for c in conditions}
    runs = []  # (kind, control, selection, mode, region)
    for mode, region in conditions:
        chosen = per_pans.get((mode, region))
        if chosen is None:
            continue
        chosen = chosen[["layer", "channel"]] if isinstance(chosen, pd.DataFrame) else chosen
        runs.append(("PANs", -1, channel_selection(chosen), mode, region))
        ctrl = per_controls.get((mode, region))
        if ctrl is not None and len(ctrl):
            runs += [(control_kind, int(c), channel_selection(g[["layer", "channel"]]), mode, region)
                     for c, g in ctrl.groupby("control")]
    layers = sorted({layer for _, _, sel, _, _ in runs for layer in sel})
    if "mean" in modes and means is None:
        means = channel_means(model, images, layers, batch_size=batch_size) if layers else {}
    if norms is None or any(layer not in norms for layer in layers):
        norms = consuming_norms(model, layers) if "zero" in modes and layers else {}
    evaluations, sizes = {}, {}
    for kind, control, sel, mode, region in tqdm(runs, desc="ablations", disable=not progress, leave=False):
        with ablate_channels(model, sel, mode, region, means=means, norms=norms):
            logits = model_logits(model, images, batch_size)
        ev = compare_logits(logits, reference, labels, n_boot, seed)
        if perturbations is not None:
            _add_metric(ev, "perturbation", perturbations.size(sel, mode, region), n_boot, seed)
        evaluations[(kind, control, mode, region)] = ev
        sizes[(kind, control, mode, region)] = sum(map(len, sel.values()))
    summary = _tidy(evaluations, ("channels", "control", "mode", "region"))
    summary["n_channels"] = [sizes[k] for k in zip(summary["channels"], summary["control"], summary["mode"],
                                                   summary["region"])]
    comparison = _pan_vs_controls(evaluations, n_boot, seed)
    if len(comparison):
        comparison["n_pans"] = [sizes.get(("PANs", -1, m, r), 0)
                                for m, r in zip(comparison["mode"], comparison["region"])]
    return AblationStudy(summary, evaluations, comparison)


def dose_response(model: nn.Module, images, table: pd.DataFrame, perturbations: Perturbations, means, reference,
                  labels=None, mode: str = "mean", region: str = "border", steps=None, n_controls: int = 2,
                  batch_size: int = 8, n_boot: int = 1000, seed: int = 0, norms: dict | None = None) -> pd.DataFrame:
    """The top-k PANs by border score (:func:`padlib.experiments.ch3_controls.ranking`), k in ``steps`` (default
    :func:`~padlib.experiments.ch3_controls.dose_steps`: 1, 8, 64 and all), each ablated (``mode``/``region``)
    beside ``n_controls`` controls matched on size as closely as each layer's non-PAN channels allow (nearest in
    log size, no caliper, so the extreme PANs keep their place; the achieved size ratio is reported). One row per k
    and metric (kl, perturbation): the PAN value, the controls' mean, the paired bootstrap difference and relative
    excess (PANs / controls - 1) over images, the PANs ablated (fewer than k only where a layer runs out of non-PAN
    channels) and the size ratio controls / PANs."""
    pans = ranking(table[table["is_pan"].astype(bool)])
    steps = dose_steps(len(pans)) if steps is None else [int(k) for k in steps]
    sizes = channel_sizes(perturbations, mode, region)
    rows = []
    for k in steps:
        top = pans.head(k)
        matched, controls = matched_control(table, sizes, pans=top, k=n_controls, seed=seed, caliper=None)
        if matched.empty:
            continue
        study = pan_ablation(model, images, {(mode, region): matched}, {(mode, region): controls}, (mode,), (region,),
                             means, reference, labels, batch_size, n_boot, seed, False, norms=norms,
                             perturbations=perturbations, control_kind="matched")
        balance = matching_balance(k, matched, controls)
        for r in study.comparison.itertuples():
            if r.metric in ("kl", "perturbation"):
                rows.append({**r._asdict(), "k": k, "pans_ablated": len(matched),
                             "size_ratio": balance["size_ratio"]})
    out = pd.DataFrame(rows)
    return out.drop(columns=["Index"]) if "Index" in out else out


def _add_metric(ev: Evaluation, metric: str, values, n_boot: int, seed: int) -> None:
    """Attach a per-image metric (and its summary row with a bootstrap interval) to an evaluation."""
    v = np.asarray(values, dtype=float)
    ev.per_image[metric] = v
    lo, hi = bootstrap_ci(v, n_boot, seed)
    row = pd.DataFrame([{"metric": metric, "value": float(v.mean()), "ci_low": lo, "ci_high": hi, "n": len(v)}])
    ev.summary = pd.concat([ev.summary, row], ignore_index=True)




def _mean_difference(v, c, axis=-1):
    """PAN mean minus the mean of the controls' means; ``v`` (images), ``c`` (controls, images)."""
    return v.mean(axis) - c.mean(axis).mean(0)


def _mean_excess(v, c, axis=-1):
    """PAN mean relative to the mean of the controls' means, minus 1 (+0.5: half as large again)."""
    return v.mean(axis) / c.mean(axis).mean(0) - 1


def _ratio_difference(pn, pd_, cn, cd, axis=-1):
    """PAN ratio of means minus the mean of the controls' ratios; arrays paired by image along ``axis``."""
    return pn.mean(axis) / pd_.mean(axis) - (cn.mean(axis) / cd.mean(axis)).mean(0)


def _ratio_excess(pn, pd_, cn, cd, axis=-1):
    """PAN ratio of means relative to the mean of the controls' ratios, minus 1."""
    return pn.mean(axis) / pd_.mean(axis) / (cn.mean(axis) / cd.mean(axis)).mean(0) - 1


def _test_columns(arrays, difference, excess, n_boot: int, seed: int) -> dict:
    """The paired bootstrap's columns of a comparison row: the difference PAN - controls with its interval and p,
    and the same as a relative excess (PAN / controls - 1) with its interval (same resamples, same p)."""
    diff, lo, hi, p = bootstrap_test(arrays, difference, n_boot, seed)
    rel, rel_lo, rel_hi, _ = bootstrap_test(arrays, excess, n_boot, seed)
    return {"difference": diff, "diff_ci_low": lo, "diff_ci_high": hi, "p": p, "p_floor": at_floor(p, n_boot),
            "excess": rel, "excess_ci_low": rel_lo, "excess_ci_high": rel_hi}


def at_floor(p: float, n_boot: int) -> bool:
    """Whether a :func:`bootstrap_test` p is its smallest possible value, 2 / (n_boot + 1) (no resample on the
    other side of 0): then the true p is at most that."""
    return bool(np.isfinite(p) and p <= 2 / (int(n_boot) + 1) + 1e-12)


def _ratio_of_means_row(pan: Evaluation, ctrls: list, num: str, den: str, n_boot: int, seed: int) -> dict:
    """PAN vs controls on mean(num) / mean(den), with a paired bootstrap over images of the difference
    (PAN ratio - mean of the controls' ratios) and of the relative excess (PAN ratio / controls' - 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pn, pd_ = (pan.per_image[c].to_numpy(dtype=float) for c in (num, den))
        row = {"pans": float(pn.mean() / pd_.mean()), "n_controls": len(ctrls), "n_images": len(pn)}
        if ctrls:
            cn = np.stack([ev.per_image[num].to_numpy(dtype=float) for ev in ctrls])
            cd = np.stack([ev.per_image[den].to_numpy(dtype=float) for ev in ctrls])
            cm = cn.mean(1) / cd.mean(1)
            row.update({"controls_mean": float(cm.mean()), "controls_min": float(cm.min()),
                        "controls_max": float(cm.max()),
                        **_test_columns((pn, pd_, cn, cd), _ratio_difference, _ratio_excess, n_boot, seed),
                        "controls_below_pans": int((cm < row["pans"]).sum()),
                        "controls_above_pans": int((cm > row["pans"]).sum())})
    return row


COMPARISON_COLUMNS = ["mode", "region", "metric", "pans", "n_controls", "n_images"]  # also when no PAN was ablated


def _pan_vs_controls(evaluations: dict, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    conditions = sorted({(m, r) for (_, _, m, r) in evaluations})
    for mode, region in conditions:
        pan = evaluations.get(("PANs", -1, mode, region))
        ctrls = [ev for (kind, _, m, r), ev in evaluations.items() if kind != "PANs" and (m, r) == (mode, region)]
        if pan is None:
            continue
        for metric in ("agreement", "kl", "confidence_change", "top1_accuracy", "perturbation"):
            if metric not in pan.per_image:
                continue
            v = pan.per_image[metric].to_numpy(dtype=float)
            row = {"mode": mode, "region": region, "metric": metric, "pans": float(v.mean()),
                   "n_controls": len(ctrls), "n_images": len(v)}
            if ctrls:
                c = np.stack([ev.per_image[metric].to_numpy(dtype=float) for ev in ctrls])
                cm = c.mean(1)
                row.update({"controls_mean": float(cm.mean()), "controls_min": float(cm.min()),
                            "controls_max": float(cm.max()),
                            **_test_columns((v, c), _mean_difference, _mean_excess, n_boot, seed),
                            "controls_below_pans": int((cm < v.mean()).sum()),
                            "controls_above_pans": int((cm > v.mean()).sum())})
            rows.append(row)
        if "perturbation" in pan.per_image and all("perturbation" in ev.per_image for ev in ctrls):
            rows.append({"mode": mode, "region": region, "metric": "kl_per_perturbation",
                         **_ratio_of_means_row(pan, ctrls, "kl", "perturbation", n_boot, seed)})
    if not rows:  # typed columns, so a model without PANs concatenates with the others without turning them to object
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("mode", "region", "metric") else float)
                             for c in COMPARISON_COLUMNS})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# The chapter's per-model run: one PAN scan, every intervention, batch evaluations reused


@dataclass
class ModelAblation:
    """Everything chapter 3 measures on one model (see :func:`ablation_report`)."""

    model: str
    table: pd.DataFrame  # the find_pans table (every channel of every padded conv)
    controls: pd.DataFrame
    reference: Evaluation
    study: AblationStudy
    padding: dict
    sizes: dict
    border: pd.DataFrame
    n_images: int
    labelled: bool
    seconds: dict = field(default_factory=dict)
    n_scan: int = 0  # probe images the PAN scan read (the PAN count depends on it)
    evenness: pd.DataFrame = field(default_factory=pd.DataFrame)  # uneven padding layers per input size
    balance: pd.DataFrame = field(default_factory=pd.DataFrame)  # per mode/region: PANs matched, size ratio
    dose: pd.DataFrame = field(default_factory=pd.DataFrame)  # top-k PANs against matched controls
    readout: pd.DataFrame = field(default_factory=pd.DataFrame)  # border-distance readout rows

    @property
    def pans(self) -> pd.DataFrame:
        return self.table[self.table.is_pan]

    def interventions(self) -> dict:
        """``{label: Evaluation}`` for every intervention: 'PANs zero/all', 'matched zero/all #0', ...,
        'reflect padding', 'size 225'."""
        out = {}
        for (kind, control, mode, region), ev in self.study.evaluations.items():
            out[f"{kind} {mode}/{region}" + (f" #{control}" if kind != "PANs" else "")] = ev
        out.update({f"{mode} padding": ev for mode, ev in self.padding.items()})
        out.update({f"size {size}": ev for size, ev in self.sizes.items() if size != "reference"})
        return out


def ablation_report(model, n_images: int = 32, n_scan: int = 32, seed: int = 0, image_dir=None,
                    labelled_dir=None, class_index=None, n_controls: int = 5, modes=ABLATION_MODES,
                    regions=ABLATION_REGIONS, paddings=("reflect", "replicate", "circular"), sizes=(225, 226),
                    base_size: int = 224, shifts=(32,), border_ablation=("mean", "border"), size: int | None = None,
                    batch_size: int = 8, n_boot: int = 1000, device="cpu", progress: bool = True,
                    scan_options: dict | None = None, channels_last: bool = True, caliper: float | None = 1.2,
                    dose_steps=None, n_dose_controls: int = 2, readout: bool = True) -> ModelAblation:
    """Chapter 3 on one model: scan PANs once, then every intervention against the intact model.

    PANs come from :func:`padlib.pans.find_pans` on ``n_scan`` probe images (seed ``seed``), whose table also
    gives the probe-set means (:func:`means_from_scan`, no second pass). The intact model's forward on the
    evaluation images is made once: it gives the reference logits and the size of every ablation of every
    channel of the PAN layers (:func:`ablation_perturbations`). The controls are matched on that size, per
    ablation mode and region (:func:`padlib.experiments.ch3_controls.matched_control`, ``caliper``): each PAN
    gets a non-PAN channel of its layer whose ablation is as large, ``n_controls`` times, and only the PANs
    matched in every draw are compared (``balance`` says how many). ``border_ablation`` (mode, region) also
    gets the top-k dose-response (:func:`dose_response`, ``dose_steps``, ``n_dose_controls``) and is the ablation
    of the border-sensitivity runs. With ``readout``, the border-distance readout of the PANs against
    layer-and-count-matched channels and against random initialisation
    (:func:`padlib.experiments.ch3_controls.border_readout`). The interventions are evaluated on ``n_images``
    other images: held-out random crops of the offline photos (seed ``seed + 1``), centre crops of
    ``image_dir``, or, with ``labelled_dir``, a labelled folder (then accuracy is reported too). ``sizes``: the
    even-padding size and its control (225 and 226 share every feature-map size; 223 would not). Each image set
    is rendered once and every evaluation reuses the intact model's logits. ``size``: the image size (default:
    the model's own). ``channels_last``: run the evaluations (after the scan, forward passes only) in
    channels-last memory format, 10-35% faster on CPU for these depthwise-conv models
    (:func:`padlib.models.channels_last_inference`); the weights' values are unchanged and the model is returned
    to the default format at the end.
    """
    import time

    seconds = {}
    t0 = time.perf_counter()
    if isinstance(model, str):
        model = load_model(model, device=device)
    name = getattr(model, "padlib_name", type(model).__name__)
    # every evaluation keeps its logits for all images: refused before any work when that would not fit
    n_dose = len(dose_steps or (1, 8, 64)) + 1
    evaluations = (len(modes) * len(regions) * (1 + n_controls) + n_dose * (1 + n_dose_controls) + len(paddings)
                   + len(sizes or ()) + 3)
    check_run_memory(model, "ablation", n_images, size or preprocessing(model).input_size, batch_size, device,
                     evaluations=evaluations, ablations=len(modes) * len(regions))
    where, kind, shape = output_info(model, size or preprocessing(model).input_size, device=device)
    if kind != "logits":  # the study's measures are classes (top-1, KL, movers): refused before any work
        raise PadlibError(f"the ablation study compares class logits; {name}'s output {output_words(where, kind, shape)} "
                          "is a dense map: padlib report compares dense maps (per-pixel agreement, relative change)")
    if labelled_dir:  # built first (cheap, lazy) so that a bad folder fails before the scan
        evalset = labelled_images(labelled_dir, class_index, n=n_images, model=model, size=size, seed=seed)
    else:
        evalset = probe_images(n_images, size=size, seed=seed + 1, image_dir=image_dir, model=model)
    probe = probe_images(n_scan, size=size, seed=seed, image_dir=image_dir, model=model)
    table = find_pans(model, probe, batch_size=batch_size, progress=progress, device=device, **(scan_options or {}))
    pans = table[table.is_pan]
    layers = sorted(set(pans["layer"]))
    means = means_from_scan(table, model, layers) if layers else {}  # the scan's interior means: no extra pass
    norms = _table_norms(table)
    seconds["scan"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels = getattr(evalset, "labels", None) or None
    x = evalset.tensor(device=device) if len(evalset) <= 1024 else evalset
    if channels_last and isinstance(x, torch.Tensor):
        x = x.contiguous(memory_format=torch.channels_last)
    with channels_last_inference(model, channels_last):  # forward passes only, weights restored
        # one forward of the intact model gives its logits and the size of every ablation (per image, channel)
        perturbations = ablation_perturbations(model, x, table, means, layers=layers, batch_size=batch_size,
                                               device=device)
        reference = compare_logits(perturbations.logits, None, labels, n_boot, seed)
        matched, controls, balance = {}, {}, []
        for mode in modes:
            for region in regions:
                if not layers:
                    break
                m, c = matched_control(table, channel_sizes(perturbations, mode, region), k=n_controls, seed=seed,
                                       caliper=caliper)
                matched[(mode, region)], controls[(mode, region)] = m, c
                balance.append({"mode": mode, "region": region, "caliper": caliper,
                                **matching_balance(len(pans), m, c)})
        seconds["reference"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        study = pan_ablation(model, x, matched, controls, modes, regions, means, reference.logits, labels, batch_size,
                             n_boot, seed, progress, norms=norms, perturbations=perturbations, control_kind="matched")
        mode, region = border_ablation
        dose = (dose_response(model, x, table, perturbations, means, reference.logits, labels, mode, region,
                              dose_steps, n_dose_controls, batch_size, n_boot, seed, norms) if layers
                else pd.DataFrame())
        seconds["ablation"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        padding = padding_interventions(model, x, paddings, reference.logits, labels, batch_size, n_boot, seed,
                                        progress)
        size_results = size_interventions(model, evalset, sizes, base_size, reference.logits, batch_size, n_boot, seed,
                                          progress) if sizes else {}
        seconds["padding"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        border = [border_sensitivity(model, x, shifts, reference=reference, batch_size=batch_size, n_boot=n_boot,
                                     seed=seed).assign(channels="intact")]
        primary = controls.get((mode, region), pd.DataFrame(columns=["control", "layer", "channel"]))
        choices = [("PANs ablated", matched.get((mode, region), pans.iloc[:0]),
                    study.evaluations.get(("PANs", -1, mode, region)))]
        if len(primary):
            choices.append(("matched ablated", primary[primary.control == 0],
                            study.evaluations.get(("matched", 0, mode, region))))
        for label, chosen, unshifted in choices:  # the study already has these ablations' unshifted logits
            if len(chosen):
                with ablate_channels(model, chosen[["layer", "channel"]], mode, region, means=means, norms=norms):
                    border.append(border_sensitivity(model, x, shifts, reference=unshifted, batch_size=batch_size,
                                                     n_boot=n_boot, seed=seed).assign(channels=label))
        seconds["border"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        readout_rows = (border_readout(model, evalset, table, probe, k=n_controls, seed=seed, batch_size=batch_size,
                                       device=device, x=x) if readout and layers else pd.DataFrame())
        seconds["readout"] = time.perf_counter() - t0
    return ModelAblation(name, table, primary, reference, study, padding, size_results,
                         pd.concat(border, ignore_index=True), len(evalset), labels is not None, seconds,
                         len(probe), padding_evenness(model, [evalset.size, base_size, *sizes]),
                         pd.DataFrame(balance), dose, readout_rows)


def is_control(label: str) -> bool:
    """Whether an intervention label names a control set ('matched mean/border #0', 'random zero/all #3')."""
    return str(label).split(" ")[0] in CONTROL_KINDS


def padding_evenness(model: nn.Module, sizes) -> pd.DataFrame:
    """Per input size, how many padding layers read their padding unevenly (chapter 4's traced audit)."""

    rows = []
    for size in dict.fromkeys(int(s) for s in sizes):
        summary = audit_summary(padding_audit(model, size))
        rows.append({"size": size, "padding_layers": summary["n_padding_layers"], "uneven": summary["n_uneven"],
                     "unread_sides": summary["unread_sides"], "extra_sides": summary["extra_sides"]})
    return pd.DataFrame(rows)


def report_tables(reports) -> dict[str, pd.DataFrame]:
    """Tidy tables over models from :func:`ablation_report` results (a dict or list).

    Keys: 'pans' (PAN and channel counts), 'ablation' (every run and metric), 'comparison' (matched PANs vs their
    size-matched controls), 'interventions' (padding swaps, sizes and the PAN ablations, one row per metric),
    'border', 'seconds', 'evenness', 'balance' (per ablation: PANs matched and the controls' size ratio), 'dose'
    (top-k PANs vs matched controls) and 'readout' (the border-distance readout's rows).
    """
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    pans, ablation, comparison, interventions, border, seconds, evenness = [], [], [], [], [], [], []
    balance, dose, readout = [], [], []
    for r in reports:
        t = r.table
        pans.append({"model": r.model, "padded_convs": t["layer"].nunique(), "channels": len(t),
                     "pans": int(t["is_pan"].sum()),
                     # the older definition's set (padding-caused alone), of which the learned PANs are a part
                     "padding_caused": int(t["padding_caused"].sum()) if "padding_caused" in t
                     else int(t["is_pan"].sum()),
                     "control_channels": int(r.controls.groupby("control").size().min()) if len(r.controls) else 0,
                     "pan_layers": r.pans["layer"].nunique(),
                     "share": float(t["is_pan"].mean()), "scan_images": r.n_scan, "eval_images": r.n_images})
        ablation.append(r.study.summary.assign(model=r.model))
        comparison.append(r.study.comparison.assign(model=r.model))
        evs = {k: v for k, v in r.interventions().items() if not is_control(k)}
        interventions.append(intervention_table(evs).assign(model=r.model))
        border.append(r.border.assign(model=r.model))
        evenness.append(r.evenness.assign(model=r.model))
        seconds.append({"model": r.model, **{k: round(v, 1) for k, v in r.seconds.items()}})
        balance.append(r.balance.assign(model=r.model))
        dose.append(r.dose.assign(model=r.model))
        readout.append(r.readout.assign(model=r.model))
    if reports and reports[0].labelled:
        interventions.append(pd.concat([_tidy({"intact": r.reference}, ("intervention",)).assign(model=r.model)
                                        for r in reports]))
    return {"pans": pd.DataFrame(pans), "ablation": pd.concat(ablation, ignore_index=True),
            "comparison": pd.concat(comparison, ignore_index=True),
            "interventions": pd.concat(interventions, ignore_index=True),
            "border": pd.concat(border, ignore_index=True), "seconds": pd.DataFrame(seconds),
            "evenness": pd.concat(evenness, ignore_index=True), "balance": pd.concat(balance, ignore_index=True),
            "dose": pd.concat(dose, ignore_index=True), "readout": pd.concat(readout, ignore_index=True)}


def pan_set_change(pans: pd.DataFrame) -> str:
    """One sentence per model: how many of the padding-caused channels (the older PAN definition) are learned
    PANs, the set this chapter ablates (``report_tables(...)["pans"]``)."""
    lines = []
    for _, r in pans.iterrows():
        kept = 100.0 * r.pans / max(r.padding_caused, 1)
        scan = f" (found on {r.scan_images} probe images)" if r.get("scan_images", 0) else ""
        lines.append(f"{r.model}: {r.pans} learned PANs{scan} ablated, of {r.padding_caused} padding-caused channels "
                     f"(the older definition; {kept:.1f}% kept, {r.padding_caused - r.pans} dropped as within what "
                     f"random initialisation gives).")
    return "\n".join(lines)


def movers_across_models(reports, k: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(top movers per model and intervention, cross-model consistency per intervention family).

    Consistency: the Pearson correlation of two models' per-class probability-mass changes, per model pair;
    the controls form a family of their own ('matched zero/all' pooling #0..#k), the null for
    'characteristic' biases.
    """
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    evs = {(r.model, label): ev for r in reports for label, ev in r.interventions().items()}
    movers = top_movers({k_: v for k_, v in evs.items() if not is_control(k_[1])}, k=k)
    consistency = mover_consistency(evs)
    consistency["family"] = consistency["intervention"].astype(str).str.replace(r" #\d+$", "", regex=True)
    return movers, consistency


def _probability_changes(ev: Evaluation, reference: torch.Tensor) -> np.ndarray:
    """(images, classes) change of each image's class probabilities from the reference logits to ``ev``'s."""
    return (torch.softmax(ev.logits.double(), -1) - torch.softmax(reference.double(), -1)).numpy()


def _rowwise_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows of two (..., classes) arrays (NaN where a row is constant)."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def mover_excess(reports, mode: str = "mean", region: str = "border", n_boot: int = 1000, seed: int = 0) -> dict:
    """Are the PAN ablation's class movers shared across models beyond what random-channel ablations give?

    Per model, each image's change of class probabilities (intervention - intact) is summed over images (the
    per-class probability-mass change of :func:`padlib.interventions.mover_consistency`); two models' sums are
    correlated over the classes, for every model pair. The statistic is the mean correlation over pairs of the PAN
    ablation (``mode``/``region``) minus the mean over pairs and controls of the random controls' (control #k of
    one model paired with #k of the other), the null for a characteristic bias. Its interval and p come from a
    bootstrap over the evaluation images (:func:`bootstrap_test`: the same resampled images for every model and
    intervention). Returns the PAN and null means, the difference with its interval and p, and the counts; NaN
    statistics with fewer than two models or no controls."""
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    out = {"ablation": f"{mode}/{region}", "n_models": len(reports), "n_pairs": len(reports) * (len(reports) - 1) // 2,
           "n_images": reports[0].n_images if reports else 0, "models": ", ".join(r.model for r in reports)}
    pan_key = ("PANs", -1, mode, region)
    kinds = {k[0] for r in reports for k in r.study.evaluations if k[0] != "PANs" and k[2:] == (mode, region)}
    kind = next(iter(sorted(kinds)), "matched")
    keys = sorted({k[1] for r in reports for k in r.study.evaluations if k[0] == kind and k[2:] == (mode, region)})
    keys = [c for c in keys if all((kind, c, mode, region) in r.study.evaluations for r in reports)]
    usable = len(reports) >= 2 and keys and all(pan_key in r.study.evaluations for r in reports)
    if not usable:
        return {**out, "n_controls": len(keys), "pans": float("nan"), "null": float("nan"), "difference": float("nan"),
                "ci_low": float("nan"), "ci_high": float("nan"), "p": float("nan"), "p_floor": False}
    # (interventions: PANs then each control, models, images, classes)
    changes = np.stack([np.stack([_probability_changes(r.study.evaluations[key], r.reference.logits) for r in reports])
                        for key in [pan_key] + [(kind, c, mode, region) for c in keys]])
    pairs = [(i, j) for i in range(len(reports)) for j in range(i + 1, len(reports))]

    def statistic(x, axis=-1):
        # x: (interventions, models, classes, [resamples,] images) -> mass (interventions, models, [resamples,] classes)
        mass = np.moveaxis(x.sum(axis), 2, -1)
        r = np.stack([_rowwise_correlation(mass[:, i], mass[:, j]) for i, j in pairs])  # (pairs, interventions, ...)
        return r[:, 0].mean(0) - r[:, 1:].mean((0, 1))

    def means(x):
        mass = x.sum(-1)
        r = np.stack([_rowwise_correlation(mass[:, i], mass[:, j]) for i, j in pairs])
        return float(r[:, 0].mean()), float(r[:, 1:].mean())

    x = np.moveaxis(changes, 2, -1)  # images last: the resampled unit
    difference, low, high, p = bootstrap_test((x,), statistic, n_boot, seed)
    pans, null = means(x)
    return {**out, "n_controls": len(keys), "pans": pans, "null": null, "difference": difference, "ci_low": low,
            "ci_high": high, "p": p, "p_floor": at_floor(p, n_boot)}


def consistent_movers(movers: pd.DataFrame, min_models: int = 2) -> pd.DataFrame:
    """Classes that move the same way under the same intervention in at least ``min_models`` models."""
    if movers.empty:
        return movers.assign(models=[])
    g = movers.groupby(["intervention", "direction", "class_name"])
    out = g.agg(models=("model", "nunique"), total_change=("count_change", "sum"),
                which=("model", lambda m: ", ".join(sorted(set(m))))).reset_index()
    return out[out["models"] >= min_models].sort_values(["models", "total_change"], ascending=[False, False])


def chapter_summary(tables: dict, metric: str = "kl", padding: str = "reflect", even: int = 225,
                    control: int = 226) -> pd.DataFrame:
    """One row per model, one metric (from :func:`report_tables`): the PAN ablations next to the mean of
    their random controls, the padding swap and the two sizes, so their magnitudes can be compared."""
    comp = tables["comparison"][tables["comparison"]["metric"] == metric]
    inter = tables["interventions"][tables["interventions"]["metric"] == metric]
    rows = []
    for model in dict.fromkeys(tables["pans"]["model"]):
        row = {"model": model}
        for r in comp[comp["model"] == model].itertuples():
            row[f"PANs {r.mode}/{r.region}"] = r.pans
            row[f"matched {r.mode}/{r.region}"] = getattr(r, "controls_mean", float("nan"))
        values = inter[inter["model"] == model].set_index("intervention")["value"]
        for label in (f"{padding} padding", f"size {even}", f"size {control}"):
            if label in values:
                row[label] = float(values[label])
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")

