"""Service logos: a base64 PNG checked by decoding it (not by its first bytes only) and
stored resized to fit IO's logo box, so an app never downloads a 4000-pixel logo."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

from PIL import Image, UnidentifiedImageError

from civio.core.problems import Problem

# IO asks for square logos of 300 px; larger ones are scaled down to fit, aspect kept.
LOGO_BOX = (300, 300)
# Refused before decoding: a small file can claim a huge canvas (a decompression bomb).
MAX_PIXELS = 25_000_000


def invalid(detail: str) -> Problem:
    return Problem(400, "Invalid Logo", detail)


def resized_png(encoded: str) -> bytes:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("The logo is not valid base64.") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=["PNG"])
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise invalid(f"The logo is too large ({width}x{height} pixels).")
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise invalid("The logo must be a PNG image.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise invalid("The logo is too large.") from None
    try:
        image.thumbnail(LOGO_BOX)
        fitted: Image.Image = image
        if fitted.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            fitted = fitted.convert("RGBA")
        out = io.BytesIO()
        fitted.save(out, format="PNG", optimize=True)
    except (OSError, ValueError):
        raise invalid(f"The logo's PNG colour mode ({image.mode}) is not supported.") from None
    return out.getvalue()
