"""The image tool: attach an image file of the workspace to the conversation, for multimodal models.

The result's `data["image"]` ({media_type, data (base64), path}) is what the agent loop turns into an image
on the tool message. The format is told by the file's first bytes, never by its name.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

from pydantic import Field

from tools.base import Permission, Tool, ToolArgs, ToolContext, ToolError, ToolResult
from tools.paths import display_path, resolve_path
from tools.textfile import format_size

# Images travel whole (base64) in every later request and in the session log (events.jsonl): bigger files
# are refused. Anthropic's messages API takes at most 5 MB an image as well.
MAX_IMAGE_BYTES = 5 * 1024 * 1024

FORMAT_NAMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WebP"}
SUPPORTED = "PNG, JPEG, GIF or WebP"
# Enough of a file to tell its format (WebP needs 12 bytes).
SNIFF_BYTES = 16


class ImageError(ValueError):
    """The file cannot be attached as an image: not one of the formats, or too large."""


def sniff_image(head: bytes) -> str | None:
    """The media type that a file's first bytes announce, or None for anything but PNG/JPEG/GIF/WebP."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_dimensions(data: bytes, media_type: str) -> tuple[int, int] | None:
    """(width, height) from the image's header, when it can be read there; None otherwise."""
    try:
        if media_type == "image/png" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if media_type == "image/gif":
            width, height = struct.unpack("<HH", data[6:10])
            return width, height
        if media_type == "image/webp":
            return _webp_dimensions(data)
        if media_type == "image/jpeg":
            return _jpeg_dimensions(data)
    except struct.error:
        return None
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    # Walk the markers to the first start-of-frame (SOF0..SOF15 but DHT, JPG and DAC).
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def load_image(path: Path, name: str) -> dict[str, Any]:
    """{"media_type", "data" (base64), "path": name} for an image file; ImageError says why not.

    For callers outside a tool run (the app's `@path`); the tool reads through its sandbox instead.
    """
    size = path.stat().st_size
    check_size(size, name)
    return encode_image(path.read_bytes(), name)


def check_size(size: int, name: str) -> None:
    if size > MAX_IMAGE_BYTES:
        raise ImageError(
            f"{name} is {format_size(size)} ({size} bytes), over the limit for images of "
            f"{format_size(MAX_IMAGE_BYTES)} ({MAX_IMAGE_BYTES} bytes): an image goes whole into every later "
            "request and into the session log. Attach a smaller copy (scaled down, or saved as JPEG)."
        )


def encode_image(data: bytes, name: str) -> dict[str, Any]:
    check_size(len(data), name)
    media_type = sniff_image(data[:SNIFF_BYTES])
    if media_type is None:
        what = "it is empty" if not data else f"its first bytes are {data[:8].hex(' ')}"
        raise ImageError(f"{name} is not a {SUPPORTED} image ({what}); only those formats can be attached.")
    return {"media_type": media_type, "data": base64.b64encode(data).decode("ascii"), "path": name}


class ImageArgs(ToolArgs):
    path: str = Field(
        description=f"The image file ({SUPPORTED}): relative to the workspace, or absolute inside it."
    )


class ImageTool(Tool[ImageArgs]):
    name = "image"
    description = (
        f"Look at an image file of the workspace ({SUPPORTED}, up to {format_size(MAX_IMAGE_BYTES)}): the "
        "image is attached to this tool's result, so you see it. Use it for screenshots, plots, diagrams and "
        "other pictures; read text files with read. The format is told by the file's content, not its name."
    )
    Args = ImageArgs
    permission = Permission.READ

    async def run(self, args: ImageArgs, ctx: ToolContext) -> ToolResult:
        path = resolve_path(args.path, ctx.workspace)
        name = display_path(path, ctx.workspace)
        if not path.exists():
            raise ToolError(f"File not found: {name}. Use glob to find image files (e.g. pattern '**/*.png').")
        if path.is_dir():
            raise ToolError(f"{name} is a directory, not an image file. Use glob to list its files.")
        try:
            check_size(path.stat().st_size, name)  # before reading: a huge file is not read at all
            raw = await ctx.sandbox.read(path)
            image = encode_image(raw, name)
        except ImageError as exc:
            raise ToolError(str(exc)) from exc
        dims = image_dimensions(raw, image["media_type"])
        shape = f", {dims[0]}×{dims[1]}" if dims else ""
        sizes = {"width": dims[0], "height": dims[1]} if dims else {}
        return ToolResult(
            f"Attached {name} ({FORMAT_NAMES[image['media_type']]}{shape}, {format_size(len(raw))}). "
            "The image follows.",
            data={"image": image, "path": name, "bytes": len(raw), **sizes},
        )
