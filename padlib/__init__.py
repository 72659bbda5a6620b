"""padlib: the analysis code behind the padding analysis book. Chapters import these functions."""
from .errors import (
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
    load_model,
    model_device,
    offline_model_names,
    predict,
    preprocessing,
)
from . import plots
from .data import ProbeImages, list_images, load_photo, offline_photo_names, probe_images, to_pil
from .pans import (
    PanScan,
    calibrate_tau,
    classify_pans,
    find_pans,
    pan_summary,
    scan_pans,
)

__version__ = "0.1.0"
