"""The team panel (plan, step states, who is at work, latest verdicts) and the status bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from m3code.tui.palette import BOLD, Palette

if TYPE_CHECKING:
    from m3code.tui.feed import TeamState, Totals

STATE_MARKS = {"pending": "○", "running": "◐", "verifying": "◑", "passed": "✓", "failed": "✗", "blocked": "■"}


class TeamPanel(Static):
    DEFAULT_CSS = """
    TeamPanel { width: 34; height: 1fr; border-left: tall $primary 30%; padding: 0 1; display: none; }
    Screen.-narrow TeamPanel { width: 28; }
    """

    def show_state(self, team: TeamState, pal: Palette) -> None:
        self.update(render_team(team, pal))


def render_team(team: TeamState, pal: Palette) -> Text:
    out = Text()
    out.append("Plan" + (f" v{team.version}" if team.version else ""), style=(pal.accent + BOLD))
    out.append("\n")
    if not team.steps:
        out.append("planning…\n", style=pal.muted)
    styles = {"passed": pal.ok, "failed": pal.error, "running": pal.warn, "verifying": pal.warn}
    for step in team.steps:
        state = team.states.get(step.id, "pending")
        style = styles.get(state, pal.muted)
        attempt = team.attempts.get(step.id, 0)
        extra = f" #{attempt}" if attempt > 1 else ""
        out.append(f"{STATE_MARKS.get(state, '·')} ", style=style)
        out.append(f"{step.id} {step.title}", style=pal.text)
        out.append(f" {state}{extra}\n", style=style)
    running = team.running()
    out.append("\nAt work\n", style=(pal.accent + BOLD))
    out.append(("\n".join(running) if running else "—") + "\n", style=pal.text if running else pal.muted)
    if team.verdicts:
        out.append("\nVerdicts\n", style=(pal.accent + BOLD))
        for v in reversed(team.verdicts[-3:]):
            style = pal.ok if v.verdict == "PASS" else pal.warn
            out.append(f"{v.verdict} ", style=style)
            out.append(f"{v.step_id}: {v.findings.strip().splitlines()[0][:60] if v.findings.strip() else ''}\n",
                       style=pal.muted)
    return out


@dataclass
class StatusInfo:
    model: str
    thinking: str
    sandbox: str
    policy: str
    context_window: int
    mode: str
    state: str = "ready"  # ready | working | interrupting | error


def format_tokens(n: int) -> str:
    return f"{n / 1_000_000:.1f}M" if n >= 1_000_000 else f"{n / 1000:.1f}k" if n >= 1000 else str(n)


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; padding: 0 1; background: $panel; color: $foreground; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.shown: tuple[StatusInfo, Totals, Palette, int] | None = None

    def show(self, info: StatusInfo, totals: Totals, pal: Palette, queued: int = 0) -> None:
        self.shown = (info, totals, pal, queued)
        self.refresh()

    def render(self) -> Text:
        if self.shown is None:
            return Text()
        return render_status(*self.shown, max(20, self.size.width))


def render_status(info: StatusInfo, totals: Totals, pal: Palette, queued: int, width: int) -> Text:
    used = totals.last_prompt_tokens
    pct = 100 * used / info.context_window if info.context_window else 0.0
    u = totals.usage
    state_style = {"working": pal.warn, "error": pal.error, "interrupting": pal.warn}.get(info.state, pal.ok)
    state = {"working": "● working · esc stops", "interrupting": "● stopping…", "error": "● error"}.get(
        info.state, "● ready")
    left = Text()
    left.append(state, style=state_style)
    if queued:
        left.append(f" · {queued} queued", style=pal.accent)
    right = Text()
    right.append(f"{info.model} · think {info.thinking} · {info.sandbox}/{info.policy} · {info.mode} · "
                 f"ctx {pct:.0f}% · {format_tokens(u.input_tokens + u.output_tokens)} tok · ${u.cost_usd:.4f}",
                 style=pal.muted)
    tokens = format_tokens(u.input_tokens + u.output_tokens)
    for shorter in (f"{info.model} · {info.thinking} · {info.sandbox} · ctx {pct:.0f}% · {tokens} tok · "
                    f"${u.cost_usd:.3f}", f"{info.model} · ctx {pct:.0f}% · ${u.cost_usd:.3f}"):
        if width - 2 - left.cell_len - right.cell_len >= 1:
            break
        right = Text(shorter, style=pal.muted)  # narrow: drop the least useful parts first
    gap = max(1, width - 2 - left.cell_len - right.cell_len)
    return Text.assemble(left, " " * gap, right, no_wrap=True, overflow="ellipsis")
