"""Reading images: one decoder for training, evaluation, prediction and the web API.

Every image that enters cnnlab, from an image folder, a file given to ``Predictor`` or
``cnnlab predict``, or an upload to the web API, goes through :func:`decode_image`, so a
file means the same thing to training and to serving:

- **the pixel limit** is checked from the header, before a single pixel is decoded, and
  locally: PIL's process-wide ``Image.MAX_IMAGE_PIXELS`` is left alone (PIL only *raises*
  above twice that limit and merely warns below it, so it is no protection);
- **EXIF orientation** is applied: a phone photo taken upright is upright;
- **every PIL mode** becomes 8-bit RGB the same way: 16-bit images are scaled (not
  clipped), transparency is composited on white, CMYK and palettes are converted;
- **animations** (GIF, APNG, WebP) give their first frame;
- **every failure** is a :class:`~cnnlab.errors.CorruptImageError` (or its siblings
  :class:`ImageNotFoundError` and :class:`ImageTooLargeError`) that names the file and the
  fix, and that ``skip_corrupt`` skips.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CorruptImageError

MAX_PIXELS = 40_000_000  # 40 megapixels: above a 12-24 MP phone photo, below a pixel bomb
# What an image folder may hold. torchvision's ImageFolder leaves .gif out, so an animated
# GIF was silently skipped in training though the web API accepted it.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".gif", ".tif",
                    ".tiff", ".webp")  # fmt: skip


SKIP_HINT = (
    "(an image folder skips such files with skip_corrupt=True, the cnnlab command "
    "with --skip-corrupt)"
)


class ImageNotFoundError(CorruptImageError, FileNotFoundError):
    """There is no image file at the path given."""


class ImageTooLargeError(CorruptImageError):
    """An image declares more pixels than allowed (a decompression bomb, or a huge scan)."""


Source = str | Path | bytes | Image.Image


def _name(source: Source, name: str | None) -> str:
    if name:
        return name
    return str(source) if isinstance(source, (str, Path)) else "the upload"


def _open(source: Source, what: str) -> Image.Image:
    """``Image.open``, header only; PIL's own bomb check (a warning between 1x and 2x its
    global limit, an error above) is muted here: :func:`decode_image` checks its own."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageNotFoundError(f"no file at {path}: check the path and the file name.")
        if path.is_dir():
            raise CorruptImageError(f"{path} is a folder, not an image file.")
        if path.stat().st_size == 0:
            raise CorruptImageError(f"{path} is empty (0 bytes): copy or download it again, or "
                                    f"delete it {SKIP_HINT}.")  # fmt: skip
        handle: object = path
    elif isinstance(source, (bytes, bytearray)):
        if not source:
            raise CorruptImageError(f"{what} is empty (0 bytes): send an image file.")
        handle = io.BytesIO(source)
    else:
        raise TypeError(f"expected a path, bytes or a PIL image, got {type(source).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(handle)
        except Image.DecompressionBombError as error:
            raise ImageTooLargeError(
                f"{what} has too many pixels to decode safely ({error})."
            ) from error
        except UnidentifiedImageError as error:
            raise CorruptImageError(
                f"{what} is not an image PIL can read (JPEG, PNG, GIF, BMP, TIFF, WebP): "
                f"{_what_it_is(handle)}. Replace or delete it {SKIP_HINT}."
            ) from error
        except (OSError, SyntaxError, ValueError, EOFError) as error:  # a header cut short
            raise _damaged(what, error) from error


def _damaged(what: str, error: BaseException) -> CorruptImageError:
    return CorruptImageError(
        f"{what} could not be decoded: it is truncated or damaged ({error}). Replace or "
        f"delete it {SKIP_HINT}."
    )


def _what_it_is(handle: object) -> str:
    """A guess at what a non-image file is, for the error message."""
    try:
        if isinstance(handle, io.BytesIO):
            head = handle.getvalue()[:512]
        else:
            with open(handle, "rb") as f:  # type: ignore[arg-type]
                head = f.read(512)
    except OSError:
        return "it could not be read"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "it is an HTML page (a download that saved an error page?)"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive (a PyTorch checkpoint?)"
    if head.startswith(b"%PDF"):
        return "it is a PDF document"
    try:
        head.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return "its first bytes match no image format"


def check_pixels(width: int, height: int, what: str, max_pixels: int | None = MAX_PIXELS) -> None:
    """Refuse an image larger than ``max_pixels`` (``None``: no limit), naming the fix.

    Example:
        >>> check_pixels(8000, 8000, "bomb.png")
        Traceback (most recent call last):
        ...
        cnnlab.images.ImageTooLargeError: bomb.png is 8000 x 8000 = 64.0 megapixels, more than ...
    """
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width} x {height} = {width * height / 1e6:.1f} megapixels, more than "
            f"the limit of {max_pixels / 1e6:g} (decoding it would take "
            f"{width * height * 4 / 1e6:,.0f} MB). Resize it first, or raise the limit "
            "(max_pixels=..., or --max-pixels for the cnnlab command) if you trust the file."
        )


