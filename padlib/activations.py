"""Deprecated path: padlib.activations moved to padlib._hooks. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__)
