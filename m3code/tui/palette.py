"""Rich styles for the transcript, derived from the active Textual theme so dark and light both read well."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from textual.color import Color

BOLD = Style(bold=True)
ITALIC = Style(italic=True)


@dataclass(frozen=True)
class Palette:
    dark: bool
    text: Style
    muted: Style
    accent: Style
    ok: Style
    warn: Style
    error: Style
    added: Style
    removed: Style
    code_theme: str
    version: int = 0

    @classmethod
    def from_theme(cls, variables: dict[str, str], dark: bool, version: int = 0) -> Palette:
        def color(name: str, fallback: str) -> Color:
            try:
                return Color.parse(variables.get(name, fallback))
            except Exception:  # a theme variable like "auto 60%" is not a plain colour
                return Color.parse(fallback)

        fg = color("foreground", "#e0e0e0" if dark else "#202020")
        bg = color("background", "#121212" if dark else "#f5f5f5")
        muted = fg.blend(bg, 0.45)

        def rich(c: Color) -> str:
            return c.hex6

        ok, err = color("success", "#4EBF71"), color("error", "#ba3c5b")
        return cls(
            dark=dark,
            text=Style(color=rich(fg)),
            muted=Style(color=rich(muted)),
            accent=Style(color=rich(color("primary", "#0178D4"))),
            ok=Style(color=rich(ok)),
            warn=Style(color=rich(color("warning", "#ffa62b"))),
            error=Style(color=rich(err)),
            added=Style(color=rich(ok), bgcolor=rich(ok.blend(bg, 0.85))),
            removed=Style(color=rich(err), bgcolor=rich(err.blend(bg, 0.85))),
            code_theme="monokai" if dark else "friendly",
            version=version,
        )
