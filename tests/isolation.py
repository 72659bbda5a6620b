"""Run a test body in a fresh process with a time limit: native code that crashes or hangs fails one test with a
clear message, instead of killing or stalling the whole pytest run (see padlib.experiments.training.training_memory_format)."""
from __future__ import annotations

import multiprocessing
import signal
import traceback

import pytest


def _child(conn, fn, args):
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as e:  # noqa: BLE001 - relayed to the parent as text
        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def run_isolated(fn, *args, timeout: float = 120, what: str | None = None):
    """``fn(*args)`` in a spawned process (``fn`` importable, its result picklable); returns its result.

    Fails the calling test if the process dies without answering (a signal such as SIGABRT from heap
    corruption), runs past ``timeout`` seconds (a hang; then it is killed) or raises (its traceback is shown)."""
    what = what or fn.__name__
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args), daemon=True)
    proc.start()
    child.close()
    try:
        answered = parent.poll(timeout)
        message = parent.recv() if answered else None
    except EOFError:  # the process died before it could answer
        message = None
        answered = True
    finally:
        if not answered:
            proc.kill()
        proc.join(30)
    if not answered:
        pytest.fail(f"{what} hung: no answer from its process within {timeout:.0f} s (killed)", pytrace=False)
    if message is None:
        code = proc.exitcode
        how = (f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}")
        pytest.fail(f"{what} crashed its process ({how}): native code died, e.g. heap corruption", pytrace=False)
    status, value = message
    if status == "error":
        pytest.fail(f"{what} raised in its process: {value}", pytrace=False)
    return value
