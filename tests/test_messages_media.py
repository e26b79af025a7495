"""Image sizes and PDF pages read from the bytes themselves (messages/media.py)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest

from agentjobs.messages import media


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg_header(width: int, height: int, app_bytes: int = 16) -> bytes:
    """SOI, an APP1 segment of ``app_bytes`` (EXIF would sit there), a progressive
    frame header: what a JPEG's size is read from."""
    app = b"\xff\xe1" + struct.pack(">H", app_bytes + 2) + b"\x00" * app_bytes
    sof = b"\xff\xc2" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app + sof + b"\xff\xda\x00\x08" + b"\x00" * 6 + b"\xff\xd9"


def riff(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_lossy(width: int, height: int) -> bytes:
    return riff(b"VP8 ", b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", width, height))


def webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    return riff(b"VP8L", b"\x2f" + bits.to_bytes(4, "little"))


def webp_extended(width: int, height: int) -> bytes:
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return riff(b"VP8X", b"\x00\x00\x00\x00" + size)


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


@pytest.mark.parametrize(
    ("data", "kind", "size"),
    [
        (png(640, 480), "image/png", (640, 480)),
        (gif(320, 200), "image/gif", (320, 200)),
        (jpeg_header(1920, 1080), "image/jpeg", (1920, 1080)),
        (webp_lossy(800, 600), "image/webp", (800, 600)),
        (webp_lossless(16383, 2), "image/webp", (16383, 2)),
        (webp_extended(5000, 7000), "image/webp", (5000, 7000)),
    ],
    ids=["png", "gif", "jpeg", "webp-lossy", "webp-lossless", "webp-extended"],
)
def test_sizes_from_headers(data: bytes, kind: str, size: tuple[int, int]) -> None:
    assert media.sniff(data) == kind
    assert media.image_size(data) == size
    info = media.inspect_image(base64.b64encode(data).decode())
    assert info == media.ImageInfo(kind, *size)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
@pytest.mark.parametrize("lossless", [False, True])
def test_sizes_of_images_a_real_encoder_wrote(fmt: str, lossless: bool) -> None:
    image_lib = pytest.importorskip("PIL.Image")
    out = io.BytesIO()
    options = {"lossless": lossless} if fmt == "WEBP" else {"progressive": lossless}
    image_lib.new("RGB", (733, 211), (200, 30, 30)).save(out, fmt, **options)
    info = media.inspect_image(base64.b64encode(out.getvalue()).decode())
    assert info == media.ImageInfo(f"image/{fmt.lower()}", 733, 211)


def test_a_jpeg_whose_metadata_outgrows_the_first_read() -> None:
    data = jpeg_header(4000, 3000, app_bytes=65_000)  # the frame header is past 64 kB
    assert len(base64.b64encode(data)) > 65_536
    assert media.inspect_image(base64.b64encode(data).decode()) == media.ImageInfo(
        "image/jpeg", 4000, 3000
    )


def test_unknown_or_cut_short() -> None:
    assert media.inspect_image(base64.b64encode(b"%PDF-1.7 not an image").decode()) is None
    assert media.inspect_image("") is None
    # the type is clear, the size is not: known type, no size
    assert media.inspect_image(base64.b64encode(png(4, 4)[:20]).decode()) == media.ImageInfo(
        "image/png"
    )
    assert media.image_size(b"\xff\xd8\xff\xe0\x00") is None


def test_base64_is_decoded_leniently() -> None:
    data = base64.b64encode(png(3, 2)).decode()
    wrapped = "\n".join(data[i : i + 76] for i in range(0, len(data), 76))
    assert media.inspect_image(wrapped) == media.ImageInfo("image/png", 3, 2)
    assert media.decode_base64("not base64 at all!") == media.decode_base64("notbase64atall")


def pdf(pages: int, *, hide_pages: bool = False, count: int | None = None) -> bytes:
    objects = [b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj"]
    tree = f"2 0 obj << /Type /Pages /Count {count if count is not None else pages} >> endobj"
    objects.append(tree.encode())
    if not hide_pages:
        for i in range(pages):
            objects.append(f"{3 + i} 0 obj << /Type /Page /Parent 2 0 R >> endobj".encode())
    return b"%PDF-1.7\n" + b"\n".join(objects) + b"\n%%EOF"


def test_pdf_pages() -> None:
    assert media.pdf_pages(pdf(3)) == 3
    # page objects inside compressed object streams: the page tree's count
    assert media.pdf_pages(pdf(0, hide_pages=True, count=12)) == 12
    # nothing readable: one page per 100 kB, at least one
    assert media.pdf_pages(b"%PDF-1.7" + b"\x00" * 250_000) == 2
    assert media.pdf_pages(b"%PDF-1.7") == 1
