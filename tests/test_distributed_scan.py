"""The PAN scan under torchrun: several processes, each its share of the batches, give the one-process result.

The acceptance of the mergeable statistics: a 2-process ``torchrun`` scan (CPU, gloo) equals the 1-process scan,
same PANs and every numeric column within 1e-5 relative; so does ``padlib.find_pans`` inside a user's own
distributed script, and the mean feature maps. Without a process group nothing changes and no collective is called.
"""
import os
import pickle
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from torch import nn

from padlib import _distributed as D
from padlib import _pan_stream as S
from padlib import cli
from padlib import pans as P

REPO = Path(__file__).resolve().parents[1]
RTOL = 1e-5  # the tolerance; measured: about 2e-7 (float32 sums of squares re-centred in float64)


def _need_gloo():
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(args, cwd, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"torchrun failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


def assert_tables_match(got: pd.DataFrame, want: pd.DataFrame) -> float:
    """Same columns and rows; verdicts, labels and counts identical; numbers within RTOL relative (NaN where NaN).
    Returns the largest relative difference of the numbers."""
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    worst = 0.0
    for c in want.columns:
        a, b = got[c].to_numpy(), want[c].to_numpy()
        if want[c].dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12, equal_nan=True, err_msg=c)
            ok = np.isfinite(b) & (np.abs(b) > 1e-9)
            if ok.any():
                worst = max(worst, float((np.abs(a[ok] - b[ok]) / np.abs(b[ok])).max()))
        else:
            assert (pd.Series(a).astype(str).to_numpy() == pd.Series(b).astype(str).to_numpy()).all(), c
    return worst


# ---------------------------------------------------------------------------------------------------------
# Alone: the helpers are the identity, and the scan calls no collective.

def test_merge_helpers_without_a_process_group():
    assert not dist.is_initialized()
    assert D.world() == (0, 1) and D.is_main()
    assert D.shard(10, 3) == list(range(10)) and list(D.shard_batches(4)) == [0, 1, 2, 3]
    x = torch.arange(6, dtype=torch.float32).view(2, 3)
    out = D.all_reduce_sum({"a": x, "b": {"n": 3}})
    assert out["a"].dtype == torch.float64 and torch.equal(out["a"], x.double()) and out["b"] == {"n": 3.0}
    out["a"] += 1
    assert x[0, 0] == 0  # a copy, never the caller's tensor
    assert torch.equal(D.all_reduce(x, "max"), x.double())
    with pytest.raises(ValueError):
        D.all_reduce(x, "mean")
    assert D.all_gather_objects({"k": 1}) == [{"k": 1}] and D.broadcast_object("x") == "x"
    with D.process_group("cpu") as device:  # not launched by torchrun: no group is made
        assert device == "cpu" and not dist.is_initialized()


def test_shards_are_whole_batches_dealt_round_robin(monkeypatch):
    seen = []
    for rank in range(3):
        monkeypatch.setattr(D, "world", lambda rank=rank: (rank, 3))
        seen.append(D.shard(11, 2))
    assert seen[1] == [2, 3, 8, 9]  # batches 1 and 4 of [0,1] [2,3] [4,5] [6,7] [8,9] [10]
    assert sorted(i for s in seen for i in s) == list(range(11))


