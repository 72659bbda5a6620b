"""Memory is bounded by design: a run's needs are estimated before any work and a run that cannot fit is refused in
one line, within a second, without running the model; images stream, and streaming changes no number."""
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import padlib
from padlib import _memory, evaluation, interventions, kernels, model_report, pans, stats

SIZE = 32


def _net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, 2, 1), nn.BatchNorm2d(12), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10)).eval()


def _shapes_only(model):
    """The model refuses real arithmetic: only the shape pass on meta tensors may run it."""
    run = model.forward

    def forward(x):
        if not x.is_meta:
            raise AssertionError("the model was run before the run was refused")
        return run(x)

    model.forward = forward
    return model


def test_report_memory_does_not_grow_with_the_images_beyond_their_logits():
    model = _net()
    small = _memory.estimate_run_bytes(model, "report", 128, SIZE, 16, cache_images=True)
    big = _memory.estimate_run_bytes(model, "report", 100_000, SIZE, 16, cache_images=False)
    assert big.parts["probe images"] == 0 and small.parts["activations"] == big.parts["activations"]
    assert big.parts["per-layer statistics"] == small.parts["per-layer statistics"]
    assert big.parts["logits"] == 100_000 * (3 * 4 * 10 + 200)  # the intact and one intervention's logits
    assert big.total < 64 * 2 ** 20


def test_report_streams_many_images_and_keeps_few_rendered(monkeypatch):
    seen = {}

    def stop(model, what, n, size, batch_size, device, cache_images, **kwargs):
        seen[n] = cache_images
        raise padlib.PadlibError("stop here")

    monkeypatch.setattr(model_report, "check_run_memory", stop)
    for n in (128, 100_000):
        with pytest.raises(padlib.PadlibError, match="stop here"):
            model_report.report(_net(), n, size=SIZE, progress=False)
    assert seen == {128: True, 100_000: False}


@pytest.mark.parametrize("run", ["report", "scan"])
def test_size_10000_is_refused_at_once_without_running_the_model(run, monkeypatch):
    monkeypatch.setenv("PADLIB_MAX_MEMORY_GB", "4")
    model = _shapes_only(_net())
    t = time.perf_counter()
    with pytest.raises(padlib.PadlibError) as err:
        if run == "report":
            model_report.report(model, 64, size=10_000, progress=False)
        else:
            pans.scan_pans(model, 64, size=10_000, progress=False)
    assert time.perf_counter() - t < 5
    msg = str(err.value)
    assert "size 10000 px" in msg and "batch size 16" in msg and "4.0 GB allowed" in msg and "\n" not in msg
    fits = int(msg.split("it fits with size ")[1].split()[0])
    est = _memory.estimate_run_bytes(model, run, 64, fits, 16)
    assert est.total <= 4 * 2 ** 30 < est.with_(size=fits + 1).total


def test_kernels_at_size_10000_trace_shapes_only():
    model = _shapes_only(_net())
    t = time.perf_counter()
    pred = kernels.data_free_pans(model, 2.0, input_size=10_000)
    asym = kernels.mean_kernel_asymmetry(model, 10_000, n_boot=10)
    assert time.perf_counter() - t < 5
    assert set(pred.in_size) == {10_000, 5_000} and len(asym) == 2


def test_refusal_names_what_would_fit():
    model = _net()
    est = _memory.estimate_run_bytes(model, "report", 1000, SIZE, 16)
    limit = est.total - est.parts["logits"] // 2  # half the logits too many: fewer images fit
    with pytest.raises(padlib.PadlibError, match=r"1000 images at size 32 px .* or at most 500 images$"):
        _memory.check_run_memory(model, "report", 1000, SIZE, 16, limit=limit)
    assert _memory.check_run_memory(model, "report", 1000, SIZE, 16, limit=est.total).total == est.total


def test_memory_limit_reads_the_environment(monkeypatch):
    monkeypatch.setenv("PADLIB_MAX_MEMORY_GB", "1.5")
    assert _memory.memory_limit() == int(1.5 * 2 ** 30)
    monkeypatch.setenv("PADLIB_MAX_MEMORY_GB", "lots")
    with pytest.raises(padlib.PadlibError, match="PADLIB_MAX_MEMORY_GB"):
        _memory.memory_limit()
    monkeypatch.delenv("PADLIB_MAX_MEMORY_GB")
    assert _memory.memory_limit() > 2 ** 28


def test_streamed_report_gives_the_same_numbers_as_the_rendered_one(monkeypatch):
    kept = model_report.report(_net(), 8, size=SIZE, progress=False, n_boot=50)
    monkeypatch.setattr(model_report, "IMAGE_CACHE_BYTES", 0)
    streamed = model_report.report(_net(), 8, size=SIZE, progress=False, n_boot=50)
    for key in ("audit", "pan_control", "pan_depth", "strongest", "bias_index", "predictions"):
        pd.testing.assert_frame_equal(getattr(kept, key), getattr(streamed, key), check_exact=True)
    pd.testing.assert_frame_equal(kept.scan.table, streamed.scan.table, check_exact=True)


def test_logits_compared_in_chunks_and_bootstrap_in_batches_give_the_same_numbers(monkeypatch):
    g = torch.Generator().manual_seed(0)
    logits, reference = torch.randn(300, 7, generator=g), torch.randn(300, 7, generator=g)
    labels = torch.randint(0, 7, (300,), generator=g).tolist()
    whole = interventions.compare_logits(logits, reference, labels, n_boot=200)
    monkeypatch.setattr(evaluation, "COMPARE_CHUNK", 7 * 32)  # chunks of 32 images
    monkeypatch.setattr(stats, "BOOTSTRAP_ELEMENTS", 1000)  # resamples in batches of 3
    chunked = interventions.compare_logits(logits, reference, labels, n_boot=200)
    pd.testing.assert_frame_equal(whole.summary, chunked.summary, check_exact=True)
    pd.testing.assert_frame_equal(whole.per_image, chunked.per_image, check_exact=True)
    pd.testing.assert_frame_equal(whole.class_counts, chunked.class_counts, rtol=1e-12)
    assert np.array_equal(whole.logits, chunked.logits)
