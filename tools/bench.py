"""The bench tool: run a benchmark N times, parse its figure, and keep a ledger of every submission.

Made for long optimisation loops (a kernel tuned over 100+ tries): each call is a submission, recorded
with its git sha; a submission whose correctness check fails is refused, so a fast but wrong version can
never become the best; and the best version is saved (a patch when the tree is dirty) so later edits
cannot lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import statistics
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sandbox.base import ExecResult
from tools.base import Permission, Tool, ToolArgs, ToolContext, ToolError, ToolResult
from tools.shell import NONINTERACTIVE_ENV

Goal = Literal["min", "max"]
Status = Literal["ok", "refused", "failed"]

DEFAULT_LEDGER = Path(".m3code/bench/ledger.jsonl")  # relative to the workspace
DEFAULT_RUNS = 5
MAX_RUNS = 100
DEFAULT_TIMEOUT_S = 300
MAX_TIMEOUT_S = 3600
TAIL_CHARS = 2000
# Git must not prompt, page, or take the index lock for a mere status (the agent may run git meanwhile).
GIT_ENV = {**NONINTERACTIVE_ENV, "GIT_OPTIONAL_LOCKS": "0"}
# The whole working tree against HEAD, untracked files included, through a throwaway index so the
# user's real index is left alone. The harness's own .m3code/ folders are left out.
SNAPSHOT_SCRIPT = """set -e
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GIT_INDEX_FILE="$tmp/index"
git read-tree HEAD
git add -A -- ':/' ':(top,exclude,glob)**/.m3code/**'
git diff --cached --binary HEAD > "$M3CODE_PATCH_OUT"
"""
FALLBACK_SNAPSHOT = "git diff --binary HEAD -- ':/' ':(top,exclude,glob)**/.m3code/**' > \"$M3CODE_PATCH_OUT\""


class BenchArgs(ToolArgs):
    command: str = Field(min_length=1, description="The benchmark command line, run in the workspace folder.")
    runs: int = Field(
        default=DEFAULT_RUNS, ge=1, le=MAX_RUNS,
        description=f"How many times to run it; the figure is the median (default {DEFAULT_RUNS}).",
    )
    metric_regex: str | None = Field(
        default=None,
        description=(
            "A regular expression whose first group captures the number, matched against each run's "
            "stdout; the last match counts. Example: 'latency: ([0-9.]+) ms'. Give this or metric_json_path."
        ),
    )
    metric_json_path: str | None = Field(
        default=None,
        description=(
            "A dotted path to the number in JSON printed on stdout (the last stdout line that is a JSON "
            "object or array, or the whole stdout), e.g. 'results.latency_ms' or 'rows.0.tflops'. "
            "Give this or metric_regex."
        ),
    )
    goal: Goal = Field(
        default="min",
        description="'min' when lower is better (latency, time), 'max' when higher is better (throughput).",
    )
    correctness_command: str | None = Field(
        default=None,
        description=(
            "A check run before the benchmark; if it exits non-zero the submission is refused (recorded, "
            "never counted as best) and the benchmark is not run."
        ),
    )
    timeout: int = Field(
        default=DEFAULT_TIMEOUT_S, ge=1, le=MAX_TIMEOUT_S,
        description=f"Seconds allowed for each run and for the correctness command (default {DEFAULT_TIMEOUT_S}).",
    )
    label: str | None = Field(
        default=None, max_length=200, description="A short name for this submission, e.g. 'tiled v3'."
    )

    @field_validator("metric_regex")
    @classmethod
    def _regex_has_a_group(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        if pattern.groups < 1:
            raise ValueError("the regular expression needs a group capturing the number, e.g. 'time: ([0-9.]+)'")
        return value

    @field_validator("metric_json_path")
    @classmethod
    def _path_has_no_empty_part(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(part == "" for part in value.split("."))):
            raise ValueError("give a dotted path such as 'results.latency_ms' or 'rows.0.tflops'")
        return value

    @model_validator(mode="after")
    def _exactly_one_metric(self) -> BenchArgs:
        if (self.metric_regex is None) == (self.metric_json_path is None):
            raise ValueError("give exactly one of metric_regex or metric_json_path")
        return self


@dataclass
class _Outcome:
    status: Status
    figures: list[float]
    reason: str | None = None
    output_tail: str | None = None


class BenchTool(Tool[BenchArgs]):
    name = "bench"
    description = (
        "Run a benchmark command several times, take the median of the figure it prints, and record the "
        "submission (git sha, figure, spread) in the session's benchmark ledger. Reports the best so far and "
        "the improvement over the first submission. Give correctness_command to check the code first: a "
        "submission whose check fails is refused and can never become the best. The best version is saved "
        "(best.json, and best.patch when the tree has uncommitted changes) next to the ledger, so it can be "
        "recovered with `git checkout <sha> && git apply best.patch`. Use it for each attempt while "
        "optimising, with the same command, metric and goal each time."
    )
    Args = BenchArgs
    permission = Permission.EXECUTE

    def __init__(self, ledger_path: Path | None = None) -> None:
        """`ledger_path`: the session's ledger file (best.json and best.patch go beside it); relative paths
        and the default, .m3code/bench/ledger.jsonl, are taken from the workspace. Keep it outside the
        repository or under a .m3code/ folder, which the dirty check and the saved patch leave out."""
        self.ledger_path = ledger_path
        # One submission at a time: parallel benchmarks would skew each other's timings and seq numbers.
        self._lock = asyncio.Lock()

    def ledger_for(self, workspace: Path) -> Path:
        path = self.ledger_path if self.ledger_path is not None else DEFAULT_LEDGER
        return path if path.is_absolute() else workspace / path

    async def run(self, args: BenchArgs, ctx: ToolContext) -> ToolResult:
        async with self._lock:
            return await self._submit(args, ctx)

    async def _submit(self, args: BenchArgs, ctx: ToolContext) -> ToolResult:
        ledger = self.ledger_for(ctx.workspace)
        rows = await asyncio.to_thread(_read_ledger, ledger)
        previous_best = _best(rows, args.goal)
        sha, dirty = await _git_state(ctx)
        outcome = await _measure(args, ctx)

        row: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="seconds"),
            "seq": max((r["seq"] for r in rows if isinstance(r.get("seq"), int)), default=0) + 1,
            "label": args.label,
            "command": args.command,
            "correctness_command": args.correctness_command,
            "metric": f"regex:{args.metric_regex}" if args.metric_regex is not None
            else f"json:{args.metric_json_path}",
            "sha": sha,
            "dirty": dirty,
            "status": outcome.status,
            "figure": None,
            "runs": outcome.figures,
            "min": None,
            "max": None,
            "spread_pct": None,
            "goal": args.goal,
            "reason": outcome.reason,
            "output_tail": outcome.output_tail,
        }
        if outcome.status == "ok":
            median = statistics.median(outcome.figures)
            low, high = min(outcome.figures), max(outcome.figures)
            row.update(figure=median, min=low, max=high,
                       spread_pct=(high - low) / abs(median) * 100 if median else None)
        new_best = outcome.status == "ok" and (
            previous_best is None or _better(row["figure"], previous_best["figure"], args.goal)
        )
        row["new_best"] = new_best
        await asyncio.to_thread(_append_row, ledger, row)
        rows.append(row)

        saved_note = await self._save_best(row, ctx, ledger) if new_best else None
        best = _best(rows, args.goal)
        first = next((r for r in rows if r.get("status") == "ok" and r.get("goal") == args.goal), None)
        counts = {status: sum(r.get("status") == status for r in rows) for status in ("ok", "refused", "failed")}
        text = _report(row, previous_best, best, first, counts, saved_note)
        data = {"submission": row, "best": best, "first": first, "counts": counts, "ledger": str(ledger)}
        return ToolResult(text, is_error=outcome.status != "ok", data=data)

    async def _save_best(self, row: dict[str, Any], ctx: ToolContext, ledger: Path) -> str:
        """Write best.json, and best.patch for a dirty tree; say what was saved."""
        folder = ledger.parent
        patch_path = folder / "best.patch"
        note: str
        patch: bytes | None = None
        if row["sha"] is not None and row["dirty"]:
            try:
                patch, complete = await _snapshot_patch(ctx)
                note = f"Patch saved: recover it with `git checkout {row['sha'][:12]} && git apply {patch_path}`"
                if not complete:
                    note += " (tracked files only: git could not add the untracked ones)"
            except (ToolError, OSError) as exc:
                note = f"The uncommitted changes could NOT be saved ({exc}); commit them to keep this version"
        elif row["sha"] is not None:
            note = f"Clean tree: commit {row['sha'][:12]} is the best version"
        else:
            note = "Not a git repository: only the figure is recorded, not the code"
        best = {**row, "patch": str(patch_path) if patch is not None else None}
        await asyncio.to_thread(_write_best, folder, best, patch)
        return note


async def _measure(args: BenchArgs, ctx: ToolContext) -> _Outcome:
    """Run the correctness check, then the benchmark `runs` times; stop at the first failure."""
    if args.correctness_command is not None:
        _progress(ctx, "[bench] correctness check\n")
        check = await ctx.sandbox.exec(
            args.correctness_command, cwd=ctx.workspace, env=NONINTERACTIVE_ENV, timeout=args.timeout,
            on_output=ctx.on_output,
        )
        if check.timed_out or check.exit_code != 0:
            how = f"timed out after {args.timeout} s" if check.timed_out else f"exited with code {check.exit_code}"
            return _Outcome("refused", [], f"the correctness command {how}", _tail(check))
    figures: list[float] = []
    for i in range(1, args.runs + 1):
        result = await ctx.sandbox.exec(
            args.command, cwd=ctx.workspace, env=NONINTERACTIVE_ENV, timeout=args.timeout,
            on_output=ctx.on_output,
        )
        where = f"run {i} of {args.runs}"
        if result.timed_out:
            return _Outcome("failed", figures, f"{where} timed out after {args.timeout} s", _tail(result))
        if result.exit_code != 0:
            return _Outcome("failed", figures, f"{where} exited with code {result.exit_code}", _tail(result))
        try:
            figure = parse_figure(result.stdout, args.metric_regex, args.metric_json_path)
        except ValueError as exc:
            return _Outcome("failed", figures, f"{where}: {exc}", _tail(result))
        figures.append(figure)
        _progress(ctx, f"[bench] {where}: {figure:.6g}\n")
    return _Outcome("ok", figures)


def parse_figure(stdout: str, regex: str | None, json_path: str | None) -> float:
    """The run's figure: the last match of `regex`, or the number at `json_path` in the JSON on stdout."""
    if regex is not None:
        matches = list(re.finditer(regex, stdout))
        if not matches:
            raise ValueError(f"no match for metric_regex {regex!r} in stdout")
        captured = matches[-1].group(1)
        if captured is None:
            raise ValueError(f"metric_regex {regex!r} matched but its first group captured nothing")
        return _number(captured, f"metric_regex captured {captured!r}")
    assert json_path is not None
    node = _json_document(stdout)
    for depth, part in enumerate(json_path.split(".")):
        at = ".".join(json_path.split(".")[:depth]) or "the top level"
        if isinstance(node, dict):
            if part not in node:
                keys = ", ".join(list(node)[:20]) or "none"
                raise ValueError(f"no key {part!r} at {at} of the JSON output (keys there: {keys})")
            node = node[part]
        elif isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise ValueError(
                    f"{part!r} is not an index into the list of {len(node)} items at {at} of the JSON output"
                ) from None
        else:
            raise ValueError(f"{at} of the JSON output is {json.dumps(node)[:80]}, not an object or a list")
    if isinstance(node, bool) or not isinstance(node, int | float | str):
        raise ValueError(f"{json_path} is {json.dumps(node)[:80]}, not a number")
    return _number(str(node), f"{json_path} is {node!r}")


