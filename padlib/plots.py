"""Deprecated path: padlib.plots moved to padlib.viz.ch1_pans, padlib.viz.ch2_kernels, padlib.viz.ch3_ablation, padlib.viz.ch4_blind_spots, padlib.viz.ch5_schemes, padlib.viz.common, padlib.viz.style. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__)
