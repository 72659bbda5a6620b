"""padlib: the methods behind the padding analysis book, for any CNN you bring.

The flat names below are padlib's public API. Methods you call on your own model and images (the padding
audit, the PAN scan, kernels, interventions, mean feature maps, position measures, padding layers, the report)
live in the top-level modules; the book's experiments in :mod:`padlib.experiments`, its readings in
:mod:`padlib.chapters`, figures in :mod:`padlib.viz`. Importing padlib loads no matplotlib and changes no global
setting (figures and their style load on first use).
"""
from .errors import (
    CheckpointError,
    NoPaddedLayersError,
    PadlibError,
    PadlibTypeError,
    ProbeDataError,
    UnknownModelError,
    WeightsUnavailableError,
)
from .preprocess import Preprocessing, to_pil
from .models import (
    OFFLINE_MODELS,
    imagenet_classes,
    load_checkpoint,
    load_model,
    model_device,
    offline_model_names,
    predict,
    preprocessing,
    split_model_spec,
)
from .data import ProbeImages, labelled_images, list_images, load_photo, offline_photo_names, probe_images
from . import layers, stats
from .layers import (
    PaddingModule,
    convert_padding,
    edge_prediction_error,
    pad_with,
    padding_examples,
    padding_module_loss,
    padding_modules,
)
from .audit import (
    audit_overview,
    audit_summary,
    even_padding_sizes,
    nearest_even_size,
    padding_audit,
)
from .spatial_bias import (
    FeatureMaps,
    agreement_summary,
    bias_agreement,
    constant_inputs,
    depth_layers,
    mean_feature_maps,
    predicted_lean,
    spatial_bias_index,
)
from .blind_spot_maps import (
    blind_spot_map,
    blind_spot_study,
    blind_spot_summary,
    mitigation_table,
    padding_variants,
    stimulus_crop,
)
from .position_sensitivity import blind_sides, position_sensitivity, position_summary
from .pans import PanScan, calibrate_tau, classify_pans, find_pans, scan_pans
from .pan_tables import pan_summary
from .interventions import (
    ablate_channels,
    border_sensitivity,
    channel_means,
    evaluate,
    model_outputs,
    random_control,
    swap_padding,
)
from . import kernels, position
from .kernels import data_free_pans, kernel_profile, mean_kernel_asymmetry, padding_response
from .kernel_types import classify_pan_kernels
from .position import (
    border_test,
    position_pattern_strength,
    position_readout,
    ppp_measures,
    stationary_images,
)
from .outputs import compare_outputs, describe_outputs, output_kind, select_output
from .tiling import BorderReach, border_reach
from .model_report import PaddingReport, report
from . import experiments
from .experiments.digits import ImageSet, digits_on_canvas, digits_train_test, load_dataset
from .experiments.smallnets import resnet_small, vgg_small
from .experiments.training import train, train_schemes
from .experiments.planted import toy_translation_model
from .experiments.zoo import load_zoo_audit, zoo_audit, zoo_by_family, zoo_overview
from .experiments.ch3_ablation import ModelAblation, ablation_report, movers_across_models, report_tables

__version__ = "0.2.0"

# Loaded on first use: the report's HTML and figures need matplotlib, and the old module paths warn once.
_LAZY = {"save_report": ("padlib.viz.report", "save_report")}
_OLD_MODULES = ("plots", "padding_layers", "training", "ablation", "activations", "blind_spots", "book", "findings")


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _OLD_MODULES or name in ("viz", "chapters"):
        return importlib.import_module(f"padlib.{name}")
    raise AttributeError(f"module 'padlib' has no attribute {name!r}")
