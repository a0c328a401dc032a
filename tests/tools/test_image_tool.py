"""The image tool on real files, and an agent run where the model looks at an image and still has it on
resume: a subprocess, a scripted model over real HTTP."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import pytest

from tests.e2e.helpers import call, events, m3code, session_dirs
from tests.tools.helpers import RunTool
from tools.image import MAX_IMAGE_BYTES, image_dimensions, sniff_image


def tiny_png(width: int = 3, height: int = 2, rgb: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """A valid PNG of one colour, built by hand: signature, IHDR, IDAT (zlib), IEND."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


async def test_a_png_is_attached(workspace: Path, run_tool: RunTool) -> None:
    png = tiny_png()
    (workspace / "shots").mkdir()
    (workspace / "shots" / "red.png").write_bytes(png)
    result = await run_tool("image", path="shots/red.png")
    assert not result.is_error, result.output
    assert result.output == f"Attached shots/red.png (PNG, 3×2, {len(png)} bytes). The image follows."
    image = result.data["image"]
    assert image == {"media_type": "image/png", "data": base64.b64encode(png).decode(), "path": "shots/red.png"}
    assert result.data["width"] == 3 and result.data["height"] == 2 and result.data["bytes"] == len(png)
    # an absolute path inside the workspace names the same file
    again = await run_tool("image", path=str(workspace / "shots" / "red.png"))
    assert again.data["image"] == image


async def test_the_format_comes_from_the_bytes_not_the_name(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "really-a-png.jpg").write_bytes(tiny_png())
    result = await run_tool("image", path="really-a-png.jpg")
    assert not result.is_error and result.data["image"]["media_type"] == "image/png"

    (workspace / "notes.png").write_text("just some text, not a picture\n")
    refused = await run_tool("image", path="notes.png")
    assert refused.is_error
    assert "notes.png is not a PNG, JPEG, GIF or WebP image" in refused.output
    assert "image" not in refused.data


def test_formats_and_dimensions_by_magic_bytes() -> None:
    gif = b"GIF89a" + struct.pack("<HH", 640, 480) + b"\x00" * 8
    jpeg = (b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
            + b"\xff\xc0" + struct.pack(">HBHH", 17, 8, 600, 800) + b"\x03" + b"\x00" * 9)
    webp = (b"RIFF" + struct.pack("<I", 30) + b"WEBP" + b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
            + (1023).to_bytes(3, "little") + (767).to_bytes(3, "little"))
    cases = {"image/png": tiny_png(5, 7), "image/gif": gif, "image/jpeg": jpeg, "image/webp": webp}
    sizes = {"image/png": (5, 7), "image/gif": (640, 480), "image/jpeg": (800, 600), "image/webp": (1024, 768)}
    for media_type, data in cases.items():
        assert sniff_image(data[:16]) == media_type
        assert image_dimensions(data, media_type) == sizes[media_type]
    for other in (b"BM6\x00\x00\x00", b"%PDF-1.7", b"<svg xmlns=", b"", b"RIFF\x00\x00\x00\x00WAVE"):
        assert sniff_image(other) is None


async def test_an_oversize_image_is_refused_with_the_limit_named(workspace: Path, run_tool: RunTool) -> None:
    big = workspace / "huge.png"
    with big.open("wb") as handle:
        handle.write(tiny_png())
        handle.truncate(MAX_IMAGE_BYTES + 1)
    result = await run_tool("image", path="huge.png")
    assert result.is_error
    assert f"huge.png is 5.0 MB ({MAX_IMAGE_BYTES + 1} bytes), over the limit for images of 5.0 MB" in result.output
    assert "smaller copy" in result.output and "image" not in result.data


