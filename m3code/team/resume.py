"""What a killed team job had settled, read back from its events."""

from __future__ import annotations

from typing import Any

from m3code.session.events import PlanEvent, SteeringEvent, StepEvent
from m3code.team.runner import TeamResume


def team_resume(events: list[Any]) -> TeamResume | None:
    """None when no plan was made yet (the job starts planning again)."""
    plan: PlanEvent | None = None
    passed: dict[str, str] = {}
    attempts: dict[str, int] = {}
    requirements: list[str] = []
    for event in events:
        if isinstance(event, PlanEvent):
            plan = event
        elif isinstance(event, StepEvent):
            if event.state == "running":
                attempts[event.step_id] = event.attempt
            elif event.state == "passed" and event.commit:
                passed[event.step_id] = event.commit
        elif isinstance(event, SteeringEvent) and event.agent == "team":
            requirements.append(event.text)
    if plan is None:
        return TeamResume(steps=[], plan_version=0, passed={}, requirements=requirements) if requirements else None
    return TeamResume(steps=plan.steps, plan_version=plan.version, passed=passed, attempts=attempts,
                      requirements=requirements)