def _json_document(stdout: str) -> Any:
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        pass
    # Benchmarks often log first and print their JSON result last.
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith(("{", "[")):
            continue
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object or array found on stdout (neither the whole output nor any line)")


def _number(text: str, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{what}, which is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what}, which is not a finite number")
    return value


async def _git_state(ctx: ToolContext) -> tuple[str | None, bool]:
    """HEAD's sha (None outside a git repository or before the first commit) and whether the tree differs."""
    head = await ctx.sandbox.exec("git rev-parse HEAD", cwd=ctx.workspace, env=GIT_ENV, timeout=60)
    if head.exit_code != 0:
        return None, False
    status = await ctx.sandbox.exec("git status --porcelain", cwd=ctx.workspace, env=GIT_ENV, timeout=120)
    changed = [line for line in status.stdout.splitlines() if line.strip() and not _is_harness_path(line[3:])]
    return head.stdout.strip(), bool(changed)


def _is_harness_path(path: str) -> bool:
    """Our own .m3code/ folders (the ledger lives there by default) don't make the tree dirty."""
    return ".m3code" in re.split(r"[/\"]| -> ", path)


async def _snapshot_patch(ctx: ToolContext) -> tuple[bytes, bool]:
    """`git diff HEAD` of the working tree as exact bytes, and whether untracked files are in it.

    Written to a file in the workspace and read back rather than taken from stdout: sandboxes cap
    and decode stdout, which would corrupt a large or non-UTF-8 patch.
    """
    name = f".m3code-bench-{uuid.uuid4().hex}.patch"
    host_path = ctx.workspace / name
    env = {**GIT_ENV, "M3CODE_PATCH_OUT": name}
    try:
        result = await ctx.sandbox.exec(SNAPSHOT_SCRIPT, cwd=ctx.workspace, env=env, timeout=300)
        complete = result.exit_code == 0
        if not complete:
            # Without a writable .git (new objects for untracked files) fall back to tracked changes only.
            result = await ctx.sandbox.exec(FALLBACK_SNAPSHOT, cwd=ctx.workspace, env=env, timeout=300)
        if result.exit_code != 0:
            raise ToolError(f"git diff failed: {_tail(result)[-300:]}")
        return await ctx.sandbox.read(host_path), complete
    finally:
        host_path.unlink(missing_ok=True)


