"""What the bytes of an image or a PDF say about it, read from their headers.

Enough for validation (is it the image type it claims, how large) and for the token
estimate (pixels, pages), with no imaging library: PNG, JPEG, GIF and WebP state their
size in the first bytes (a JPEG after its metadata segments), and a PDF names each page
object. Base64 is decoded leniently, as far as needed: a prefix first, the whole only
for a JPEG whose size comes later.
"""

from __future__ import annotations

import binascii
import re
import struct
from dataclasses import dataclass

#: The image types the Messages API takes, by media type.
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
#: Base64 characters decoded first: 48 kB of image, past any usual PNG/GIF/WebP header
#: and most JPEG metadata (an EXIF thumbnail is at most 64 kB; then the whole is read).
_HEAD_CHARS = 65_536


@dataclass(frozen=True)
class ImageInfo:
    """An image's real type, and its size in pixels when the header could be read."""

    media_type: str
    width: int | None = None
    height: int | None = None


def decode_base64(data: str, limit: int | None = None) -> bytes:
    """The bytes of ``data`` (its first ``limit`` characters), ignoring what is not
    base64 and a partial last quantum; b"" when nothing decodes."""
    raw = (data if limit is None else data[:limit]).encode("ascii", "ignore")
    raw = _NOT_BASE64.sub(b"", raw)
    raw = raw[: len(raw) - len(raw) % 4]
    try:
        return binascii.a2b_base64(raw)
    except binascii.Error:
        return b""


def sniff(head: bytes) -> str | None:
    """The media type ``head`` starts like, among the API's four; None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header, None when it cannot be read."""
    kind = sniff(data)
    try:
        if kind == "image/png" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if kind == "image/gif":
            w, h = struct.unpack("<HH", data[6:10])
            return w, h
        if kind == "image/webp":
            return _webp_size(data)
        if kind == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:  # a header cut short
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: after the key-frame tag
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":  # lossless: 14-bit sizes minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas sizes minus one
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


#: JPEG start-of-frame markers (baseline, progressive, lossless, ...): they carry the size.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # standalone markers, no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header seen
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def inspect_image(data: str) -> ImageInfo | None:
    """What base64 ``data`` holds: None when it is none of the API's image types."""
    head = decode_base64(data, _HEAD_CHARS)
    kind = sniff(head)
    if kind is None:
        return None
    size = image_size(head)
    if size is None and kind == "image/jpeg" and len(data) > _HEAD_CHARS:
        size = image_size(decode_base64(data))
    if size is None:
        return ImageInfo(kind)
    return ImageInfo(kind, *size)


_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")
#: Bytes per page assumed when a PDF hides its page objects (compressed object streams).
PDF_BYTES_PER_PAGE = 100_000


def pdf_pages(data: bytes) -> int:
    """Pages of a PDF: its page objects, else its page tree's count, else by size."""
    pages = len(_PAGE.findall(data))
    if pages:
        return pages
    counts = [int(a or b) for a, b in _COUNT.findall(data)]
    if counts:
        return max(1, max(counts))
    return max(1, len(data) // PDF_BYTES_PER_PAGE)
