"""The checkpoint's tokenizer (tokenizer.json through `tokenizers`) and streaming detokenization."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class Tokenizer:
    def __init__(self, directory: str | Path) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self.directory = Path(directory)
        path = self.directory / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json in {self.directory}")
        self._tok = HFTokenizer.from_file(str(path))
        config_path = self.directory / "tokenizer_config.json"
        self.config: dict[str, Any] = json.loads(config_path.read_text()) if config_path.is_file() else {}

    def encode(self, text: str) -> list[int]:
        # The chat template writes every control marker itself, so nothing is added here.
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        # Markers such as <mm:think> and ]<]minimax[>[ are special tokens the markup parser needs to see.
        return str(self._tok.decode(ids, skip_special_tokens=False))

    def token_id(self, token: str) -> int | None:
        tid = self._tok.token_to_id(token)
        return None if tid is None else int(tid)

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size())

    def named_token_id(self, key: str) -> int | None:
        """Id of tokenizer_config's `eos_token` / `bos_token` (string or {"content": ...})."""
        value = self.config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        return self.token_id(value) if isinstance(value, str) else None


class IncrementalDecoder:
    """Turns a growing token list into text deltas without splitting multi-byte characters."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # start of the window re-decoded for context
        self._read = 0  # end of the text already returned

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self.tokenizer.decode(self.ids[self._prefix : self._read])
        after = self.tokenizer.decode(self.ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return after[len(before) :]
        return ""
