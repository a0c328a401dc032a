"""The write, edit and multi_edit tools, on real files."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.tools.helpers import RunTool

SOURCE = """def greet(name):
    message = "hello " + name
    print(message)


def part(name):
    print("bye " + name)
"""


async def test_write_creates_then_overwrites(workspace: Path, run_tool: RunTool) -> None:
    created = await run_tool("write", path="pkg/sub/new.py", content="a = 1\nb = 2\n")
    assert not created.is_error and created.output == "Created pkg/sub/new.py (2 lines)."
    assert created.data["created"] is True and "+a = 1" in created.data["diff"]
    again = await run_tool("write", path="pkg/sub/new.py", content="a = 3\n")
    assert again.output == "Overwrote pkg/sub/new.py (1 lines; it had 2 lines)."
    assert "-a = 1" in again.data["diff"] and "+a = 3" in again.data["diff"]
    assert (workspace / "pkg/sub/new.py").read_text() == "a = 3\n"
    same = await run_tool("write", path="pkg/sub/new.py", content="a = 3\n")
    assert "nothing was written" in same.output


async def test_write_keeps_crlf_and_refuses_directories(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "win.txt").write_bytes(b"one\r\ntwo\r\n")
    await run_tool("write", path="win.txt", content="uno\ndos\n")
    assert (workspace / "win.txt").read_bytes() == b"uno\r\ndos\r\n"
    (workspace / "d").mkdir()
    result = await run_tool("write", path="d", content="x")
    assert result.is_error and "directory" in result.output


async def test_edit_unique_match(workspace: Path, run_tool: RunTool) -> None:
    target = workspace / "m.py"
    target.write_text(SOURCE)
    target.chmod(0o755)
    result = await run_tool(
        "edit", path="m.py", old_string='print("bye " + name)', new_string='print("see you", name)'
    )
    assert not result.is_error
    assert "replaced 1 occurrence" in result.output and '     7\t    print("see you", name)' in result.output
    assert target.read_text() == SOURCE.replace('print("bye " + name)', 'print("see you", name)')
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert '+    print("see you", name)' in result.data["diff"]


async def test_edit_missing_quotes_the_nearest_lines(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "m.py").write_text(SOURCE)
    result = await run_tool(
        "edit", path="m.py", old_string='    message = "helo " + name\n    print(mesage)', new_string="x"
    )
    assert result.is_error and "not found" in result.output
    assert "lines 2-3" in result.output
    assert '     2\t    message = "hello " + name' in result.output
    assert "     3\t    print(message)" in result.output
    assert "whitespace" in result.output
    assert (workspace / "m.py").read_text() == SOURCE


async def test_edit_whitespace_only_difference_is_named(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "m.py").write_text(SOURCE)
    result = await run_tool("edit", path="m.py", old_string='  message = "hello " + name\n  print(message)',
                            new_string="pass")
    assert result.is_error and "differ from old_string only in whitespace" in result.output


async def test_edit_with_line_number_prefixes_gets_a_hint(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "m.py").write_text(SOURCE)
    result = await run_tool("edit", path="m.py", old_string="     3\t    print(message)", new_string="pass")
    assert result.is_error and "line numbers" in result.output


async def test_edit_multiple_matches_needs_replace_all(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "m.py").write_text(SOURCE)
    result = await run_tool("edit", path="m.py", old_string="print(", new_string="log(")
    assert result.is_error and "occurs 2 times" in result.output and "lines 3, 7" in result.output
    assert "replace_all" in result.output
    done = await run_tool("edit", path="m.py", old_string="print(", new_string="log(", replace_all=True)
    assert not done.is_error and "replaced 2 occurrences" in done.output
    assert (workspace / "m.py").read_text().count("log(") == 2


async def test_edit_refuses_noop_and_empty_old_string(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "m.py").write_text(SOURCE)
    same = await run_tool("edit", path="m.py", old_string="greet", new_string="greet")
    assert same.is_error and "identical" in same.output
    empty = await run_tool("edit", path="m.py", old_string="", new_string="x")
    assert empty.is_error and "use write" in empty.output
    missing = await run_tool("edit", path="nope.py", old_string="a", new_string="b")
    assert missing.is_error and "not found" in missing.output


async def test_edit_keeps_crlf_line_endings(workspace: Path, run_tool: RunTool) -> None:
    target = workspace / "win.py"
    target.write_bytes(b"a = 1\r\nb = 2\r\nc = 3\r\n")
    result = await run_tool(
        "edit", path="win.py", old_string="a = 1\nb = 2\n", new_string="a = 10\nb = 20\nz = 0\n"
    )
    assert not result.is_error, result.output
    assert target.read_bytes() == b"a = 10\r\nb = 20\r\nz = 0\r\nc = 3\r\n"
    one_line = await run_tool("edit", path="win.py", old_string="c = 3", new_string="c = 3\nd = 4")
    assert not one_line.is_error
    assert target.read_bytes().endswith(b"c = 3\r\nd = 4\r\n")


async def test_edit_unicode(workspace: Path, run_tool: RunTool) -> None:
    target = workspace / "u.txt"
    target.write_text("naïve café 🚀\nünïcödé ✓\n", encoding="utf-8")
    result = await run_tool("edit", path="u.txt", old_string="café 🚀", new_string="咖啡 ☕")
    assert not result.is_error
    assert target.read_text(encoding="utf-8") == "naïve 咖啡 ☕\nünïcödé ✓\n"


async def test_edit_keeps_missing_final_newline(workspace: Path, run_tool: RunTool) -> None:
    target = workspace / "n.txt"
    target.write_text("first\nlast")
    await run_tool("edit", path="n.txt", old_string="first", new_string="1st")
    await run_tool("edit", path="n.txt", old_string="last", new_string="final")
    assert target.read_text() == "1st\nfinal"
    assert "\\ No newline at end of file" in (
        await run_tool("edit", path="n.txt", old_string="final", new_string="end")
    ).data["diff"]


async def test_edit_refuses_binary(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "b.bin").write_bytes(b"abc\0def")
    result = await run_tool("edit", path="b.bin", old_string="abc", new_string="x")
    assert result.is_error and "binary" in result.output


async def test_multi_edit_applies_in_order(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "m.py").write_text(SOURCE)
    result = await run_tool("multi_edit", path="m.py", edits=[
        {"old_string": "def greet(name):", "new_string": "def welcome(name):"},
        {"old_string": "welcome(name)", "new_string": "welcome(person)"},
        {"old_string": "name", "new_string": "person", "replace_all": True},
    ])
    assert not result.is_error, result.output
    text = (workspace / "m.py").read_text()
    assert "def welcome(person):" in text and "name" not in text
    assert "Applied 3 edits" in result.output and result.data["diff"]


async def test_multi_edit_is_atomic(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "m.py").write_text(SOURCE)
    result = await run_tool("multi_edit", path="m.py", edits=[
        {"old_string": "def greet(name):", "new_string": "def welcome(name):"},
        {"old_string": "print(", "new_string": "log("},
    ])
    assert result.is_error
    assert "edit 2 of 2 (edits[1])" in result.output and "occurs 2 times" in result.output
    assert "No changes were written" in result.output
    assert (workspace / "m.py").read_text() == SOURCE
    empty = await run_tool("multi_edit", path="m.py", edits=[])
    assert empty.is_error and "edits" in empty.output
