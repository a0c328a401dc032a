"""The final report of a team job: markdown, also logged as an event."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from m3code.providers.types import Usage
from m3code.session.events import PlanStep


@dataclass
class StepRecord:
    step: PlanStep
    state: str = "pending"  # pending | running | verifying | passed | failed
    attempts: int = 0
    commit: str | None = None
    verdicts: list[tuple[str, str]] = field(default_factory=list)
    findings: str = ""


def _short(text: str, limit: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " …"


def ledger_summary(ledger: Path) -> list[str]:
    if not ledger.is_file():
        return []
    rows = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return []
    ok = [r for r in rows if r.get("status") == "ok"]
    lines = ["## Benchmark ledger", "", f"{len(rows)} submissions, {len(ok)} accepted.", "",
             "| # | label | figure | spread | status | commit |", "|---|---|---|---|---|---|"]
    for r in rows:
        figure = "" if r.get("figure") is None else f"{r['figure']:.6g}"
        spread = "" if r.get("spread_pct") is None else f"{r['spread_pct']:.1f}%"
        sha = (r.get("sha") or "")[:10] + (" (dirty)" if r.get("dirty") else "")
        label, status = r.get("label") or "", r.get("status")
        lines.append(f"| {r.get('seq', '')} | {label} | {figure} | {spread} | {status} | {sha} |")
    if ok:
        goal = ok[0].get("goal", "min")
        best = (min if goal == "min" else max)(ok, key=lambda r: r["figure"])
        lines += ["", f"Best: {best['figure']:.6g} (submission {best.get('seq')}); first accepted: "
                      f"{ok[0]['figure']:.6g}."]
    return lines


def build_report(task: str, records: dict[str, StepRecord], final: tuple[str, str] | None, branch: str,
                 usage: Usage, ledger: Path) -> str:
    title = next((line.lstrip("# ").strip() for line in task.splitlines() if line.strip()), "the task")
    passed = [r for r in records.values() if r.state == "passed"]
    out = [f"# m3code report: {title}", "",
           f"{len(passed)} of {len(records)} steps accepted on branch `{branch}`."]
    if final:
        out.append(f"Final verification: **{final[0]}**.")
    out += ["", "## Steps", ""]
    for r in records.values():
        verdict = r.verdicts[-1][0] if r.verdicts else "—"
        commit = f" · commit `{r.commit[:10]}`" if r.commit else ""
        out.append(f"- **{r.step.id}** {r.step.title}: {r.state} after {r.attempts} attempt(s), "
                   f"last verdict {verdict}{commit}")
        if r.verdicts:
            out.append(f"  - findings: {_short(r.verdicts[-1][1], 300)}")
    if final:
        out += ["", "## Final verification", "", _short(final[1], 2000)]
    out += ["", *ledger_summary(ledger)] if ledger.is_file() else []
    left = [r for r in records.values() if r.state != "passed"]
    out += ["", "## What is left", ""]
    out += [f"- {r.step.id} {r.step.title}: {r.state}. {_short(r.findings, 300)}".rstrip() for r in left]
    if not left:
        out.append("Nothing.")
    out += ["", "## Cost", "",
            f"{usage.input_tokens} input tokens, {usage.output_tokens} output tokens, ${usage.cost_usd:.4f}."]
    return "\n".join(out)
