"""Padding layers, one scheme per file, and ``convert_padding`` to put any of them into a model.

Importing this package registers every scheme by name ('zero', 'reflect', 'replicate', 'circular',
'symmetric', 'partial', 'padding_module'), so ``convert_padding(model, name)`` knows them all.
"""
from .base import (
    PADDING_SCHEMES,
    PadConv2d,
    PaddingScheme,
    TorchModePadding,
    convert_padding,
    copy_pad,
    padding_scheme_of,
    register_scheme,
)
from .padding_module import PaddingModule, edge_prediction_error, padding_module_loss, padding_modules
from .partial import PartialConvPadding
from .schemes import ALL_SCHEMES, make_scheme, pad_with, padding_examples
from .symmetric import SymmetricPadding, symmetric_index

__all__ = [
    "ALL_SCHEMES", "PADDING_SCHEMES", "PadConv2d", "PaddingModule", "PaddingScheme", "PartialConvPadding",
    "SymmetricPadding", "TorchModePadding", "convert_padding", "copy_pad", "edge_prediction_error", "make_scheme",
    "pad_with", "padding_examples", "padding_module_loss", "padding_modules", "padding_scheme_of", "register_scheme",
    "symmetric_index",
]
