"""padlib: the analysis code behind the padding analysis book. Chapters import these functions."""
from .errors import (
    CheckpointError,
    NoPaddedLayersError,
    PadlibError,
    PadlibTypeError,
    ProbeDataError,
    UnknownModelError,
    WeightsUnavailableError,
)
from .models import (
    OFFLINE_MODELS,
    Preprocessing,
    imagenet_classes,
    load_checkpoint,
    load_model,
    model_device,
    split_model_spec,
    offline_model_names,
    predict,
    preprocessing,
)
from . import plots
from .data import ProbeImages, list_images, load_photo, offline_photo_names, probe_images, to_pil
from .audit import (
    audit_overview,
    audit_summary,
    even_padding_sizes,
    load_zoo_audit,
    nearest_even_size,
    padding_audit,
    zoo_audit,
    zoo_by_family,
    zoo_overview,
)
from .spatial_bias import (
    FeatureMaps,
    agreement_summary,
    bias_agreement,
    blind_spot_map,
    blind_spot_study,
    blind_spot_summary,
    constant_inputs,
    depth_layers,
    mean_feature_maps,
    mitigation_table,
    padding_variants,
    predicted_lean,
    spatial_bias_index,
    stimulus_crop,
    toy_translation_model,
)
from .pans import (
    PanScan,
    calibrate_tau,
    classify_pans,
    find_pans,
    pan_summary,
    scan_pans,
)
from .ablation import (
    ModelAblation,
    ablate_channels,
    ablation_report,
    border_sensitivity,
    channel_means,
    evaluate,
    labelled_images,
    movers_across_models,
    random_control,
    report_tables,
    swap_padding,
)
from . import kernels
from .kernels import (
    classify_pan_kernels,
    data_free_pans,
    kernel_profile,
    mean_kernel_asymmetry,
    padding_response,
)

from .padding import convert_padding
from . import padding_layers, position, training
from .padding_layers import (
    PaddingModule,
    edge_prediction_error,
    pad_with,
    padding_examples,
    padding_module_loss,
    padding_modules,
)
from .position import (
    border_test,
    position_pattern_strength,
    position_readout,
    ppp_measures,
    stationary_images,
)
from .training import (
    ImageSet,
    digits_on_canvas,
    digits_train_test,
    load_dataset,
    resnet_small,
    train,
    train_schemes,
    vgg_small,
)
from .model_report import PaddingReport, report, save_report

__version__ = "0.1.0"
