"""Images and PDFs: what the bytes say (type, size, pages) and what they cost in tokens.

Image type and dimensions are read from the file header (PNG, JPEG, GIF, WebP), as the
API reads them to check the declared ``media_type`` and to price the image: about
``width x height / 750`` tokens after the API's resize (long edge at most 1,568 px and
about 1.15 megapixels), so never more than about 1,600. A PDF costs a fixed estimate
per page (each page is read as text and as an image); its pages are counted from the
page objects in the file.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
#: The API's limits for one image: bytes of its base64 data, pixels per edge.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_EDGE = 8000
#: Larger images are scaled down to fit both before they are priced.
RESIZE_LONG_EDGE = 1568
RESIZE_PIXELS = 1_150_000
#: An image whose size is not known here (by URL or file id) is priced at the cap.
IMAGE_MAX_TOKENS = 1600
#: Anthropic's estimate is 1,500-3,000 tokens per page (text plus the page image).
PDF_PAGE_TOKENS = 2000
MAX_PDF_PAGES = 100
#: Enough base64 to reach the frame header of any ordinary JPEG (after EXIF, at most 64 KB).
_HEAD_CHARS = 96 * 1024

_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_COUNT = re.compile(rb"/Count\s+(\d+)")


class BadMedia(ValueError):
    """Bytes that are not what they claim, or that cannot be read."""


def decode(data: str, head_only: bool = False) -> bytes:
    """The bytes of base64 ``data`` (only its first ~70 KB with ``head_only``)."""
    if head_only and len(data) > _HEAD_CHARS:
        data = data[:_HEAD_CHARS]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadMedia("The image data is not valid base64") from None


def sniff(head: bytes) -> tuple[str, int, int]:
    """(media type, width, height) from an image's first bytes; BadMedia if unknown."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return "image/png", width, height
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return "image/gif", width, height
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", *_webp_size(head)
    if head[:2] == b"\xff\xd8":
        return "image/jpeg", *_jpeg_size(head)
    raise BadMedia("Could not process image")


def _webp_size(head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise BadMedia("Could not process image")


# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(head: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            raise BadMedia("Could not process image")
        marker = head[i + 1]
        if marker == 0xFF:  # padding
            i += 1
            continue
        if marker in _SOF:
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return width, height
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        i += 2 + length
    raise BadMedia("Could not process image")


def image_tokens(width: int, height: int) -> int:
    """Tokens of a ``width`` x ``height`` image, after the API's downscaling."""
    scale = min(
        1.0,
        RESIZE_LONG_EDGE / max(width, height, 1),
        math.sqrt(RESIZE_PIXELS / max(width * height, 1)),
    )
    pixels = (width * scale) * (height * scale)
    return max(1, min(IMAGE_MAX_TOKENS, math.ceil(pixels / 750)))


def pdf_pages(data: bytes) -> int:
    """Pages of a PDF: its ``/Type /Page`` objects, else (objects in compressed streams)
    the largest ``/Count`` of a page tree node, else one."""
    if not data.startswith(b"%PDF-"):
        raise BadMedia("The PDF specified was not valid.")
    pages = len(_PAGE.findall(data))
    if pages == 0:
        pages = max((int(n) for n in _COUNT.findall(data)), default=1)
    return max(1, pages)
