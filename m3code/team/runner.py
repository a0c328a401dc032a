"""The team's control loop: plan, run ready steps concurrently, verify each, merge what passes, report.

Each step: a producer works in a fresh worktree from the job branch's tip; its changes become one commit;
a verifier with read-only tools checks that commit in a throwaway worktree and gives a verdict; FAIL and
PARTIAL findings go back to a new producer attempt verbatim; PASS cherry-picks the commit onto the job
branch (a conflict goes back to the producer). A step that fails too often makes the planner re-plan.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3code.agent.context import build_system_prompt
from m3code.agent.loop import Agent, Budget, BudgetExhausted, Outcome
from m3code.providers.base import Provider
from m3code.providers.types import Message, Usage
from m3code.sandboxing import SandboxFactory
from m3code.session.events import PlanEvent, PlanStep, ReportEvent, SteeringEvent, StepEvent, VerdictEvent
from m3code.session.session import Session
from m3code.team.gitwork import JobRepo
from m3code.team.report import StepRecord, build_report
from m3code.team.roles import (
    PLANNER_PROMPT,
    PRODUCER_PROMPT,
    VERIFIER_PROMPT,
    GiveVerdict,
    ReportPlanProblem,
    SubmitPlan,
)
from sandbox import make_sandbox
from tools.base import Tool, ToolContext
from tools.bench import BenchTool
from tools.registry import default_tools

MAX_REPLANS = 2


class TeamError(Exception):
    pass


@dataclass
class TeamConfig:
    parallel: int = 2
    max_attempts: int = 5  # producer attempts per step before the planner is asked to re-plan
    step_turns: int = 60  # model turns per agent run
    sandbox: SandboxFactory = field(default=lambda path: make_sandbox("local", path))
    context_window: int = 200_000
    compact_at: float = 0.8


@dataclass
class TeamResume:
    """What a killed team job had settled: the plan, the accepted steps, the person's requirements."""

    steps: list[PlanStep]
    plan_version: int
    passed: dict[str, str]  # step id -> commit on the job branch
    attempts: dict[str, int] = field(default_factory=dict)  # producer attempts begun per step
    requirements: list[str] = field(default_factory=list)


