"""Probe data: natural photographs shipped in PyPI wheels (offline), or any folder of images.

Border statistics need many images whose content has no preferred position; random crops with flips of a
few photographs give that. A folder (e.g. ImageNet validation) replaces them for full-scale runs.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import ProbeDataError, check_type
from .models import imagenet_classes, preprocessing
from .preprocess import Preprocessing, to_pil  # noqa: F401 - to_pil re-exported: padlib.preprocess.to_pil

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
SKIMAGE_COLOUR = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
SKIMAGE_GREY = ("brick", "camera", "grass", "gravel", "moon", "coins", "page", "text")


def offline_photo_names() -> list[str]:
    """Names of the photographs shipped by scikit-image, scikit-learn and matplotlib."""
    return list(SKIMAGE_COLOUR) + list(SKIMAGE_GREY) + ["china", "flower", "grace_hopper"]


def load_photo(name: str) -> Image.Image:
    """One offline photograph by name (see :func:`offline_photo_names`), as an RGB PIL image."""
    check_type("photo name", name, str)
    if name in SKIMAGE_COLOUR or name in SKIMAGE_GREY:
        import skimage.data

        return to_pil(getattr(skimage.data, name)())
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return to_pil(load_sample_image(f"{name}.jpg"))
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return Image.open(f).convert("RGB")
    raise ProbeDataError(f"unknown photo '{name}'; offline photos: {', '.join(offline_photo_names())}")


def list_images(folder: str) -> list[str]:
    """All image files under ``folder`` (recursive, sorted), with a clear error if there are none."""
    check_type("image folder", folder, (str, os.PathLike))
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise ProbeDataError(f"image folder '{folder}' does not exist; pass an existing folder of images")
    if not os.path.isdir(folder):
        raise ProbeDataError(f"'{folder}' is a file, not a folder; pass the folder that contains the images")
    found = []

    def unreadable(err: OSError):  # os.walk hides these by default: a denied folder would look empty
        raise ProbeDataError(f"cannot read '{err.filename}' under image folder '{folder}' "
                             f"({err.strerror or type(err).__name__}); check its permissions") from None

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise ProbeDataError(
            f"image folder '{folder}' contains no images (looked recursively for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return found


COLOUR_KINDS = {"L": "grey", "1": "black-and-white", "LA": "grey with alpha", "RGBA": "RGBA", "P": "palette",
                "PA": "palette", "CMYK": "CMYK", "I": "16-bit", "I;16": "16-bit", "I;16B": "16-bit",
                "I;16L": "16-bit", "F": "32-bit float"}


def colour_kind(mode: str) -> str | None:
    """What a PIL mode is converted from to become RGB ("grey", "RGBA", "16-bit", ...), None for RGB itself:
    what :func:`probe_images` counts, since a model sees such images differently from the photographs."""
    return None if mode == "RGB" else COLOUR_KINDS.get(mode, mode)


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as RGB. 16-bit and 32-bit images are scaled to 8 bits first (PIL's own conversion clips them to
    white above 255)."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        if im.mode == "F":
            top = max(float(a.max(initial=0)), 1e-12)
        im = Image.fromarray(np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    return im.convert("RGB")


@dataclass
class ProbeImages:
    """A deterministic set of probe images: ``len()``, indexing and :meth:`batches` of normalised tensors.

    ``mode="random_crops"``: each image is a random square crop (scale ``min_scale``..1 of the shorter side)
    of a source photo, resized to ``size`` and flipped left-right with probability 1/2; crop ``i`` depends
    only on ``seed`` and ``i``. ``mode="center"``: each source image resized and centre-cropped once.
    """

    sources: list  # PIL images or file paths
    source_names: list
    n: int
    size: int
    prep: Preprocessing
    seed: int = 0
    mode: str = "random_crops"
    min_scale: float = 0.35
    flips: bool = True
    skipped: list = field(default_factory=list)  # files of the folder that could not be read (names)
    converted: dict = field(default_factory=dict)  # files converted to RGB, by kind ("grey", "RGBA", "16-bit", ...)

    def __len__(self) -> int:
        return self.n

    def _open(self, j: int) -> Image.Image:
        src = self.sources[j]
        if isinstance(src, Image.Image):
            return src
        try:
            with Image.open(src) as im:
                return to_rgb(im)
        except (UnidentifiedImageError, OSError) as e:
            raise ProbeDataError(f"cannot read image '{src}': {e}") from None

    def crop_box(self, i: int) -> tuple[int, tuple[int, int, int, int], bool]:
        """(source index, (left, top, right, bottom), flipped) of probe image ``i``."""
        if self.mode == "center":
            return i % len(self.sources), None, False
        rng = np.random.default_rng([self.seed, i])
        j = int(rng.integers(len(self.sources)))
        w, h = self._size_of(j)
        side = int(min(w, h) * rng.uniform(self.min_scale, 1.0))
        left = int(rng.integers(0, w - side + 1))
        top = int(rng.integers(0, h - side + 1))
        flip = bool(self.flips and rng.random() < 0.5)
        return j, (left, top, left + side, top + side), flip

    def _size_of(self, j: int) -> tuple[int, int]:
        src = self.sources[j]
        if isinstance(src, Image.Image):
            return src.size
        if not hasattr(self, "_sizes"):
            self._sizes = {}
        if j not in self._sizes:
            self._sizes[j] = self._open(j).size
        return self._sizes[j]

    def image01(self, i: int) -> torch.Tensor:
        """Probe image ``i`` as a (3, size, size) tensor in [0, 1] (not normalised), for display."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        if not 0 <= i < self.n:
            raise IndexError(f"probe image {i} out of range 0..{self.n - 1}")
        j, box, flip = self.crop_box(i)
        img = self._open(j)
        mode = InterpolationMode(self.prep.interpolation)
        if box is None:
            img = F.center_crop(F.resize(img, int(round(self.size * self.prep.resize_size / self.prep.input_size)),
                                         interpolation=mode, antialias=True), self.size)
        else:
            img = img.crop(box).resize((self.size, self.size), Image.BICUBIC if mode.value == "bicubic" else Image.BILINEAR)
        x = F.to_tensor(img)
        return x.flip(-1) if flip else x

    def __getitem__(self, i: int) -> torch.Tensor:
        """Probe image ``i``, normalised for the model."""
        return self.prep.normalize(self.image01(i))

    def batches(self, batch_size: int = 16, progress: bool | str = True, device="cpu") -> Iterator[torch.Tensor]:
        """Normalised batches (N, 3, size, size) in a fixed order, with a progress bar."""
        check_type("batch_size", batch_size, int)
        if batch_size < 1:
            raise ProbeDataError(f"batch_size must be >= 1, got {batch_size}")
        from tqdm.auto import tqdm

        starts = range(0, self.n, batch_size)
        desc = progress if isinstance(progress, str) else "probe images"
        bar = tqdm(total=self.n, desc=desc, unit="img", disable=not progress, leave=False)
        try:
            for s in starts:
                batch = torch.stack([self[i] for i in range(s, min(s + batch_size, self.n))])
                bar.update(batch.shape[0])
                yield batch.to(device)
        finally:
            bar.close()

    def tensor(self, device="cpu") -> torch.Tensor:
        """All probe images as one normalised tensor (small sets only)."""
        return torch.cat(list(self.batches(64, progress=False, device=device)))

    def describe(self) -> str:
        kind = f"{len(self.sources)} source images" if self.mode == "center" else f"random crops of {len(self.sources)} photos"
        text = f"{self.n} probe images at {self.size}px ({kind}, seed {self.seed})"
        if self.skipped:
            text += f"; {len(self.skipped)} unreadable file(s) skipped (first: {self.skipped[0]})"
        if self.converted:
            text += "; converted to RGB: " + ", ".join(f"{v} {k}" for k, v in sorted(self.converted.items()))
        return text


