"""m3code: an agentic coding harness for the terminal, built for MiniMax M3."""

__version__ = "0.1.0"
