"""The team's roles: their prompts, and the two tools only they have (submit_plan, verdict)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from m3code.session.events import PlanStep
from tools.base import Permission, Tool, ToolArgs, ToolContext, ToolError, ToolResult

PLANNER_PROMPT = """\
m3code-agent: planner
You are the planner of a team of coding agents working in the repository at {workspace}.
Read enough of the repository to understand the task, then call `submit_plan` once with the plan:
a few steps, each a coherent change one producer can make and a verifier can check. Give each step a goal,
acceptance checks (commands to run, or facts to observe), and the ids of steps it depends on. Steps that do
not depend on each other run at the same time, in separate copies of the repository, so keep them apart
(different files). Do not change any file yourself. After submitting, answer with one line."""

PRODUCER_PROMPT = """\
m3code-agent: producer/{step_id}
You are a producer in a team of coding agents, working in your own copy of the repository at {workspace}.
Your step is {step_id}: {title}. Do exactly this step, completely, and check it against its acceptance
checks yourself before you stop. A separate verifier will check your work adversarially: don't weaken tests,
hard-code results or skip checks. When done, stop calling tools and report what you changed and how you
checked it."""

VERIFIER_PROMPT = """\
m3code-agent: verifier/{step_id}
You are the verifier of a team of coding agents. You check work adversarially: assume it is wrong until the
evidence says otherwise. Your copy of the repository at {workspace} is a throwaway: run the tests and the
acceptance checks there, read the diff, and look for shortcuts (weakened or deleted tests, hard-coded
results, checks skipped, the step only partly done). Then call `verdict` exactly once: PASS only when every
acceptance check holds and you ran it; FAIL when something is wrong; PARTIAL when part is done. Findings must
be specific enough for the producer to act on: what failed, the command, the output."""


class SubmitPlanArgs(ToolArgs):
    steps: list[PlanStep] = Field(description="The steps, in a sensible order; ids must be unique.")


class SubmitPlan(Tool[SubmitPlanArgs]):
    name = "submit_plan"
    description = ("Submit the plan: steps with id, title, goal, acceptance (list of checks) and depends_on "
                   "(ids of steps that must be accepted first).")
    Args = SubmitPlanArgs
    permission = Permission.READ

    def __init__(self) -> None:
        self.steps: list[PlanStep] | None = None

    async def run(self, args: SubmitPlanArgs, ctx: ToolContext) -> ToolResult:
        ids = [s.id for s in args.steps]
        if not ids:
            raise ToolError("The plan has no steps. Give at least one.")
        if len(set(ids)) != len(ids):
            raise ToolError(f"Step ids must be unique; got {ids}.")
        for step in args.steps:
            unknown = [d for d in step.depends_on if d not in ids]
            if unknown:
                raise ToolError(f"Step {step.id} depends on unknown step(s) {unknown}. Known: {ids}.")
        if _has_cycle(args.steps):
            raise ToolError("The dependencies form a cycle; steps must be orderable.")
        self.steps = list(args.steps)
        return ToolResult(f"Plan recorded: {len(ids)} steps.")


def _has_cycle(steps: list[PlanStep]) -> bool:
    deps = {s.id: set(s.depends_on) for s in steps}
    done: set[str] = set()
    while deps:
        ready = [i for i, d in deps.items() if d <= done]
        if not ready:
            return True
        for i in ready:
            done.add(i)
            del deps[i]
    return False


class PlanProblemArgs(ToolArgs):
    reason: str = Field(description="Why the step cannot or should not be done as planned, and what instead.")


class ReportPlanProblem(Tool[PlanProblemArgs]):
    name = "report_plan_problem"
    description = ("Tell the planner this step is wrong as planned (impossible, already done, or in conflict "
                   "with the code); the team re-plans. Use it instead of forcing a bad step through.")
    Args = PlanProblemArgs
    permission = Permission.READ

    def __init__(self) -> None:
        self.reason: str | None = None

    async def run(self, args: PlanProblemArgs, ctx: ToolContext) -> ToolResult:
        self.reason = args.reason
        return ToolResult("Reported: the planner will re-plan. Stop calling tools now.")


Verdict = Literal["PASS", "FAIL", "PARTIAL"]


class VerdictArgs(ToolArgs):
    verdict: Verdict = Field(description="PASS, FAIL or PARTIAL.")
    findings: str = Field(description="What you checked and found: commands, outputs, problems.")


class GiveVerdict(Tool[VerdictArgs]):
    name = "verdict"
    description = "Record your verdict on the work, once: PASS, FAIL or PARTIAL, with findings."
    Args = VerdictArgs
    permission = Permission.READ

    def __init__(self) -> None:
        self.verdict: Verdict | None = None
        self.findings = ""

    async def run(self, args: VerdictArgs, ctx: ToolContext) -> ToolResult:
        if self.verdict is not None:
            raise ToolError(f"You already gave the verdict {self.verdict}; it stands. Stop now.")
        self.verdict, self.findings = args.verdict, args.findings
        return ToolResult(f"Verdict {args.verdict} recorded. Stop calling tools now.")