def _scaled_to_8_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit grayscale, and float images, as 8-bit "L": scaled, never clipped."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        top = 65535.0
    elif image.mode == "I":  # 32-bit integers: 16-bit data (PNG), or 8-bit data widened
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
    else:  # "F": floats in [0, 1], or any range, stretched
        top = 1.0 if values.max(initial=0) <= 1.0 else float(values.max())
    return Image.fromarray(np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, the same way for training and serving:
    grayscale and 1-bit copied to the three channels, palettes expanded, transparency
    (RGBA, LA, PA, a palette's transparent colour) composited on white, CMYK converted,
    and 16- or 32-bit images scaled down to 8 bits (not clipped).

    Example:
        >>> to_rgb(Image.new("I;16", (4, 4), 65535)).getpixel((0, 0))
        (255, 255, 255)
        >>> to_rgb(Image.new("RGBA", (4, 4), (255, 0, 0, 0))).getpixel((0, 0))
        (255, 255, 255)
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        image = _scaled_to_8_bit(image)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(source: Source, *, max_pixels: int | None = MAX_PIXELS,
                 name: str | None = None) -> Image.Image:  # fmt: skip
    """Open a path, raw bytes or a PIL image as an upright, fully decoded 8-bit RGB image.

    The pixel limit is checked from the header before decoding; EXIF orientation is
    applied; an animation gives its first frame; any mode becomes RGB (:func:`to_rgb`).
    ``name`` is how errors call the source (default: the path, or "the upload").

    Raises :class:`~cnnlab.errors.CorruptImageError` (not an image, truncated, damaged,
    empty), :class:`ImageNotFoundError` (no such file) or :class:`ImageTooLargeError`. A
    PIL image already in memory is not held to ``max_pixels``.

    Example:
        >>> decode_image(Image.new("L", (3, 2), 128)).getpixel((0, 0))
        (128, 128, 128)
        >>> decode_image(b"not an image")
        Traceback (most recent call last):
        ...
        cnnlab.errors.CorruptImageError: the upload is not an image PIL can read ... it is a text file...
    """
    what = _name(source, name)
    if isinstance(source, Image.Image):
        image = source  # already in memory: no bomb to defuse
    else:
        image = _open(source, what)
        check_pixels(*image.size, what, max_pixels)
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)  # the first frame of a GIF, APNG or WebP animation
        image.load()  # decode now: a truncated file fails here, not later
        image = ImageOps.exif_transpose(image) or image
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise _damaged(what, error) from error
    try:
        return to_rgb(image)
    except ValueError as error:
        raise CorruptImageError(
            f"{what} has the colour mode {image.mode!r}, which cannot be converted to RGB "
            f"({error}): save it as an ordinary RGB or grayscale JPEG or PNG."
        ) from error


__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "check_pixels",
    "decode_image",
    "to_rgb",
]