class Team:
    def __init__(self, provider: Provider, session: Session, workspace: Path, task: str, budget: Budget,
                 config: TeamConfig, inbox: Any, usage: Usage | None = None) -> None:
        self.provider = provider
        self.session = session
        self.task = task
        self.budget = budget
        self.config = config
        self.inbox = inbox
        self.usage = usage or Usage()
        self.git = JobRepo(workspace, session.id)
        self.records: dict[str, StepRecord] = {}
        self.plan_version = 0
        self.replans = 0
        self.requirements: list[str] = []
        self.final: tuple[str, str] | None = None
        self.ledger = session.folder / "bench" / "ledger.jsonl"
        # One instance for all producers: it serialises submissions, so concurrent timings don't mix.
        self.bench = BenchTool(self.ledger)

    # -- agents -----------------------------------------------------------------------------------------

    async def _run_agent(self, name: str, tools: dict[str, Tool[Any]], workspace: Path, prompt: str,
                         message: str) -> Outcome:
        sandbox = self.config.sandbox(workspace)
        system = prompt + "\n\n" + build_system_prompt(workspace)
        b, used = self.budget, self.usage
        cost_left = None if b.max_cost is None else b.max_cost - used.cost_usd
        tokens_left = None if b.max_tokens is None else b.max_tokens - used.input_tokens - used.output_tokens
        if cost_left is not None and cost_left <= 0:
            raise BudgetExhausted(f"spent ${used.cost_usd:.4f} of --max-cost ${b.max_cost:.4f}")
        if tokens_left is not None and tokens_left <= 0:
            raise BudgetExhausted(f"used the --max-tokens {b.max_tokens} budget")
        step_budget = Budget(self.config.step_turns, cost_left, tokens_left, b.deadline)
        agent = Agent(self.provider, tools, ToolContext(workspace=workspace, sandbox=sandbox), self.session,
                      system, message, budget=step_budget,
                      context_window=self.config.context_window, compact_at=self.config.compact_at, name=name)
        try:
            return await agent.run([Message(role="user", content=message)])
        except BudgetExhausted as exc:
            if "max-turns" in str(exc):  # one agent ran out of turns: that run failed, the job goes on
                return Outcome("budget", reason=str(exc))
            raise
        finally:
            self.usage = self.usage + agent.usage
            await sandbox.close()

    def _context(self) -> str:
        parts = [f"# The task\n\n{self.task}"]
        if self.requirements:
            parts.append("# Requirements the person added while the team worked\n\n"
                         + "\n".join(f"- {r}" for r in self.requirements))
        return "\n\n".join(parts)

    # -- planning ---------------------------------------------------------------------------------------

    async def plan(self, reason: str = "") -> None:
        tool = SubmitPlan()
        tools: dict[str, Tool[Any]] = {n: t for n, t in default_tools().items() if t.read_only}
        tools[tool.name] = tool
        message = self._context()
        if self.records:
            status = "\n".join(f"- {r.step.id} ({r.state}): {r.step.title}" for r in self.records.values())
            message += (f"\n\n# Re-plan\n\nWhy: {reason}\n\nThe current plan and its state:\n{status}\n\n"
                        "Steps that passed are done and stay done (keep their ids); plan what is left.")
        tree = await asyncio.to_thread(self.git.integration)
        outcome = await self._run_agent("planner", tools, tree, PLANNER_PROMPT.format(workspace=tree), message)
        if tool.steps is None:
            raise TeamError(f"the planner submitted no plan ({outcome.reason or outcome.final_answer[:200]})")
        self._adopt(tool.steps, reason)

    def _adopt(self, steps: list[PlanStep], reason: str) -> None:
        self.plan_version += 1
        kept = {i: r for i, r in self.records.items() if r.state == "passed"}
        self.records = {s.id: kept.get(s.id) or StepRecord(s) for s in steps}
        for i, r in kept.items():
            self.records.setdefault(i, r)
        self.session.emit(PlanEvent(steps=steps, version=self.plan_version, reason=reason, agent="planner"),
                          sync=True)

    # -- steps ------------------------------------------------------------------------------------------

    def _step_event(self, rec: StepRecord, state: Any, commit: str | None = None, detail: str = "") -> None:
        rec.state = state
        self.session.emit(StepEvent(step_id=rec.step.id, state=state, attempt=rec.attempts, commit=commit,
                                    detail=detail, agent="team"), sync=True)

    async def _run_step(self, rec: StepRecord) -> None:
        step, findings, answers = rec.step, "", []
        while rec.attempts < self.config.max_attempts:
            rec.attempts += 1
            self._step_event(rec, "running")
            async with self.git.lock:
                base = await asyncio.to_thread(self.git.tip)
                tree = await asyncio.to_thread(self.git.fresh_tree, f"step-{step.id}", base)
            tools = default_tools()
            tools["bench"] = self.bench
            problem = ReportPlanProblem()
            tools[problem.name] = problem
            message = (f"{self._context()}\n\n# Your step: {step.id} — {step.title} (attempt {rec.attempts} of "
                       f"{self.config.max_attempts})\n\n{step.goal}\n\nAcceptance checks:\n"
                       + "\n".join(f"- {c}" for c in step.acceptance))
            if findings:
                message += f"\n\n# The verifier's findings on your previous attempt (verbatim)\n\n{findings}"
            prompt = PRODUCER_PROMPT.format(step_id=step.id, title=step.title, workspace=tree)
            produced = await self._run_agent(f"producer/{step.id}", tools, tree, prompt, message)
            if problem.reason is not None:
                rec.findings = f"the producer reports the plan is wrong: {problem.reason}"
                self._step_event(rec, "failed", detail=rec.findings)
                return
            answers.append(produced.final_answer.strip())
            if len(answers) >= 3 and len(set(answers[-3:])) == 1:
                rec.findings = "loop breaker: the producer gave the same reply three times"
                self._step_event(rec, "failed", detail=rec.findings)
                return
            async with self.git.lock:
                commit = await asyncio.to_thread(self.git.commit_all, tree, f"{step.title}\n\n{step.goal}")
            self._step_event(rec, "verifying", commit=commit)
            # The verifier works in the producer's tree, now clean at the commit: it is thrown away after.
            verdict, findings = await self._verify(step.id, step.acceptance, step.goal, base, commit, tree,
                                                   produced.final_answer, rec.attempts)
            rec.verdicts.append((verdict, findings))
            if verdict != "PASS":
                continue
            async with self.git.lock:
                tip, conflicts = await asyncio.to_thread(self.git.accept, commit, base)
            if tip is None:
                findings = (f"Your change conflicts with work accepted meanwhile, in: {', '.join(conflicts)}. "
                            "Redo the step on top of the current branch.")
                continue
            rec.commit = tip
            self._step_event(rec, "passed", commit=tip)
            async with self.git.lock:
                await asyncio.to_thread(self.git.remove, self.git.trees / f"step-{step.id}")
            return
        rec.findings = findings
        self._step_event(rec, "failed", detail=f"not accepted after {rec.attempts} attempts")

    async def _verify(self, step_id: str, acceptance: list[str], goal: str, base: str, commit: str, tree: Path,
                      report: str, attempt: int) -> tuple[str, str]:
        async with self.git.lock:
            diff = await asyncio.to_thread(self.git.diff, base, commit)
        tool = GiveVerdict()
        tools: dict[str, Tool[Any]] = {n: t for n, t in default_tools().items() if t.read_only}
        tools["bash"] = default_tools()["bash"]
        tools[tool.name] = tool
        checks = "\n".join(f"- {c}" for c in acceptance) or "- (none given: judge against the goal)"
        message = (f"{self._context()}\n\n# What to verify: {step_id}\n\n{goal}\n\nAcceptance checks:\n{checks}"
                   f"\n\n# The producer's report\n\n{report or '(none)'}\n\n# The diff\n\n{diff or '(no changes)'}")
        outcome = await self._run_agent(f"verifier/{step_id}", tools, tree,
                                        VERIFIER_PROMPT.format(step_id=step_id, workspace=tree), message)
        verdict = tool.verdict or "FAIL"
        findings = tool.findings if tool.verdict else (
            f"The verifier gave no verdict ({outcome.reason or 'it stopped without calling verdict'}).")
        self.session.emit(VerdictEvent(step_id=step_id, verdict=verdict, findings=findings, attempt=attempt,
                                       agent=f"verifier/{step_id}"), sync=True)
        return verdict, findings

    # -- the whole job ----------------------------------------------------------------------------------

    def _take_steering(self) -> bool:
        texts = self.inbox()
        for text in texts:
            self.requirements.append(text)
            self.session.emit(SteeringEvent(text=text, agent="team"), sync=True)
        return bool(texts)

    async def run(self, resume: TeamResume | None = None) -> Outcome:
        try:
            return await self._run(resume)
        finally:
            await asyncio.to_thread(self.git.cleanup)

    async def _run(self, resume: TeamResume | None) -> Outcome:
        if resume is not None:
            await asyncio.to_thread(self.git.cleanup)  # worktrees of the killed run are stale
            self.requirements = list(resume.requirements)
            self.plan_version = resume.plan_version
            self.records = {s.id: StepRecord(s, attempts=resume.attempts.get(s.id, 0)) for s in resume.steps}
            for step_id, commit in resume.passed.items():
                if step_id in self.records:
                    self.records[step_id].state, self.records[step_id].commit = "passed", commit
        self._take_steering()
        if not self.records:
            await self.plan()
        running: dict[asyncio.Task[None], StepRecord] = {}
        try:
            while True:
                if self._take_steering() and not running:
                    await self.plan("the person added a requirement")
                ready = [r for r in self.records.values() if r.state == "pending"
                         and all(self.records[d].state == "passed" for d in r.step.depends_on if d in self.records)]
                for rec in ready[: max(0, self.config.parallel - len(running))]:
                    rec.state = "running"
                    running[asyncio.create_task(self._run_step(rec))] = rec
                if not running:
                    failed = [r for r in self.records.values() if r.state == "failed"]
                    if failed and self.replans < MAX_REPLANS:
                        self.replans += 1
                        why = "; ".join(f"step {r.step.id} failed: {r.findings[:500]}" for r in failed)
                        await self.plan(why)
                        continue
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    running.pop(task)
                    task.result()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        return await self._finish()

    async def _finish(self) -> Outcome:
        left = [r for r in self.records.values() if r.state != "passed"]
        if not left:
            base = await asyncio.to_thread(self.git.start)
            tip = await asyncio.to_thread(self.git.tip)
            acceptance = [c for r in self.records.values() for c in r.step.acceptance]
            async with self.git.lock:
                tree = await asyncio.to_thread(self.git.fresh_tree, "final", tip)
            self.final = await self._verify("final", acceptance, "The whole task, as accepted step by step.",
                                            base, tip, tree, "All steps were accepted.", 1)
        report = build_report(self.task, self.records, self.final, self.git.branch, self.usage, self.ledger)
        self.session.emit(ReportEvent(markdown=report, agent="team"), sync=True)
        if left:
            return Outcome("failed", report, f"{len(left)} step(s) not accepted")
        if self.final and self.final[0] != "PASS":
            return Outcome("failed", report, f"the final verification said {self.final[0]}")
        return Outcome("done", report)
