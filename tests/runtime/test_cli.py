"""`m3code runtime tiny` and `m3code serve` as a person runs them: subprocesses and real HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tiny_checkpoint_then_serve_it(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    made = subprocess.run([sys.executable, "-m", "m3code", "runtime", "tiny", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "m3code", "serve", "--model", str(out), "--device", "cpu",
                               "--dtype", "float32", "--port", str(port), "--served-name", "tiny-m3"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became healthy"
            time.sleep(0.3)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        assert [m["id"] for m in models["data"]] == ["tiny-m3"]
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60, json={
            "model": "tiny-m3", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 4})
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] <= 4
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_refuses_a_folder_that_is_no_checkpoint(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "m3code", "serve", "--model", str(tmp_path), "--device", "cpu"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no config.json" in result.stderr and "runtime tiny" in result.stderr