def probe_images(
    n: int = 64,
    size: int | None = None,
    seed: int = 0,
    image_dir: str | None = None,
    model=None,
    mode: str | None = None,
    min_scale: float = 0.35,
    flips: bool = True,
    min_images: int = 1,
    min_reason: str = "",
) -> ProbeImages:
    """The probe set: ``n`` deterministic random crops of the offline photos (or of ``image_dir``'s images).

    ``model`` (a loaded model or a name) sets the normalisation and the default ``size``. With
    ``image_dir``, ``mode`` defaults to ``"center"`` (one centre crop per file, the first ``n`` files);
    pass ``mode="random_crops"`` for random crops of the folder's images. Unreadable files are skipped and
    non-RGB ones converted, both counted in a warning and on the result (``.skipped``, ``.converted``); a folder
    with fewer usable images than ``min_images`` (a method's minimum, ``min_reason`` saying whose) is refused,
    and fewer than ``n`` asked gives a warning with the count.
    """
    check_type("n", n, int)
    check_type("seed", seed, int)
    if n < 1:
        raise ProbeDataError(f"n must be >= 1, got {n}")
    prep = preprocessing(model) if model is not None else Preprocessing()
    if size is None:
        size = prep.input_size
    check_type("size", size, int)
    if size < 8:
        raise ProbeDataError(f"size must be >= 8 pixels, got {size}")
    if image_dir is None or image_dir == "":
        sources = [load_photo(p) for p in offline_photo_names()]
        names = offline_photo_names()
        mode = mode or "random_crops"
    else:
        paths = list_images(image_dir)
        readable, skipped, converted = [], [], {}
        for p in paths:
            try:
                with Image.open(p) as im:
                    kind = colour_kind(im.mode)
                    im.verify()
            except Exception:  # noqa: BLE001 - any unreadable file is skipped, counted and named
                skipped.append(os.path.relpath(p, image_dir))
                continue
            readable.append(p)
            if kind:
                converted[kind] = converted.get(kind, 0) + 1
            if mode != "random_crops" and len(readable) >= n:
                break
        if not readable:
            raise ProbeDataError(f"image folder '{image_dir}' has {len(paths)} image files but none could be read "
                                 f"(first: {skipped[0]})")
        sources, names = readable, [os.path.relpath(p, image_dir) for p in readable]
        mode = mode or "center"
        usable = len(sources) if mode == "center" else n
        if usable < min_images:
            raise ProbeDataError(f"image folder '{image_dir}' has {len(sources)} usable image(s), fewer than the "
                                 f"{min_images} {min_reason or 'needed'}; add images or use the offline photographs "
                                 "(no image folder)")
        notes = []
        if skipped:
            notes.append(f"skipped {len(skipped)} unreadable file(s) (first: {skipped[0]})")
        if converted:
            notes.append("converted to RGB: " + ", ".join(f"{v} {k}" for k, v in sorted(converted.items())))
        if mode == "center" and len(sources) < n:
            notes.append(f"only {len(sources)} usable image(s) for the {n} asked: using {len(sources)}")
            n = len(sources)
        if notes:
            warnings.warn(f"image folder '{image_dir}': " + "; ".join(notes), UserWarning, stacklevel=2)
    if mode not in ("random_crops", "center"):
        raise ProbeDataError(f"mode must be 'random_crops' or 'center', got {mode!r}")
    images = ProbeImages(sources, names, n, size, prep, seed, mode, min_scale, flips)
    if image_dir:
        images.skipped, images.converted = skipped, converted
    return images


