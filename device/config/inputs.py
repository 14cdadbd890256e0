"""``[input]``: limits on the images every command reads (see ``device.sources.files``)."""
from __future__ import annotations

from dataclasses import dataclass

# 40 megapixels is three HQ Camera stills (4056x3040) and about 120 MB as 8-bit BGR: well
# inside a 1 GB Pi, while a 69-byte PNG can claim 40000x40000 (1.6 gigapixels, 4.8 GB).
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


@dataclass(frozen=True)
class InputConfig:
    # Width x height an image header may claim; larger images are refused before decoding.
    # Bounded to 10,000..1,000,000,000 by device.config.limits.
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