def _read_ledger(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash mid-write; the rest of the ledger still counts
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _write_best(folder: Path, best: dict[str, Any], patch: bytes | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    patch_path = folder / "best.patch"
    if patch is not None:
        _replace(patch_path, patch)
    else:
        patch_path.unlink(missing_ok=True)  # an older best's patch would not match this best
    _replace(folder / "best.json", (json.dumps(best, indent=2) + "\n").encode())


def _replace(path: Path, data: bytes) -> None:
    # Write then rename: a crash mid-write must not destroy the previous best.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _best(rows: list[dict[str, Any]], goal: Goal) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for row in rows:
        if row.get("status") != "ok" or row.get("goal") != goal or not isinstance(row.get("figure"), int | float):
            continue
        if best is None or _better(row["figure"], best["figure"], goal):
            best = row
    return best


def _better(a: float, b: float, goal: Goal) -> bool:
    return a < b if goal == "min" else a > b


def _improvement(first: float, value: float, goal: Goal) -> str:
    """How `value` compares with `first`, as a percentage and a factor, positive meaning better."""
    if first == 0:
        return "not comparable (the first figure is 0)"
    pct = (first - value if goal == "min" else value - first) / abs(first) * 100
    factor = (first / value if goal == "min" else value / first) if value != 0 else None
    word = "better" if pct > 0 else "worse" if pct < 0 else "no change"
    factor_text = f", {factor:.3g}x" if factor is not None and factor > 0 else ""
    return f"{abs(pct):.1f}% {word}{factor_text}" if pct else f"no change{factor_text}"


def _name(row: dict[str, Any]) -> str:
    label = f' "{row["label"]}"' if row.get("label") else ""
    sha = row.get("sha")
    code = "no git" if sha is None else sha[:12] + (" + uncommitted changes" if row.get("dirty") else "")
    return f"#{row['seq']}{label} ({code})"


def _report(
    row: dict[str, Any], previous_best: dict[str, Any] | None, best: dict[str, Any] | None,
    first: dict[str, Any] | None, counts: dict[str, int], saved_note: str | None,
) -> str:
    direction = "lower is better" if row["goal"] == "min" else "higher is better"
    lines: list[str] = []
    if row["status"] == "ok":
        spread = f"spread {row['spread_pct']:.1f}%" if row["spread_pct"] is not None else "spread n/a"
        lines.append(
            f"Submission {_name(row)}: median {row['figure']:.6g} ({spread}, min {row['min']:.6g}, "
            f"max {row['max']:.6g}, {len(row['runs'])} runs; {direction})."
        )
        if row["new_best"]:
            was = (f" — was {previous_best['figure']:.6g} at #{previous_best['seq']}: "
                   f"{_improvement(previous_best['figure'], row['figure'], row['goal'])}"
                   if previous_best is not None else "")
            lines.append(f"NEW BEST{was}. {saved_note}.")
    else:
        verdict = "REFUSED" if row["status"] == "refused" else "FAILED"
        consequence = (
            "the benchmark was not run and this submission cannot become the best"
            if row["status"] == "refused" else "no figure recorded"
        )
        lines.append(f"Submission {_name(row)} {verdict}: {row['reason']}; {consequence}.")
        if row["runs"]:
            lines.append("Figures of the runs before it: " + ", ".join(f"{f:.6g}" for f in row["runs"]) + ".")
        lines.append(f"Output tail:\n{row['output_tail']}")
    if best is not None and first is not None:
        lines.append(f"Best so far: {best['figure']:.6g} by {_name(best)}.")
        if first is row:
            lines.append("This is the first accepted submission: later ones are compared with it.")
        else:
            lines.append(
                f"Vs the first accepted, {_name(first)} at {first['figure']:.6g}: best "
                f"{_improvement(first['figure'], best['figure'], row['goal'])}"
                + (f"; this one {_improvement(first['figure'], row['figure'], row['goal'])}."
                   if row["status"] == "ok" and row is not best else ".")
            )
            if row["status"] == "ok" and (first.get("command"), first.get("metric")) != (row["command"], row["metric"]):
                lines.append("Note: the first submission used a different command or metric; the figures may "
                             "not be comparable.")
    else:
        lines.append(f"No accepted submission yet (goal {row['goal']}).")
    total = sum(counts.values())
    lines.append(
        f"Submissions so far: {total} ({counts['ok']} accepted, {counts['refused']} refused, "
        f"{counts['failed']} failed)."
    )
    return "\n".join(lines)


def _tail(result: ExecResult) -> str:
    stdout, stderr = result.stdout.rstrip("\n"), result.stderr.rstrip("\n")
    text = "\n".join(part for part in (stdout, f"[stderr]\n{stderr}" if stderr else "") if part) or "(no output)"
    if len(text) <= TAIL_CHARS:
        return text
    cut = text[-TAIL_CHARS:]
    cut = cut.split("\n", 1)[1] if "\n" in cut[:200] else cut  # start at a whole line when one is near
    return f"[... {len(text) - len(cut)} earlier characters not shown ...]\n{cut}"


def _progress(ctx: ToolContext, line: str) -> None:
    if ctx.on_output is None:
        return
    # A failing display callback must not lose a submission.
    with contextlib.suppress(Exception):
        ctx.on_output(line)
