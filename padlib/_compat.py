"""Old import paths that keep working for one release: each warns once, then hands over the name from its new home.

The moved names are looked up lazily by module path (``importlib``), so an old path never adds an import edge
between layers; this is the only module in padlib allowed to import by string.
"""
from __future__ import annotations

import importlib
import json
import warnings
from functools import lru_cache
from pathlib import Path


class PadlibDeprecationWarning(FutureWarning):
    """An old padlib import path was used; it works for one release. FutureWarning so that users see it."""


@lru_cache(maxsize=None)
def _moves(module: str) -> dict[str, str]:
    """``{name: 'new.module[:new_name]'}`` for an old module, from ``_moved.json`` (written when padlib was split)."""
    return json.loads((Path(__file__).with_name("_moved.json")).read_text())[module]


def _fetch(target: str, name: str):
    module, _, new_name = target.partition(":")
    return getattr(importlib.import_module(f"padlib.{module}"), new_name or name)


def moved_names(module: str):
    """A module ``__getattr__`` for the names that moved out of ``module`` (listed in ``_moved.json``)."""
    warned: list[bool] = []

    def __getattr__(name: str):
        moves = _moves(module)
        if name not in moves:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        if not warned:
            warned.append(True)
            warnings.warn(f"{module}.{name} moved to padlib.{moves[name].split(':')[0]}; the old path works for one "
                          "release", PadlibDeprecationWarning, stacklevel=2)
        return _fetch(moves[name], name)

    return __getattr__


def moved_module(module: str):
    """``__getattr__`` and ``__dir__`` for a module that moved whole; warns once, when the old module is imported."""
    moves = _moves(module)
    homes = sorted({f"padlib.{t.split(':')[0]}" for t in moves.values()})
    warnings.warn(f"{module} moved to {', '.join(homes)}; the old path works for one release",
                  PadlibDeprecationWarning, stacklevel=3)

    def __getattr__(name: str):
        if name not in moves:
            raise AttributeError(f"module {module!r} has no attribute {name!r} (it moved to {', '.join(homes)})")
        return _fetch(moves[name], name)

    def __dir__():
        return sorted(moves)

    return __getattr__, __dir__