# ---------------------------------------------------------------------------------------------------------
# Labelled image folders (ImageNet validation arranged by class, or any class-per-folder layout)


@dataclass
class LabelledImages(ProbeImages):
    """A :class:`~padlib.data.ProbeImages` (centre crops of files) that also knows each image's class index."""

    labels: list = field(default_factory=list)
    class_names: list = field(default_factory=list)


def read_class_index(path: str) -> dict[str, int]:
    """A class-index mapping file -> ``{folder name: class index}``.

    Accepted: JSON ``{"0": ["n01440764", "tench"], ...}`` (Keras' imagenet_class_index.json) or
    ``{"folder": index}``; or a text file with one class per line, first token the folder name (e.g.
    ``LOC_synset_mapping.txt``: "n01440764 tench, Tinca tinca"), the line number the index unless the
    second token is an integer.
    """
    check_type("class index file", path, (str, os.PathLike))
    if not os.path.isfile(path):
        raise ProbeDataError(f"class index file '{path}' does not exist")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    mapping: dict[str, int] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProbeDataError(f"class index file '{path}' is not valid JSON: {e}") from None
        for key, value in data.items():
            if isinstance(value, (list, tuple)) and str(key).lstrip("-").isdigit():
                mapping[str(value[0])] = int(key)
                if len(value) > 1:
                    mapping.setdefault(str(value[1]), int(key))
            elif isinstance(value, int):
                mapping[str(key)] = value
            else:
                raise ProbeDataError(f"class index file '{path}': cannot read entry {key!r}: {value!r}")
    else:
        for i, line in enumerate(l for l in text.splitlines() if l.strip()):
            tokens = line.replace(",", " ").split()
            mapping[tokens[0]] = int(tokens[1]) if len(tokens) > 1 and tokens[1].isdigit() else i
    if not mapping:
        raise ProbeDataError(f"class index file '{path}' has no entries")
    return mapping


