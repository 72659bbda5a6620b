"""Deprecated path: padlib.training moved to padlib.chapters.ch5_schemes, padlib.experiments.ch5_schemes, padlib.experiments.digits, padlib.experiments.smallnets, padlib.experiments.training, padlib.stats. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__)
