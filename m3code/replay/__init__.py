"""A scripted model served over real HTTP, for tests and for `m3code demo`."""

from m3code.replay.script import Fault, Script, ScriptedToolCall, ScriptedUsage, Turn
from m3code.replay.server import ScriptedModelServer

__all__ = ["Fault", "Script", "ScriptedModelServer", "ScriptedToolCall", "ScriptedUsage", "Turn"]
