"""The pull request's title and body, built from the session's events (so new event kinds can add sections)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from m3code import __version__
from m3code.github.refs import shorten, task_title
from m3code.providers.types import Usage

BODY_LIMIT = 60_000  # GitHub refuses bodies over 65,536 characters
SUMMARY_LIMIT = 20_000
MARKER = "<!-- m3code:session={} -->"
# Commands that run tests, by the test runners people use; the list only decides what the body calls a test run.
TEST_COMMAND = re.compile(
    r"\b(pytest|py\.test|unittest|tox|nox|(npm|pnpm|yarn|bun)( run)? test|jest|vitest|mocha|cargo (test|nextest)"
    r"|go test|make (test|check)|ctest|rspec|phpunit|dotnet test|mvn\b.*\btest|gradlew?\b.*\btest|mix test)\b")


@dataclass
class CommandRun:
    command: str
    exit_code: int | None
    timed_out: bool = False
    agent: str = "main"  # in a team job: "producer/<step>", "verifier/<step>", ...


@dataclass
class StepRow:
    id: str
    title: str
    state: str = ""
    verdict: str = ""


@dataclass
class Report:
    """What a reviewer needs from a session, gathered from its events."""

    session_id: str = ""
    task: str = ""
    model: str = ""
    status: str = ""
    final_answer: str = ""
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    tests: list[CommandRun] = field(default_factory=list)
    steps: list[StepRow] = field(default_factory=list)
    final_verdict: str = ""
    team_report: str = ""

    @property
    def title(self) -> str:
        return shorten(task_title(self.task), 200)


def report_from_events(events: list[Any]) -> Report:
    report = Report()
    commands: dict[str, str] = {}
    steps: dict[str, StepRow] = {}
    for event in events:
        kind = getattr(event, "type", None)
        if kind == "session_started":
            report.session_id, report.task, report.model = event.session_id, event.task, event.model
        elif kind == "assistant_message":
            report.turns += 1
            report.usage = report.usage + event.usage
        elif kind == "compaction":
            report.usage = report.usage + event.usage
        elif kind == "tool_call" and event.name == "bash":
            commands[event.call_id] = _command(event.arguments)
        elif kind == "tool_result" and event.call_id in commands and TEST_COMMAND.search(commands[event.call_id]):
            report.tests.append(CommandRun(commands[event.call_id], event.data.get("exit_code"),
                                           bool(event.data.get("timed_out")), getattr(event, "agent", "main")))
        elif kind == "plan":  # agent team events: the latest plan names the steps
            steps = {s.id: steps.get(s.id, StepRow(s.id, s.title)) for s in event.steps}
            for s in event.steps:
                steps[s.id].title = s.title
        elif kind == "step":
            steps.setdefault(event.step_id, StepRow(event.step_id, event.step_id)).state = event.state
        elif kind == "verdict":
            if event.step_id == "final":
                report.final_verdict = f"{event.verdict}: {event.findings}".strip()
            else:
                steps.setdefault(event.step_id, StepRow(event.step_id, event.step_id)).verdict = event.verdict
        elif kind == "report":
            report.team_report = event.markdown
        elif kind == "session_ended":
            report.status, report.final_answer = event.status, event.final_answer
            if event.usage.input_tokens or event.usage.output_tokens:
                report.usage = event.usage  # the job's own total, resumes included
    report.steps = list(steps.values())
    return report


def _command(arguments: str) -> str:
    try:
        args = json.loads(arguments)
    except ValueError:
        return arguments
    return str(args.get("command", "")) if isinstance(args, dict) else arguments


def render_body(report: Report, *, diff_stat: str, commits: list[str], closes: str | None = None) -> str:
    parts = [MARKER.format(report.session_id), "## Summary", "",
             shorten(report.final_answer.strip() or "(The job gave no final answer.)", SUMMARY_LIMIT)]
    if closes:
        parts += ["", f"Closes {closes}"]
    # A team's report is usually its final answer (and lists steps and verdicts): never show it twice.
    if report.team_report.strip() and report.team_report.strip() != report.final_answer.strip():
        parts += ["", "## Report", "", shorten(report.team_report.strip(), SUMMARY_LIMIT)]
    if report.steps and not report.team_report.strip():
        parts += ["", "## Steps", "", "| step | state | verdict |", "| --- | --- | --- |"]
        parts += [f"| {_cell(s.title)} | {s.state or '–'} | {s.verdict or '–'} |" for s in report.steps]
    if report.final_verdict:
        parts += ["", f"**Final verification:** {_cell(report.final_verdict)}"]
    parts += ["", "## What changed", "", "```", diff_stat or "(no file changes)", "```"]
    if commits:
        parts += ["", *(f"- {c}" for c in commits)]
    parts += ["", "## Tests run", ""]
    if report.tests and any(t.agent != "main" for t in report.tests):  # a team: say which agent ran what
        parts += ["| command | result | by |", "| --- | --- | --- |"]
        parts += [f"| `{_cell(shorten(t.command, 200))}` | {_result(t)} | {t.agent} |" for t in report.tests]
    elif report.tests:
        parts += ["| command | result |", "| --- | --- |"]
        parts += [f"| `{_cell(shorten(t.command, 200))}` | {_result(t)} |" for t in report.tests]
    else:
        parts.append("The job ran no test command.")
    u = report.usage
    parts += ["", "## Cost", "",
              f"{report.turns} model turns · {u.input_tokens:,} tokens in · {u.output_tokens:,} out"
              + (f" · {u.cache_read_tokens:,} cached" if u.cache_read_tokens else "") + f" · ${u.cost_usd:.4f}",
              "", "---",
              f"Made by m3code {__version__}, an AI coding agent, with {report.model or 'a model'} "
              f"(session `{report.session_id}`). Review it as you would any contribution."]
    return shorten("\n".join(parts), BODY_LIMIT)


def _result(run: CommandRun) -> str:
    if run.timed_out:
        return "timed out"
    if run.exit_code is None:
        return "unknown"
    return f"✓ exit {run.exit_code}" if run.exit_code == 0 else f"✗ exit {run.exit_code}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")
