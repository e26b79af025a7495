"""Real image and PDF files for the simulator's tests, made by Pillow's encoders."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}


def image_bytes(width: int, height: int, media_type: str = "image/png") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(out, FORMATS[media_type])
    return out.getvalue()


def pdf_bytes(pages: int) -> bytes:
    out = io.BytesIO()
    first, *rest = [Image.new("RGB", (60, 80), (255, 255, 255)) for _ in range(pages)]
    first.save(out, "PDF", save_all=True, append_images=rest)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_block(width: int = 640, height: int = 480, media_type: str = "image/png") -> Any:
    data = b64(image_bytes(width, height, media_type))
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def pdf_block(pages: int = 3, **extra: Any) -> Any:
    source = {"type": "base64", "media_type": "application/pdf", "data": b64(pdf_bytes(pages))}
    return {"type": "document", "source": source, **extra}