async def test_paths_outside_the_workspace_are_refused(workspace: Path, run_tool: RunTool) -> None:
    outside = workspace.parent / "outside.png"
    outside.write_bytes(tiny_png())
    for path in ("../outside.png", str(outside)):
        result = await run_tool("image", path=path)
        assert result.is_error and "outside the workspace" in result.output, result.output
    (workspace / "link.png").symlink_to(outside)
    linked = await run_tool("image", path="link.png")
    assert linked.is_error and "through a symlink" in linked.output


async def test_missing_files_directories_and_bad_arguments(workspace: Path, run_tool: RunTool) -> None:
    missing = await run_tool("image", path="nope.png")
    assert missing.is_error and "File not found: nope.png" in missing.output
    (workspace / "pics").mkdir()
    folder = await run_tool("image", path="pics")
    assert folder.is_error and "pics is a directory" in folder.output
    wrong = await run_tool("image", file="x.png")
    assert wrong.is_error and "Invalid arguments for image" in wrong.output


# --- the agent loop: the image goes on the tool message, into the next request, the log, and a resume ---

LOOK = {"turns": [
    {"content": "Let me look at it.", "tool_calls": [call("c1", "image", path="shot.png")]},
    {"content": "It is a red rectangle, 3 by 2 pixels."},
]}


def _image_parts(body: dict) -> list[dict]:
    """Every image part of a request body, in either wire format."""
    parts: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("image", "image_url"):
                parts.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body["messages"])
    return parts


@pytest.mark.parametrize("api_format", ["openai", "anthropic"])
def test_an_agent_run_sends_the_image_the_tool_attached(demo_repo: Path, scripted_server, api_format: str) -> None:
    png = tiny_png()
    (demo_repo / "shot.png").write_bytes(png)
    encoded = base64.b64encode(png).decode()
    server = scripted_server(LOOK)
    base = server.openai_base_url if api_format == "openai" else server.anthropic_base_url
    result = m3code("run", "TASK.md", "--solo", "--sandbox", "local", "--base-url", base,
                    "--api-format", api_format, cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "It is a red rectangle, 3 by 2 pixels."
    first, second = (r["body"] for r in server.requests)
    assert _image_parts(first) == []
    messages = second["messages"]
    if api_format == "openai":
        tool, after = messages[-2], messages[-1]
        assert tool["role"] == "tool" and tool["tool_call_id"] == "c1" and tool["content"].startswith(
            "Attached shot.png (PNG, 3×2")
        assert after == {"role": "user", "content": [
            {"type": "text", "text": "[image from tool call c1]"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
        ]}
    else:
        [result_block] = messages[-1]["content"]
        assert result_block["type"] == "tool_result" and result_block["tool_use_id"] == "c1"
        text, image = result_block["content"]
        assert text["type"] == "text" and text["text"].startswith("Attached shot.png (PNG, 3×2")
        assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": encoded}}
    [session] = session_dirs(demo_repo)
    [logged] = [e for e in events(session) if e["type"] == "tool_result"]
    assert logged["data"]["image"] == {"media_type": "image/png", "data": encoded, "path": "shot.png"}


def test_resume_keeps_the_image(demo_repo: Path, scripted_server) -> None:
    png = tiny_png(4, 4, (0, 0, 255))
    (demo_repo / "shot.png").write_bytes(png)
    server = scripted_server(LOOK)
    first = m3code("run", "TASK.md", "--solo", "--sandbox", "local", "--base-url", server.openai_base_url,
                   "--max-turns", "1", cwd=demo_repo)
    assert first.returncode == 3, first.stderr  # the budget stopped it after the image was taken
    assert len(server.requests) == 1
    [session] = session_dirs(demo_repo)
    again = m3code("run", "--resume", session.name, "--base-url", server.openai_base_url, "--max-turns", "5",
                   cwd=demo_repo)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "It is a red rectangle, 3 by 2 pixels."
    resumed = server.requests[-1]["body"]["messages"]
    assert resumed[-1]["content"][1] == {
        "type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}
    assert resumed[-2]["role"] == "tool" and resumed[-2]["tool_call_id"] == "c1"