def labelled_images(folder: str, class_index: str | dict | None = None, n: int | None = None, model=None,
                    size: int | None = None, seed: int = 0) -> LabelledImages:
    """Images arranged one folder per class (``folder/<class>/<image>``) with their class indices.

    ``class_index`` maps folder names to model class indices: a mapping file (see :func:`read_class_index`)
    or a dict. Without it, folder names that are integers or ImageNet class names are understood. ``n``
    keeps a seeded random subset. Each image is resized and centre-cropped as the model expects.
    """
    paths = list_images(folder)
    if isinstance(class_index, (str, os.PathLike)):
        class_index = read_class_index(os.fspath(class_index))
    names = imagenet_classes()
    by_name = {c: i for i, c in enumerate(names)}
    labels, kept, unknown = [], [], set()
    for p in paths:
        rel = os.path.relpath(p, folder)
        cls = rel.split(os.sep)[0] if os.sep in rel else None
        if cls is None:
            raise ProbeDataError(f"'{rel}' is not inside a class folder: arrange images as {folder}/<class>/<image>")
        if class_index is not None:
            idx = class_index.get(cls)
        elif cls.isdigit():
            idx = int(cls)
        else:
            idx = by_name.get(cls, by_name.get(cls.replace("_", " ")))
        if idx is None:
            unknown.add(cls)
            continue
        labels.append(int(idx))
        kept.append(p)
    if unknown:
        raise ProbeDataError(
            f"{len(unknown)} class folder(s) have no class index (e.g. {sorted(unknown)[:3]}): pass class_index= "
            "a mapping file (imagenet_class_index.json or LOC_synset_mapping.txt) or name folders by class index"
        )
    if n is not None:
        check_type("n", n, int)
        if n < len(kept):
            pick = np.sort(np.random.default_rng(seed).choice(len(kept), n, replace=False))
            kept, labels = [kept[i] for i in pick], [labels[i] for i in pick]
    prep = preprocessing(model) if model is not None else preprocessing("mobilenet_v2")
    return LabelledImages(kept, [os.path.relpath(p, folder) for p in kept], len(kept), size or prep.input_size, prep,
                          seed, "center", labels=labels, class_names=names)

