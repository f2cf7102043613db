"""Reading images of any common mode into uint8 arrays, with errors that name the file and the fix."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnkit.data.walk import IMAGE_EXTS, is_image_file, list_images  # noqa: F401 - the one walk rule
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

DEFAULT_MAX_PIXELS = 180_000_000  # about Pillow's own refusal (2 x 89.5 M): a 13,400 px square
# Pillow refuses, at Image.open (from the header, before decoding), any image over twice its limit:
# every reader of cnnkit goes through Image.open, so this one setting guards them all
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS // 2
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # below the limit: not a problem
# what a reader may meet in a bad file, besides CnnkitError
UNREADABLE = (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError)


def set_max_pixels(limit: int) -> None:
    """Refuse images of more than ``limit`` pixels in every reader (``--max-pixels``)."""
    Image.MAX_IMAGE_PIXELS = max(1, limit) / 2


def max_pixels() -> int:
    return int(Image.MAX_IMAGE_PIXELS * 2)


def bomb_message(path: str | Path, error: Exception) -> str:
    """One line for an image over the pixel limit (Pillow's DecompressionBombError names no file)."""
    import re

    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return (f"{path}: {size}, over the limit of {max_pixels():,} (a possible decompression bomb); shrink the "
            "image, or raise --max-pixels if it is genuine")


GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def mode_channels(mode: str) -> int:
    """1 for grey modes (8/16/32-bit, with or without alpha), else 3 (RGB, RGBA, P, CMYK, YCbCr)."""
    return 1 if mode in GREY_MODES else 3


HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def pil_to_array(im: Image.Image, channels: int, high: float = 0.0) -> np.ndarray:
    """Convert a PIL image to ``(H, W, channels)`` uint8.

    16-bit, 32-bit and float images scale by one rule for a whole data set, never by an image's own
    maximum: ``high`` (the data set's high value, saved with the model: see ``probe_high``) maps to
    255; without it, the type's range does (65535 for integers, 1.0 for floats)."""
    if im.mode in HIGH_BIT_MODES:
        arr = np.asarray(im, dtype=np.float32)
        top = high or (1.0 if im.mode == "F" else 65535.0)
        im = Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), "L")
    if channels == 1:
        im = im.convert("L")
    elif im.mode != "RGB":
        im = im.convert("RGB")
    arr = np.array(im, dtype=np.uint8)  # a writable copy: torch.from_numpy needs one
    return arr[:, :, None] if arr.ndim == 2 else arr


def probe_high(paths: Sequence, limit: int = 200) -> float:
    """The data set's high value for images of more than 8 bits: the largest value in up to ``limit``
    of them (spread over the list), rounded up to a whole bit depth (4095 for 12-bit data); floats
    stay at 1.0 when within 0..1. 0.0 when the images are 8-bit (nothing to scale)."""
    files = [p for p in paths if isinstance(p, (str, Path))]
    pick = [files[int(i)] for i in np.linspace(0, len(files) - 1, min(limit, len(files))).astype(int)] if files else []
    top, is_float = 0.0, False
    for path in pick:
        try:
            with Image.open(path) as im:
                if im.mode not in HIGH_BIT_MODES:
                    continue
                is_float |= im.mode == "F"
                top = max(top, float(np.asarray(im, dtype=np.float32).max(initial=0)))
        except UNREADABLE:
            continue
    if top <= 0:
        return 0.0
    if is_float and top <= 1.0:
        return 1.0
    return float(2 ** max(8, int(np.ceil(np.log2(top + 1)))) - 1)


_SAID_PAGES: set[str] = set()  # files whose extra pages were already said: once per file and process
EXIF_ORIENTATION = 0x0112  # the EXIF tag: phone cameras store pixels sideways and say how to turn them


def upright(im: Image.Image) -> Image.Image:
    """``im`` as every viewer shows it, its EXIF orientation applied (``im`` itself when there is none);
    masks are drawn on the picture as shown, so pixels and masks must be read the same way."""
    return ImageOps.exif_transpose(im) if im.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1) else im


