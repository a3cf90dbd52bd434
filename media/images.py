"""Image handling with Pillow: probing uploads and rendering thumbnails.

Client-Server API, "Thumbnails": "scale" keeps the aspect ratio and fits the requested
box; "crop" returns the requested aspect ratio. Servers never upscale, and return the
original when it is smaller than the request.

Uploaded files are hostile input: only the decoders listed in ``DECODERS`` are ever
tried, and nothing above ``MAX_SOURCE_PIXELS`` is decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

DECODERS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
# Larger images get 413 M_TOO_LARGE instead of a thumbnail.
MAX_SOURCE_PIXELS = 40_000_000
# Animated thumbnails are made only for sources this small in frames x pixels.
MAX_ANIMATED_PIXELS = 50_000_000
# The spec's recommended sizes, generated at upload.
PREGENERATED = ((32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
                (800, 600, "scale"))  # fmt: skip
# EXIF orientations that swap width and height.
_ROTATED = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    animated: bool


def probe(fp: IO[bytes]) -> ImageInfo | None:
    """The displayed size of an image (EXIF rotation applied), or None if it is not one."""
    try:
        with Image.open(fp, formats=DECODERS) as img:
            width, height = img.size
            if img.format == "JPEG" and img.getexif().get(0x0112) in _ROTATED:
                width, height = height, width
            animated = bool(getattr(img, "is_animated", False))
            return ImageInfo(width, height, str(img.format), animated)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def target_size(
    width: int, height: int, req_width: int, req_height: int, method: str
) -> tuple[int, int] | None:
    """The thumbnail's dimensions for a request, or None when the original is small enough."""
    if req_width >= width and req_height >= height:
        return None
    if method == "scale":
        # Fit the box, keeping the aspect ratio (Synapse's Thumbnailer.aspect).
        if req_width * height < req_height * width:
            return req_width, max(req_width * height // width, 1)
        return max(req_height * width // height, 1), req_height
    # crop: the requested size, or when the original is smaller in one dimension, the
    # largest box of the requested aspect ratio inside it (never upscaled).
    if width >= req_width and height >= req_height:
        return req_width, req_height
    if width * req_height > height * req_width:
        return max(height * req_width // req_height, 1), height
    return width, max(width * req_height // req_width, 1)


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str
    extension: str


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def _resize(img: Image.Image, size: tuple[int, int], method: str) -> Image.Image:
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if _has_alpha(img) else "RGB")
    if method == "crop":
        return ImageOps.fit(img, size, Image.Resampling.LANCZOS)
    return img.resize(size, Image.Resampling.LANCZOS)


def render(fp: IO[bytes], size: tuple[int, int], method: str, *, animated: bool) -> Rendered:
    """A thumbnail of ``size``: animated WebP if asked and the source is animated, else
    PNG for images with transparency and JPEG for the rest."""
    with Image.open(fp, formats=DECODERS) as img:
        out = io.BytesIO()
        # Counting a GIF's frames reads all of it: only when animation is wanted.
        frames = getattr(img, "n_frames", 1) if animated else 1
        if frames > 1 and frames * size[0] * size[1] <= MAX_ANIMATED_PIXELS:
            resized = []
            durations = []
            for frame in ImageSequence.Iterator(img):
                durations.append(int(frame.info.get("duration", 100)))
                resized.append(_resize(frame.convert("RGBA"), size, method))
            resized[0].save(
                out,
                "WEBP",
                save_all=True,
                append_images=resized[1:],
                duration=durations,
                loop=int(img.info.get("loop", 0)),
                quality=80,
            )
            return Rendered(out.getvalue(), "image/webp", "webp")
        img.seek(0)
        transposed = ImageOps.exif_transpose(img)
        thumb = _resize(transposed, size, method)
        if _has_alpha(thumb):
            thumb.save(out, "PNG", optimize=False)
            return Rendered(out.getvalue(), "image/png", "png")
        thumb.convert("RGB").save(out, "JPEG", quality=80)
        return Rendered(out.getvalue(), "image/jpeg", "jpg")
