"""The local MiniMax-M3 runtime: model, weights, kernels, cache, engine and OpenAI-compatible server.

Stands alone (imports nothing from the app); `load_model` is the entry point for Python use, `runtime.server.serve`
for HTTP. Heavy imports (torch) happen on first use so `import runtime` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.loading import load_model as load_model

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from runtime.loading import load_model

        return load_model
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