def test_variance_sums_recentred_on_one_reference_merge_exactly():
    """Two halves of the batches streamed apart, re-centred on the first half's reference and added, give the
    one-stream sums and the same layer table (the one statistic of the stream that is not a plain sum)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(16, 3, 12, 12) * 2 + 1
    ws = S._Workspace()

    @torch.no_grad()
    def run(batches):
        st = S._LayerStats("c", 0, conv, selectivity=False)
        for b in batches:
            st.update(b, conv(b), ws)
        return st

    parts = x.split(4)
    a, b, whole = run(parts[0::2]), run(parts[1::2]), run(parts)
    assert not torch.equal(a.int_ref, b.int_ref)
    for st in (a, b):
        st.recentre(a.int_ref)
    merged = {k: a.sums()[k] + b.sums()[k] for k in a.sums()}
    a.load_sums(merged)
    for k, v in whole.sums().items():
        # float32 batch sums: equal to their rounding
        torch.testing.assert_close(torch.as_tensor(merged[k]), torch.as_tensor(v), rtol=1e-6, atol=1e-9)
    fa, fw = S._layer_frame(a, None, 1)[0], S._layer_frame(whole, None, 1)[0]
    for k in ("interior_std", "z_top", "effect_left", "zpred_bottom", "interior_mean"):
        np.testing.assert_allclose(fa[k], fw[k], rtol=1e-6, atol=1e-12, err_msg=k)


def test_one_process_without_torch_distributed_is_unchanged(monkeypatch):
    """No process group: every stream is the one-process code path (no collective may be called) and the result
    is deterministic. (Against the commit before the distributed scan, planted and mobilenet_v2 tables were
    compared bit for bit when this was written.)"""
    def refuse(*args, **kwargs):
        raise AssertionError("a collective was called without a process group")

    for name in ("all_reduce", "all_gather_object", "broadcast_object_list", "init_process_group"):
        monkeypatch.setattr(dist, name, refuse)
    from padlib.experiments.smallnets import vgg_small

    torch.manual_seed(0)
    model = vgg_small(in_channels=3, width=8, depth=2, batch_norm=True)
    x = torch.randn(20, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    first = P.scan_pans(model, x, batch_size=6, progress=False, definition="learned")
    again = P.scan_pans(model, x, batch_size=6, progress=False, definition="learned")
    pd.testing.assert_frame_equal(first.table, again.table, check_exact=True)
    pd.testing.assert_frame_equal(first.reference, again.reference, check_exact=True)
    assert not dist.is_initialized()


def test_other_commands_are_refused_under_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["models"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "only 'padlib scan' (its images) and 'padlib train' / 'train-detector'" in err


# ---------------------------------------------------------------------------------------------------------
# Two processes under torchrun.

def test_torchrun_scan_command_equals_the_one_process_scan(tmp_path, capsys):
    """``torchrun --nproc_per_node 2 -m padlib scan`` (4 batches of 2 at 64 px, 2 per process): the same table as
    ``padlib scan`` in one process, written and printed once, by rank 0."""
    _need_gloo()
    args = ["scan", "mobilenet_v2", "--images", "8", "--size", "64", "--batch-size", "2"]
    r = _torchrun(["-m", "padlib", *args, "--out", str(tmp_path / "two.csv")], tmp_path)
    assert r.stdout.count("wrote 3712 rows") == 1 and "scanned by 2 processes" in r.stdout
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (OMP_NUM_THREADS=1): float32 kernels round by thread count
    try:
        assert cli.main([*args, "--out", str(tmp_path / "one.csv")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "scanned by" not in capsys.readouterr().out
    two, one = pd.read_csv(tmp_path / "two.csv"), pd.read_csv(tmp_path / "one.csv")
    assert one.is_pan.sum() > 0 and (two.is_pan == one.is_pan).all()
    assert assert_tables_match(two, one) < RTOL


USER_SCRIPT = r'''
import os, pickle, sys
import torch
import torch.distributed as dist
import padlib
from padlib.experiments.smallnets import vgg_small
from padlib.pans import random_init_scan, recalibrate_batchnorm


def work():
    torch.manual_seed(0)
    model = vgg_small(in_channels=3, width=8, depth=2, batch_norm=True)
    x = torch.randn(40, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    recalibrate_batchnorm(model, x, batch_size=8)  # as if trained: the reference copies are recalibrated too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = {
        # 7 batches (the last of 4): ranks get 4 and 3; the selectivity reference spans both ranks' batches
        "scan": padlib.find_pans(model, x, batch_size=6, progress=False),
        "control": random_init_scan(model, x, seed=3, batch_size=6).table,
        # one batch: rank 1 scans nothing and still merges
        "few": padlib.find_pans(model, x[:3], batch_size=4, progress=False, reference=None, tau=2.0,
                                definition="padding"),
    }
    # mean feature maps: batches dealt round-robin to 3 splits, with flips; and whole groups of 4 images per split
    fm = padlib.mean_feature_maps(model, x, splits=3, flips=True, batch_size=6, progress=False)
    grouped = padlib.mean_feature_maps(model, x, splits=2, groups=[i // 4 for i in range(40)], batch_size=3,
                                       progress=False)
    out["maps"] = {(kind, k): v for kind, f in (("flips", fm), ("grouped", grouped))
                   for k, v in [*f.maps.items(), *((("split", l), m) for l, m in f.split_maps.items()),
                                (("n",), f.n)]}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    return out


if __name__ == "__main__":
    dist.init_process_group("gloo")
    out = work()
    assert dist.is_initialized()  # the user's group is left alone
    with open(os.path.join(sys.argv[1], f"rank{dist.get_rank()}.pkl"), "wb") as f:
        pickle.dump(out, f)
    dist.destroy_process_group()
'''


def test_find_pans_in_a_users_distributed_script(tmp_path):
    """A script that initialises gloo itself and calls ``padlib.find_pans`` (and the random-init control, whose
    BatchNorm is recalibrated, and ``padlib.mean_feature_maps``): every rank gets the same tables and maps, equal to
    one process's."""
    _need_gloo()
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    _torchrun([str(script), str(tmp_path)], tmp_path)
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(2)]
    alone = runpy.run_path(str(script), run_name="padlib_test")["work"]()
    maps = alone.pop("maps")
    assert maps.keys() == ranks[0]["maps"].keys() == ranks[1]["maps"].keys()
    for key, want in maps.items():  # float64 sums of float32 maps: equal to rounding of the last bit
        np.testing.assert_array_equal(ranks[0]["maps"][key], ranks[1]["maps"][key])
        np.testing.assert_allclose(ranks[0]["maps"][key], want, rtol=1e-12, atol=0, err_msg=str(key))
    for key, want in alone.items():
        pd.testing.assert_frame_equal(ranks[0][key], ranks[1][key], check_exact=True)
        assert (ranks[0][key].is_pan == want.is_pan).all(), key
        assert_tables_match(ranks[0][key], want)
    assert alone["scan"].learned.any() and alone["few"].is_pan.any()  # verdicts to agree on, not all False