def upright_size(im: Image.Image) -> tuple[int, int]:
    """(W, H) of ``im`` as shown, read from the header alone: orientations 5-8 swap the sides."""
    width, height = im.size
    return (height, width) if im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else (width, height)


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode ``path``; raise CnnkitError naming the file for any problem."""
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(f"{path}: file not found; check the path")
    if path.stat().st_size == 0:
        raise CnnkitError(f"{path}: empty file (0 bytes); remove it or pass --skip-bad")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(path)
            im.load()
        pages = getattr(im, "n_frames", 1)
        if pages > 1 and str(path) not in _SAID_PAGES:  # a multi-page TIFF, an animated GIF
            _SAID_PAGES.add(str(path))
            LOGGER.warning("warning: %s: %d pages (frames); only the first is read. Save each page as its own "
                           "file to use the others", path, pages)
        return upright(im)
    except UnidentifiedImageError:
        raise CnnkitError(f"{path}: not an image Pillow can read; convert it to PNG or JPEG, or remove it") from None
    except Image.DecompressionBombError as e:
        raise CnnkitError(bomb_message(path, e) + ", or pass --skip-bad") from None
    except (OSError, SyntaxError, ValueError) as e:
        msg = f"{path}: corrupt or truncated image ({e}); re-export or remove it, or pass --skip-bad"
        raise CnnkitError(msg) from None


def scaled_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """(W, H) shrunk so that the longer side is at most ``max_size`` (0: unchanged)."""
    scale = min(1.0, max_size / max(width, height)) if max_size else 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def as_pil(image: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """A path (opened and checked), a PIL image, or an ``(H, W[, C])`` array -> a PIL image. Arrays: uint8;
    floats in 0..1 (scaled to 0..255); bool; 16-bit grey (kept 16-bit, as a 16-bit PNG would be).
    Other arrays raise CnnkitError saying what to pass."""
    if isinstance(image, (str, Path)):
        return open_image(image)
    if isinstance(image, Image.Image):
        if 0 in image.size:
            raise CnnkitError(f"an empty image ({image.width}x{image.height} pixels): it needs at least one pixel")
        return image
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:  # (H, W, 1): grey; squeezing all would make (1, 1, 3) a vector
        array = array[..., 0]
    elif array.ndim == 3 and array.shape[0] == 1 and array.shape[-1] not in (3, 4):  # (1, H, W): grey
        array = array[0]
    if array.ndim in (2, 3) and 0 in array.shape[:2]:  # a 0x0 array once gave a confident class
        raise CnnkitError(f"an empty image array of shape {list(array.shape)}: an image needs at least one pixel")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
            raise CnnkitError(f"a float image array must hold values in 0..1, got {array.min():g}..{array.max():g}; "
                              "divide by 255 (or pass uint8)")
        array = np.round(array * 255).astype(np.uint8)
    elif array.dtype in (np.uint16, np.int32) and array.ndim == 2:
        return Image.fromarray(array.astype(np.int32) if array.dtype == np.int32 else array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise CnnkitError(f"an image array of {array.dtype} with shape {list(array.shape)}: pass (H, W) or "
                          "(H, W, 3) uint8, floats in 0..1, or 16-bit grey (H, W)")
    return Image.fromarray(array)


def image_to_array(im: Image.Image, channels: int, size: int = 0, high: float = 0.0) -> np.ndarray:
    """``(H, W, channels)`` uint8 of ``im``, resized (bilinear) to ``size`` x ``size`` when size > 0;
    ``high``: see ``pil_to_array``."""
    if size and im.size != (size, size):
        im = (im.convert("RGB") if im.mode == "P" else im).resize((size, size), Image.BILINEAR)
    return pil_to_array(im, channels, high)


def resized_array(image: Image.Image, channels: int, size: tuple[int, int], high: float = 0.0) -> np.ndarray:
    """``(H, W, channels)`` uint8 of ``image`` at ``size`` (W, H), bilinear after the channel conversion;
    ``high``: see ``pil_to_array``. The one preparation of a whole image for segment and instance models
    (PyTorch and exported alike)."""
    array = pil_to_array(image, channels, high)
    if (array.shape[1], array.shape[0]) == tuple(size):
        return array
    picture = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    return pil_to_array(picture.resize(tuple(size), Image.BILINEAR), channels)


def read_image(path: str | Path, channels: int, size: int = 0, high: float = 0.0) -> np.ndarray:
    """Decode ``path`` to ``(H, W, channels)`` uint8, resized to ``size`` x ``size`` when size > 0."""
    return image_to_array(open_image(path), channels, size, high)


def probe_channels(paths: Sequence[Path], limit: int = 64) -> int:
    """Infer the channel count from the first ``limit`` readable files: 3 if any is colour, else 1."""
    for path in paths[:limit]:
        try:
            with Image.open(path) as im:
                if mode_channels(im.mode) == 3:
                    return 3
        except UNREADABLE:
            continue
    return 1


def decode_all(paths: Sequence[Path], channels: int, size: int, skip_bad: bool, workers: int = 2, high: float = 0.0,
               stop: bool = True) -> tuple[list[np.ndarray | None], list[str]]:
    """Decode every file (threads: Pillow releases the GIL). Returns arrays (None where bad) and errors."""

    def one(p: Path) -> tuple[np.ndarray | None, str | None]:
        try:
            return read_image(p, channels, size, high), None
        except CnnkitError as e:
            return None, str(e)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(one, paths))
    errors = [e for _, e in results if e]
    report_bad(errors, skip_bad, stop)
    return [a for a, _ in results], errors


def verify_all(paths: Iterable[Path], skip_bad: bool, decode: bool = False, stop: bool = True) -> dict[Path, str]:
    """Cheap check of every file (size, header, chunk checksums) without a full decode; ``decode``:
    decode each fully instead (`cnnkit data check`), which alone finds a truncated JPEG body.

    Returns {bad path: message}. A file that passes the cheap check may still fail to decode later;
    the streaming data set then stops with that file's name.
    """
    paths = list(paths)
    bad: dict[Path, str] = {}
    if decode:
        with ThreadPoolExecutor(2) as pool:
            bad = {p: e for p, e in zip(paths, pool.map(decode_error, paths)) if e}
        report_bad(list(bad.values()), skip_bad, stop)
        return bad
    for p in paths:
        try:
            if not p.is_file():
                raise CnnkitError(f"{p}: file not found; check the path (CSV paths are relative to the CSV's "
                                  "folder), or pass --skip-bad")
            if p.stat().st_size == 0:
                raise CnnkitError(f"{p}: empty file (0 bytes); remove it or pass --skip-bad")
            with Image.open(p) as im:
                im.verify()
        except CnnkitError as e:
            bad[p] = str(e)
        except Image.DecompressionBombError as e:
            bad[p] = bomb_message(p, e) + ", or pass --skip-bad"
        except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad files
            bad[p] = f"{p}: corrupt image ({type(e).__name__}); re-export or remove it, or pass --skip-bad"
    report_bad(list(bad.values()), skip_bad, stop)
    return bad


def decode_error(path: Path) -> str | None:
    """The message of ``path``'s full decode failing, or None when it decodes as training would read it."""
    try:
        open_image(path).close()
    except CnnkitError as e:
        return str(e)
    return None


