"""The bench tool, through the local sandbox, real bash and a real git repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools.base import ToolContext, ToolResult, call_tool
from tools.bench import BenchTool, parse_figure

# The figure the benchmark prints comes from kernel.txt, so "editing the kernel" changes it.
LATENCY = 'echo "warming up"; echo "latency: $(cat kernel.txt) ms"'
CORRECT = "grep -q correct notes.txt"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo, check=True, capture_output=True, text=True,
    ).stdout


@pytest.fixture
def repo(workspace: Path) -> Path:
    git(workspace, "init", "-q")
    (workspace / "kernel.txt").write_text("10\n")
    (workspace / "notes.txt").write_text("correct\n")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-qm", "first")
    return workspace


async def bench(tool: BenchTool, ctx: ToolContext, **arguments: Any) -> ToolResult:
    return await call_tool({"bench": tool}, "bench", json.dumps(arguments), ctx)


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_regex_median_spread_and_ledger_row(repo: Path, tmp_path: Path, ctx: ToolContext) -> None:
    ledger = tmp_path / "session" / "ledger.jsonl"
    # Each run prints a larger figure (10, 20, ... 50), and an earlier decoy line the last match overrides.
    counter = 'c=$(( $(cat ../count 2>/dev/null || echo 0) + 1 )); echo $c > ../count; '
    command = counter + 'echo "time: 999 ms"; echo "time: $((c * 10)) ms"'
    seen: list[str] = []
    ctx.on_output = seen.append
    result = await bench(BenchTool(ledger), ctx, command=command, metric_regex=r"time: (\d+) ms", label="v1")
    assert not result.is_error, result.output
    row = result.data["submission"]
    assert row["runs"] == [10, 20, 30, 40, 50]
    assert (row["figure"], row["min"], row["max"]) == (30, 10, 50)
    assert row["spread_pct"] == pytest.approx(40 / 30 * 100)
    assert row["sha"] == git(repo, "rev-parse", "HEAD").strip() and row["dirty"] is False
    assert row["status"] == "ok" and row["seq"] == 1 and row["label"] == "v1" and row["goal"] == "min"
    assert "median 30 (spread 133.3%, min 10, max 50, 5 runs" in result.output
    assert "first accepted submission" in result.output
    assert "Submissions so far: 1 (1 accepted, 0 refused, 0 failed)" in result.output
    assert any("run 5 of 5: 50" in chunk for chunk in seen)
    [stored] = ledger_rows(ledger)
    assert stored == row and {"ts", "command", "reason"} <= stored.keys()


def test_parse_figure_regex_and_json_paths() -> None:
    assert parse_figure("a 1.5\nb\na 2e3\n", r"a ([\d.e]+)", None) == 2000
    log_then_json = 'compiling\n{"note": "not this"}\n{"results": {"latency_ms": 0.25}}\ndone\n'
    assert parse_figure(log_then_json, None, "results.latency_ms") == 0.25
    pretty = json.dumps({"rows": [{"tflops": 1}, {"tflops": "2.5"}]}, indent=2)
    assert parse_figure(pretty, None, "rows.1.tflops") == 2.5
    assert parse_figure("[3, 4]", None, "-1") == 4
    with pytest.raises(ValueError, match=r"no key 'latency' at results .*keys there: latency_ms"):
        parse_figure(log_then_json, None, "results.latency")
    with pytest.raises(ValueError, match="not an index into the list of 2 items at rows"):
        parse_figure(pretty, None, "rows.7.tflops")
    with pytest.raises(ValueError, match="not a number"):
        parse_figure('{"a": true}', None, "a")
    with pytest.raises(ValueError, match="no JSON object"):
        parse_figure("12 ms", None, "a")
    with pytest.raises(ValueError, match="not a finite number"):
        parse_figure("t: nan", r"t: (\w+)", None)


async def test_json_path_through_the_tool(repo: Path, tmp_path: Path, ctx: ToolContext) -> None:
    command = """python3 -c 'import json; print("log line"); print(json.dumps({"rows": [{"tflops": 7.5}]}))'"""
    result = await bench(BenchTool(tmp_path / "l.jsonl"), ctx, command=command, metric_json_path="rows.0.tflops",
                         goal="max", runs=2)
    assert not result.is_error, result.output
    assert result.data["submission"]["figure"] == 7.5 and result.data["submission"]["runs"] == [7.5, 7.5]


@pytest.mark.parametrize(
    ("goal", "figures", "best", "best_vs_first", "last_vs_first"),
    [
        ("min", ["10", "8", "12"], 8, "20.0% better, 1.25x", "20.0% worse, 0.833x"),
        ("max", ["100", "150", "120"], 150, "50.0% better, 1.5x", "20.0% better, 1.2x"),
    ],
)
async def test_best_so_far_and_improvement_vs_first(
    repo: Path, tmp_path: Path, ctx: ToolContext, goal: str, figures: list[str], best: float,
    best_vs_first: str, last_vs_first: str,
) -> None:
    tool = BenchTool(tmp_path / "ledger.jsonl")
    results = []
    for i, figure in enumerate(figures):
        (repo / "kernel.txt").write_text(figure + "\n")
        results.append(await bench(tool, ctx, command=LATENCY, metric_regex=r"latency: (\S+) ms", goal=goal,
                                   runs=2, label=f"v{i + 1}"))
    second, last = results[1], results[2]
    assert "NEW BEST — was" in second.output and second.data["submission"]["new_best"]
    assert not last.data["submission"]["new_best"]
    assert last.data["best"]["figure"] == best and last.data["best"]["seq"] == 2
    assert last.data["first"]["seq"] == 1
    assert f'Best so far: {best} by #2 "v2"' in last.output
    assert f"best {best_vs_first}; this one {last_vs_first}." in last.output
    assert "Submissions so far: 3 (3 accepted" in last.output
    saved = json.loads((tmp_path / "best.json").read_text())
    assert saved["seq"] == 2 and saved["figure"] == best


async def test_failed_correctness_check_is_refused_and_never_best(
    repo: Path, tmp_path: Path, ctx: ToolContext
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    tool = BenchTool(ledger)
    args = {"command": LATENCY, "metric_regex": r"latency: (\S+) ms", "correctness_command": CORRECT, "runs": 1}
    assert not (await bench(tool, ctx, **args)).is_error
    (repo / "kernel.txt").write_text("1\n")  # ten times faster...
    (repo / "notes.txt").write_text("wrong answer at index 3\n")  # ...but wrong
    refused = await bench(tool, ctx, **args, label="fast but wrong")
    assert refused.is_error
    row = refused.data["submission"]
    assert row["status"] == "refused" and row["figure"] is None and row["runs"] == []
    assert row["reason"] == "the correctness command exited with code 1" and row["dirty"] is True
    assert "REFUSED" in refused.output and "cannot become the best" in refused.output
    assert refused.data["best"]["seq"] == 1 and "Best so far: 10 by #1" in refused.output
    assert "1 accepted, 1 refused, 0 failed" in refused.output
    assert [r["status"] for r in ledger_rows(ledger)] == ["ok", "refused"]
    assert json.loads((tmp_path / "best.json").read_text())["seq"] == 1
    # The check's output comes back so the model can see what was wrong.
    loud = await bench(tool, ctx, **{**args, "correctness_command": "echo 'max abs error 0.5' >&2; exit 4"})
    assert loud.data["submission"]["output_tail"] == "[stderr]\nmax abs error 0.5"
    assert "max abs error 0.5" in loud.output and "exited with code 4" in loud.output


async def test_failing_or_unparsable_run_fails_the_submission(tmp_path: Path, ctx: ToolContext) -> None:
    ledger = tmp_path / "ledger.jsonl"
    tool = BenchTool(ledger)
    crash = await bench(tool, ctx, command="echo 'segfault in kernel' >&2; exit 3", metric_regex=r"t: (\d+)")
    assert crash.is_error and crash.data["submission"]["status"] == "failed"
    assert "run 1 of 5 exited with code 3" in crash.output and "segfault in kernel" in crash.output
    assert crash.data["submission"]["sha"] is None  # not a git repository
    # The second run of three prints no figure: the figure of the first is kept in the ledger row.
    flaky = 'c=$(( $(cat ../n 2>/dev/null || echo 0) + 1 )); echo $c > ../n; [ $c = 1 ] && echo "t: 5" || echo "oops"'
    unparsable = await bench(tool, ctx, command=flaky, metric_regex=r"t: (\d+)", runs=3)
    assert unparsable.is_error
    assert "run 2 of 3: no match for metric_regex" in unparsable.output and "oops" in unparsable.output
    assert unparsable.data["submission"]["runs"] == [5] and unparsable.data["best"] is None
    assert "No accepted submission yet" in unparsable.output
    timed_out = await bench(tool, ctx, command="sleep 5", metric_regex=r"t: (\d+)", timeout=1)
    assert "timed out after 1 s" in timed_out.output
    assert [r["status"] for r in ledger_rows(ledger)] == ["failed", "failed", "failed"]


async def test_ledger_persists_across_tool_instances(repo: Path, tmp_path: Path, ctx: ToolContext) -> None:
    ledger = tmp_path / "ledger.jsonl"
    args = {"command": LATENCY, "metric_regex": r"latency: (\S+) ms", "runs": 1}
    await bench(BenchTool(ledger), ctx, **args, label="baseline")
    (repo / "kernel.txt").write_text("4\n")
    await bench(BenchTool(ledger), ctx, **args, label="tiled")
    (repo / "kernel.txt").write_text("6\n")
    later = await bench(BenchTool(ledger), ctx, **args)
    assert later.data["submission"]["seq"] == 3
    assert later.data["best"]["label"] == "tiled" and later.data["first"]["label"] == "baseline"
    assert "best 60.0% better, 2.5x; this one 40.0% better, 1.67x." in later.output


async def test_best_patch_recovers_a_dirty_best(repo: Path, tmp_path: Path, ctx: ToolContext) -> None:
    tool = BenchTool()  # the default ledger, under the workspace's .m3code/
    args = {"command": LATENCY, "metric_regex": r"latency: (\S+) ms", "runs": 1}
    sha = git(repo, "rev-parse", "HEAD").strip()
    (repo / "kernel.txt").write_text("3\n")
    (repo / "tile.cu").write_text("// new, untracked file\n")
    result = await bench(tool, ctx, **args, label="tiled")
    folder = repo / ".m3code" / "bench"
    assert result.data["ledger"] == str(folder / "ledger.jsonl")
    assert result.data["submission"]["dirty"] is True
    assert f"git checkout {sha[:12]} && git apply {folder / 'best.patch'}" in result.output
    best = json.loads((folder / "best.json").read_text())
    assert best["sha"] == sha and best["patch"] == str(folder / "best.patch")
    assert git(repo, "diff", "--cached", "--name-only") == ""  # the user's index is untouched
    # A fresh checkout of the sha plus the patch is the best version, untracked file included.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", sha)
    git(clone, "apply", str(folder / "best.patch"))
    assert (clone / "kernel.txt").read_text() == "3\n" and (clone / "tile.cu").exists()
    assert not (clone / ".m3code").exists()

    # Once committed, the tree is clean (.m3code/ doesn't count) and a new best needs only its sha.
    git(repo, "add", "kernel.txt", "tile.cu")
    git(repo, "commit", "-qm", "tiled")
    (repo / "kernel.txt").write_text("2\n")
    git(repo, "commit", "-qam", "faster")
    clean = await bench(tool, ctx, **args)
    assert clean.data["submission"]["dirty"] is False and "Clean tree: commit" in clean.output
    assert not (folder / "best.patch").exists()
    assert json.loads((folder / "best.json").read_text())["sha"] == git(repo, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "exactly one of metric_regex or metric_json_path"),
        ({"metric_regex": r"t: (\d+)", "metric_json_path": "a.b"}, "exactly one of metric_regex or metric_json_path"),
        ({"metric_regex": r"t: \d+"}, "needs a group"),
        ({"metric_regex": "t: ("}, "not a valid regular expression"),
        ({"metric_json_path": "a..b"}, "dotted path"),
        ({"metric_regex": r"t: (\d+)", "runs": 0}, "runs"),
        ({"metric_regex": r"t: (\d+)", "goal": "fastest"}, "goal"),
        ({"metric_regex": r"t: (\d+)", "repeat": 3}, "repeat"),
    ],
)
async def test_bad_arguments_are_tool_errors(
    tmp_path: Path, ctx: ToolContext, arguments: dict[str, Any], message: str
) -> None:
    result = await bench(BenchTool(tmp_path / "ledger.jsonl"), ctx, command="echo 't: 1'", **arguments)
    assert result.is_error and "Invalid arguments for bench" in result.output and message in result.output
    assert not (tmp_path / "ledger.jsonl").exists()
