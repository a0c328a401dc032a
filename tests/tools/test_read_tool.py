"""The read tool."""

from __future__ import annotations

from pathlib import Path

from tests.tools.helpers import RunTool
from tools.files import MAX_WHOLE_READ_BYTES


async def test_reads_with_line_numbers_and_footer(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "a.txt").write_text("alpha\nbeta\ngamma\n")
    result = await run_tool("read", path="a.txt")
    assert not result.is_error
    assert result.output.splitlines() == [
        "     1\talpha", "     2\tbeta", "     3\tgamma", "[Lines 1-3 of 3; end of file.]",
    ]
    assert result.data["total_lines"] == 3


async def test_offset_and_limit(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "n.txt").write_text("".join(f"line {i}\n" for i in range(1, 101)))
    result = await run_tool("read", path="n.txt", offset=10, limit=5)
    lines = result.output.splitlines()
    assert lines[0] == "    10\tline 10" and lines[4] == "    14\tline 14"
    assert "Lines 10-14 of 100" in lines[5] and "offset=15" in lines[5]
    past = await run_tool("read", path="n.txt", offset=101)
    assert past.is_error and "past the end" in past.output and "100 lines" in past.output


async def test_long_lines_are_cut_and_crlf_hidden(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "w.txt").write_bytes(b"x" * 5000 + b"\r\nshort\r\n")
    result = await run_tool("read", path="w.txt")
    first, second = result.output.splitlines()[:2]
    assert "line cut: 5000 characters" in first and len(first) < 2100
    assert second == "     2\tshort"
    assert "1 long line(s) cut" in result.output


async def test_empty_file(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "empty.txt").write_text("")
    result = await run_tool("read", path="empty.txt")
    assert not result.is_error and "empty" in result.output


async def test_binary_refused(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0" + bytes(range(256)) * 8)
    (workspace / "latin1.txt").write_bytes("café".encode("latin-1"))
    for name in ("img.png", "latin1.txt"):
        result = await run_tool("read", path=name)
        assert result.is_error and "binary" in result.output
    assert "KB" in (await run_tool("read", path="img.png")).output


async def test_huge_file_refused_without_range(workspace: Path, run_tool: RunTool) -> None:
    line = b"y" * 99 + b"\n"
    (workspace / "big.log").write_bytes(line * (MAX_WHOLE_READ_BYTES // len(line) + 10))
    result = await run_tool("read", path="big.log")
    assert result.is_error and "offset and limit" in result.output and "grep" in result.output
    part = await run_tool("read", path="big.log", offset=3, limit=2)
    assert not part.is_error and part.output.startswith("     3\t")


async def test_missing_file_suggests_similar_names(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "config.py").write_text("")
    (workspace / "settings.py").write_text("")
    near = await run_tool("read", path="src/confg.py")
    assert near.is_error and "not found" in near.output and "src/config.py" in near.output
    elsewhere = await run_tool("read", path="settings/settings.py")
    assert "settings.py" in elsewhere.output.split("Did you mean")[1]
    nothing = await run_tool("read", path="nope/zzz.md")
    assert "not found" in nothing.output and "does not exist either" in nothing.output


async def test_directory_refused(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "pkg").mkdir()
    result = await run_tool("read", path="pkg")
    assert result.is_error and "directory" in result.output and "glob" in result.output


async def test_outside_workspace_refused(run_tool: RunTool) -> None:
    result = await run_tool("read", path="/etc/hostname")
    assert result.is_error and "outside the workspace" in result.output
