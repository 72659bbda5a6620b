"""Several processes, one result: who this process is, which images it scans, and how sums are merged.

padlib never starts a process group by itself. When the caller has initialised ``torch.distributed`` (a user's
own script, or ``padlib scan`` launched by ``torchrun``), the streamed methods split the images among the
processes and merge their sums; otherwise every function here is the one-process identity and no collective is
called. Images are shared out by whole batches: batch ``b`` (images ``b * batch_size`` to ``(b + 1) *
batch_size - 1``, as one process would batch them) goes to rank ``b % world_size``. Keeping the one-process
batches makes the merged result that run's up to the order of float64 additions, also where a batch's own
statistics matter (a BatchNorm recalibrated in train mode normalises each batch by itself).

Only :func:`process_group` (the command line's, under ``torchrun``) initialises and destroys a group.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from datetime import timedelta

import torch

_LOCAL = contextvars.ContextVar("padlib_local", default=False)


def _dist():
    import torch.distributed as dist

    return dist


def world() -> tuple[int, int]:
    """(rank, world size): this process among those of an initialised ``torch.distributed`` group, else (0, 1).
    Inside :func:`local` always (0, 1)."""
    if _LOCAL.get():
        return 0, 1
    dist = _dist()
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """Whether this process prints and writes files: rank 0, or the only process."""
    return world()[0] == 0


@contextlib.contextmanager
def local():
    """Inside the block, this process works alone even in a process group (no sharding, no collective): for
    work that every rank must do on its own, such as scanning one random-init copy on every image."""
    token = _LOCAL.set(True)
    try:
        yield
    finally:
        _LOCAL.reset(token)


def shard_batches(n_batches: int) -> range:
    """The batch numbers this process handles: ``rank, rank + world_size, ...`` below ``n_batches``."""
    rank, size = world()
    return range(rank, n_batches, size)


def shard(n: int, batch_size: int = 1) -> list[int]:
    """The image indices this process handles of ``n`` images batched by ``batch_size``: whole batches, batch
    ``b`` to rank ``b % world_size`` (strided by batches; ``batch_size=1`` strides by image). All of them alone."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [i for b in shard_batches(-(-n // batch_size)) for i in range(b * batch_size, min((b + 1) * batch_size, n))]


def _device() -> torch.device:
    """Where the group's collectives take tensors: the current GPU under NCCL, else the CPU."""
    dist = _dist()
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


_OPS = ("sum", "max", "min")


def all_reduce(values, op: str = "sum"):
    """``values`` (a tensor, a number, or a dict of them, nested) reduced over the processes with ``op`` ("sum",
    "max" or "min"), in float64, one collective for everything; the same structure comes back, float64 tensors
    on each input's device (numbers as floats). Alone: a float64 copy."""
    if op not in _OPS:
        raise ValueError(f"op must be one of {_OPS}, got {op!r}")
    leaves: list = []

    def flatten(v):
        if isinstance(v, dict):
            return {k: flatten(x) for k, x in v.items()}
        t = torch.as_tensor(v).detach()
        leaves.append(t)
        return len(leaves) - 1

    shape = flatten(values)
    if not leaves:
        return values
    rank, size = world()
    if size == 1:
        flat = [t.to(torch.float64, copy=True) for t in leaves]
    else:
        dist = _dist()
        dev = _device()
        packed = torch.cat([t.to(dev, torch.float64).reshape(-1) for t in leaves])
        dist.all_reduce(packed, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
                                    "min": dist.ReduceOp.MIN}[op])
        flat, start = [], 0
        for t in leaves:
            flat.append(packed[start:start + t.numel()].view(t.shape).to(t.device))
            start += t.numel()

    def rebuild(s, original):
        if isinstance(s, dict):
            return {k: rebuild(x, original[k]) for k, x in s.items()}
        t = flat[s]
        return t if isinstance(original, torch.Tensor) else float(t)

    return rebuild(shape, values)


def all_reduce_sum(values):
    """:func:`all_reduce` with ``op="sum"``: the sums and counts of every process added up, float64."""
    return all_reduce(values, "sum")


def all_gather_objects(obj) -> list:
    """Every process's ``obj`` (picklable; tensors travel on the CPU), in rank order. Alone: ``[obj]``."""
    rank, size = world()
    if size == 1:
        return [obj]
    out = [None] * size
    _dist().all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every process. Alone: ``obj``."""
    rank, size = world()
    if size == 1:
        return obj
    box = [obj if rank == src else None]
    _dist().broadcast_object_list(box, src=src)
    return box[0]


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that ``torchrun`` started (``WORLD_SIZE`` above 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


@contextlib.contextmanager
def process_group(device="cpu", timeout_s: float = 1800):
    """For the command line: under ``torchrun`` (``WORLD_SIZE`` > 1) and with no group yet, initialise one from the
    environment (gloo on the CPU, NCCL on CUDA, each rank on GPU ``LOCAL_RANK``) and destroy it on leaving; yields
    the device this rank runs on. Otherwise does nothing and yields ``device``."""
    dist = _dist()
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield device
        return
    from .errors import PadlibError

    cuda = torch.device(device).type == "cuda"
    if not dist.is_available() or not (dist.is_nccl_available() if cuda else dist.is_gloo_available()):
        raise PadlibError(f"launched by torchrun but this torch has no {'NCCL' if cuda else 'gloo'} backend; "
                          "run the command in one process")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    try:
        yield device
    finally:
        dist.destroy_process_group()
