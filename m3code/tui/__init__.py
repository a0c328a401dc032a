"""The m3code app: a Textual view of the session event stream and a control for the job behind it.

Nothing here is imported by `m3code --help`, `--version` or `run`: the CLI imports `open_app` only when
the app is opened.
"""

from __future__ import annotations

from m3code.tui.options import AppOptions


def open_app(options: AppOptions) -> int:
    """Run the app in this terminal until the person leaves; returns the exit code."""
    from m3code.tui.app import M3App

    app = M3App(options)
    code = app.run()  # Textual restores the terminal on exit and on a crash, then prints the traceback
    return code if isinstance(code, int) else (app.return_code or 0)


__all__ = ["AppOptions", "open_app"]
