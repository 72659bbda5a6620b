"""Deprecated path: padlib.blind_spots moved to padlib.chapters.ch4_blind_spots, padlib.experiments.ch4_blind_spots, padlib.experiments.planted. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__)
