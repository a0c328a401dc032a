"""The grep and glob tools."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.tools.helpers import RunTool
from tools.globs import compile_glob


@pytest.fixture
def tree(workspace: Path) -> Path:
    files = {
        "src/app.py": "import os\n\ndef main():\n    return os.getcwd()\n",
        "src/util.py": "def helper():\n    return 42\n",
        "src/web/page.ts": "export const main = () => 1;\n",
        "README.md": "Run main.\n",
        "node_modules/lib/index.js": "function main() {}\n",
        ".venv/lib/site.py": "def main(): pass\n",
    }
    for name, content in files.items():
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (workspace / "logo.bin").write_bytes(b"main\0\x01\x02")
    return workspace


async def test_grep_content_mode(tree: Path, run_tool: RunTool) -> None:
    result = await run_tool("grep", pattern=r"def \w+\(")
    assert not result.is_error
    assert result.output.splitlines() == ["src/app.py:3:def main():", "src/util.py:1:def helper():"]


async def test_grep_skips_binary_and_dependency_folders(tree: Path, run_tool: RunTool) -> None:
    result = await run_tool("grep", pattern="main", output_mode="files")
    assert sorted(result.output.splitlines()) == ["README.md", "src/app.py", "src/web/page.ts"]
    inside = await run_tool("grep", pattern="main", path="node_modules")
    assert inside.output == "node_modules/lib/index.js:1:function main() {}"


async def test_grep_glob_case_count_and_context(tree: Path, run_tool: RunTool) -> None:
    only_ts = await run_tool("grep", pattern="MAIN", glob="*.{ts,tsx}", case_insensitive=True)
    assert only_ts.output == "src/web/page.ts:1:export const main = () => 1;"
    nested = await run_tool("grep", pattern="return", glob="src/*.py", output_mode="count")
    assert nested.output.splitlines()[:2] == ["src/app.py:1", "src/util.py:1"]
    assert "2 matching lines in 2 files" in nested.output
    context = await run_tool("grep", pattern="getcwd", path="src/app.py", context=1)
    assert context.output.splitlines() == ["src/app.py-3-def main():", "src/app.py:4:    return os.getcwd()"]
    groups = await run_tool("grep", pattern="^def|return 42", path="src", context=1)
    assert groups.output.splitlines() == [
        "src/app.py-2-", "src/app.py:3:def main():", "src/app.py-4-    return os.getcwd()",
        "--",
        "src/util.py:1:def helper():", "src/util.py:2:    return 42",
    ]


async def test_grep_caps_results(workspace: Path, run_tool: RunTool) -> None:
    (workspace / "many.txt").write_text("hit\n" * 50)
    result = await run_tool("grep", pattern="hit", max_results=10)
    lines = result.output.splitlines()
    assert lines[:10] == [f"many.txt:{i}:hit" for i in range(1, 11)]
    assert "capped at 10 matching lines" in lines[10] and result.data["capped"]
    (workspace / "more.txt").write_text("hit\n")
    exact = await run_tool("grep", pattern="hit", max_results=50, output_mode="files")
    assert exact.output.splitlines() == ["many.txt", "more.txt"] and not exact.data["capped"]
    one_file = await run_tool("grep", pattern="hit", max_results=1, output_mode="files")
    assert one_file.data == {"matches": 0, "files": 1, "capped": True}


async def test_grep_invalid_regex_and_no_match(tree: Path, run_tool: RunTool) -> None:
    bad = await run_tool("grep", pattern="foo(")
    assert bad.is_error and "Invalid regular expression" in bad.output and "missing )" in bad.output
    none = await run_tool("grep", pattern="zzz_absent")
    assert not none.is_error and "No matches" in none.output
    outside = await run_tool("grep", pattern="x", path="..")
    assert outside.is_error and "outside the workspace" in outside.output


async def test_grep_honours_gitignore_in_a_repository(tree: Path, run_tool: RunTool) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
    (tree / ".gitignore").write_text("README.md\n")
    result = await run_tool("grep", pattern="main", output_mode="files")
    assert sorted(result.output.splitlines()) == ["src/app.py", "src/web/page.ts"]


async def test_glob_sorted_newest_first(tree: Path, run_tool: RunTool) -> None:
    os.utime(tree / "src/util.py", (1_000_000, 1_000_000))
    os.utime(tree / "src/app.py", (2_000_000, 2_000_000))
    result = await run_tool("glob", pattern="**/*.py")
    assert result.output.splitlines() == ["src/app.py", "src/util.py"]
    top = await run_tool("glob", pattern="*.md")
    assert top.output == "README.md"
    scoped = await run_tool("glob", pattern="*.ts", path="src/web")
    assert scoped.output == "src/web/page.ts"
    none = await run_tool("glob", pattern="**/*.rs")
    assert "No files match" in none.output


async def test_glob_caps_results(workspace: Path, run_tool: RunTool) -> None:
    for i in range(510):
        (workspace / f"f{i}.txt").write_text("")
    result = await run_tool("glob", pattern="*.txt")
    lines = result.output.splitlines()
    assert len(lines) == 501 and "500 newest of 510" in lines[-1]


def test_compile_glob() -> None:
    assert compile_glob("**/*.py").fullmatch("a.py") and compile_glob("**/*.py").fullmatch("x/y/a.py")
    assert not compile_glob("*.py").fullmatch("x/a.py")
    assert compile_glob("src/**/test_?.[ch]").fullmatch("src/a/b/test_1.c")
    assert compile_glob("a/**/b").fullmatch("a/b") and compile_glob("a/**/b").fullmatch("a/x/y/b")
    negated = compile_glob("[!a]*.{js,ts}")
    assert negated.fullmatch("b.ts") and negated.fullmatch("c.js") and not negated.fullmatch("a.ts")
