"""Deprecated path: padlib.padding_layers moved to padlib._hooks, padlib.chapters.ch5_schemes, padlib.experiments.ch5_schemes, padlib.layers.padding_module, padlib.layers.partial, padlib.layers.schemes, padlib.layers.symmetric. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__)
