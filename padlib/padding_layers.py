"""Deprecated path: padlib.padding_layers moved to padlib._hooks, padlib.chapters.ch5_schemes, padlib.experiments.ch5_schemes, padlib.layers.padding_module, padlib.layers.partial, padlib.layers.schemes, padlib.layers.symmetric. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__, {
    "ALL_SCHEMES": "layers.schemes",
    "MODULE_SIDES": "layers.padding_module",
    "PaddingModule": "layers.padding_module",
    "PartialConvPadding": "layers.partial",
    "SymmetricPadding": "layers.symmetric",
    "conv_input": "_hooks",
    "edge_prediction_error": "layers.padding_module",
    "edge_prediction_findings": "chapters.ch5_schemes",
    "example_pad": "experiments.ch5_schemes",
    "make_scheme": "layers.schemes",
    "most_varied_channel": "experiments.ch5_schemes",
    "pad_with": "layers.schemes",
    "padding_examples": "layers.schemes",
    "padding_module_loss": "layers.padding_module",
    "padding_modules": "layers.padding_module",
    "padding_views": "experiments.ch5_schemes",
    "symmetric_index": "layers.symmetric"
})
