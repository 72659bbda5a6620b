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


# ---------------------------------------------------------------------------------------------------------
# BatchNorm over the global batch, on any device

class _SummedOverRanks(torch.autograd.Function):
    """A sum over the processes that gradients flow through: the backward pass sums the gradients too (each rank's
    loss depends on every rank's part of the sum)."""

    @staticmethod
    def forward(ctx, tensor):
        out = tensor.clone(memory_format=torch.contiguous_format)
        _dist().all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        _dist().all_reduce(grad)
        return grad


def _synced_forward(self, x):
    """BatchNorm in training mode normalised by the statistics of the whole global batch (every rank's part),
    summed in float64 by a differentiable all-reduce, so the gradient is the one-process run's: what
    ``torch.nn.SyncBatchNorm`` does on GPUs, also on the CPU (gloo). Eval mode and one process: the plain layer."""
    base = type(self).__mro__[1]
    if not self.training or world()[1] == 1:
        return base.forward(self, x)
    dims = [0, *range(2, x.dim())]
    xd = x.double()
    count = torch.full((1,), x.numel() / x.shape[1], dtype=torch.float64, device=x.device)
    total = _SummedOverRanks.apply(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]))
    c = x.shape[1]
    n = total[-1]
    mean = total[:c] / n
    var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
    shape = (1, c) + (1,) * (x.dim() - 2)
    y = ((xd - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)).to(x.dtype)
    if self.affine:
        y = y * self.weight.view(shape) + self.bias.view(shape)
    if self.track_running_stats:
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
            unbiased = var * n / (n - 1).clamp_min(1)
            self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
    return y


_SYNCED: dict = {}


@contextlib.contextmanager
def synced_batchnorm(model: torch.nn.Module):
    """Inside the block, every BatchNorm of ``model`` normalises by the global batch's statistics when several
    processes train (see :func:`_synced_forward`); its class is restored on leaving, also on error, so the
    weights, buffers and state-dict keys are the plain layer's. Alone: nothing changes."""
    from torch.nn.modules.batchnorm import _BatchNorm

    swapped = []
    if world()[1] > 1:
        for m in model.modules():
            if isinstance(m, _BatchNorm) and not isinstance(m, torch.nn.SyncBatchNorm):
                cls = type(m)
                if cls not in _SYNCED:
                    _SYNCED[cls] = type(f"Synced{cls.__name__}", (cls,), {"forward": _synced_forward})
                m.__class__ = _SYNCED[cls]
                swapped.append((m, cls))
    try:
        yield model
    finally:
        for m, cls in swapped:
            m.__class__ = cls
