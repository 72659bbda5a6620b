"""Deprecated path: padlib.ablation moved to padlib.chapters.ch3_ablation, padlib.data, padlib.experiments.ch3_ablation, padlib.interventions, padlib.padding, padlib.stats. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__)