SKIP_HINT = re.compile(r",? or pass --skip-bad(?: to [^;]*)?")


def as_skipped(message: str) -> str:
    """A problem's message once ``--skip-bad`` has skipped its file: the advice to pass it, given, dropped."""
    return SKIP_HINT.sub("", message) + "; skipped"


def report_bad(errors: list[str], skip_bad: bool, stop: bool = True) -> None:
    """List every bad file; then stop (one summary line) unless ``skip_bad`` or not ``stop`` (the caller
    stops once every split has been listed)."""
    if not errors:
        return
    for e in errors:
        LOGGER.warning("warning: %s", as_skipped(e) if skip_bad else e)
    if stop and not skip_bad:
        raise CnnkitError(
            f"{len(errors)} unreadable image(s), the first: {errors[0]} (all listed above); "
            "fix or remove them, or pass --skip-bad to skip them"
        )


def iter_sources(sources: Iterable[str]) -> list[Path]:
    """Expand files, folders (recursively) and globs into image paths, in order, without duplicates."""
    from glob import glob

    found: list[Path] = []
    for src in sources:
        path = Path(src)
        if path.is_dir():
            found += list_images(path, recursive=True)[0]
        elif path.is_file():
            if not is_image_file(path):
                raise CnnkitError(f"{path}: unsupported file type '{path.suffix}'; pass images (PNG, JPEG, ...)")
            found.append(path)
        else:
            matches = sorted(Path(m) for m in glob(src, recursive=True) if is_image_file(Path(m)))
            if not matches:
                raise CnnkitError(f"{src}: no such file, folder or matching images; check the path")
            found += matches
    if not found:
        raise CnnkitError(f"{' '.join(sources)}: no images found; pass image files, folders or globs")
    return list(dict.fromkeys(found))


def open_readable(paths: list[Path], skip_bad: bool) -> tuple[list[Path], list]:
    """The files that decode, and their images; an unreadable one stops the run, or with ``skip_bad`` is
    skipped with a warning."""
    kept, images = [], []
    for path in paths:
        try:
            images.append(open_image(path))
            kept.append(path)
        except CnnkitError as e:
            if not skip_bad:
                raise
            LOGGER.warning("warning: %s", as_skipped(str(e)))
    return kept, images


def image_sizes(paths: Sequence[Path], limit: int = 64) -> set[tuple[int, int]]:
    """The distinct (width, height) of the first ``limit`` readable images, upright."""
    sizes = set()
    for p in paths[:limit]:
        try:
            with Image.open(p) as im:
                sizes.add(upright_size(im))
        except UNREADABLE:
            continue
    return sizes


def native_side(sizes: set[tuple[int, int]], largest: int, default: int, what: str) -> int:
    """A square training side for images of ``sizes``: their own (the longer side of a non-square size)
    when they all share one of at most ``largest`` px, else ``default``; says which and why in one line."""
    if len(sizes) == 1:
        width, height = next(iter(sizes))
        if max(width, height) <= largest:
            if width != height:
                LOGGER.info("images are all %dx%d px; %s at %d px squares, their longer side (set --imgsz to choose)",
                            width, height, what, max(width, height))
            return max(width, height)
        reason = f"images are {width}x{height} px, larger than {largest}"
    elif sizes:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3]) + (", ..." if len(sizes) > 3 else "")
        reason = f"images differ in size ({shown})"
    else:
        reason = "no image size could be read"
    LOGGER.warning("%s; %s at %d px (set --imgsz to choose)", reason, what, default)
    return default
