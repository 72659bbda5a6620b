"""Writing result files all at once, so that a crash, a full disk or Ctrl-C half-way through never leaves half a
file where the user's file (or an earlier result) was."""
from __future__ import annotations

import contextlib
import os
import secrets


def _temporary_beside(path: str) -> tuple[int, str]:
    """A new, empty file ``.NAME.tmpXXXXXXXX`` in the target's own folder (so that the final rename stays on one
    file system and is atomic), created with the permissions a plain ``open`` would give (0o666 less the umask)."""
    folder, name = os.path.split(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.tmp{secrets.token_hex(4)}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside '{path}'")


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None):
    """Open a temporary file beside ``path`` and yield it; when the block ends normally, the file replaces ``path``
    in one step (``os.replace``). On any error, Ctrl-C included, the temporary file is removed and ``path`` is left
    exactly as it was (absent, or the old file).

    ``mode`` is ``"w"`` (text, ``encoding``/``newline`` as for :func:`open`) or ``"wb"``. Pass ``newline=""`` when
    handing the file to ``DataFrame.to_csv``, as pandas does for a path.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes a whole new file: mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    fd, tmp = _temporary_beside(path)
    try:
        text = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # on disk before it takes the target's name: a power cut leaves old or new
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
