"""`python -m m3code.replay SCRIPT.json [--port N] [--api-key KEY]`: serve a script until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading

from pydantic import ValidationError

from m3code.replay.script import Script
from m3code.replay.server import ScriptedModelServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m m3code.replay", description="Serve a scripted model over HTTP."
    )
    parser.add_argument("script", help='script JSON file: {"turns": [...]}')
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--api-key", default=None, help="require this key (Bearer or x-api-key)")
    args = parser.parse_args(argv)
    try:
        script = Script.load(args.script)
    except (OSError, ValidationError) as exc:
        print(f"Cannot load script {args.script}: {exc}", file=sys.stderr)
        return 2
    server = ScriptedModelServer(script, api_key=args.api_key, port=args.port)
    server.start()
    print(f"Serving {script.total_turns()} scripted turns", flush=True)
    print(f"OpenAI base URL:    {server.openai_base_url}", flush=True)
    print(f"Anthropic base URL: {server.anthropic_base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
