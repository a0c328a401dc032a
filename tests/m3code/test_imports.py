"""The harness starts without the heavy parts: no torch, no textual until the app is opened."""

from __future__ import annotations

import subprocess
import sys


def test_cli_import_pulls_in_neither_torch_nor_textual() -> None:
    code = ("import sys, m3code.cli, m3code.run; "
            "heavy = [m for m in ('torch', 'textual', 'transformers', 'triton', 'docker') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
