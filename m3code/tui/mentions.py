"""`@path` in a message: the file's text goes with it; an image goes as an attachment for multimodal models."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
MAX_ATTACHED_CHARS = 100_000
MENTION = re.compile(r"(?:^|(?<=\s))@([^\s@]+)")


@dataclass
class Prepared:
    text: str  # what the model gets
    files: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def prepare(message: str, workspace: Path) -> Prepared:
    """Attach the files a message mentions; a mention that is not a file stays as typed."""
    out = Prepared(message)
    blocks: list[str] = []
    root = workspace.resolve()
    for raw in dict.fromkeys(MENTION.findall(message)):
        name = raw.rstrip(".,;:!?)")
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            out.images.append(name)
            # Providers take text messages for now: the image is named so the agent can open it itself.
            blocks.append(f'<image path="{name}" bytes="{path.stat().st_size}"/>')
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as exc:
            out.problems.append(f"@{name}: not attached ({exc.__class__.__name__})")
            continue
        cut = "" if len(text) <= MAX_ATTACHED_CHARS else f"\n[cut at {MAX_ATTACHED_CHARS} characters]"
        blocks.append(f'<file path="{name}">\n{text[:MAX_ATTACHED_CHARS]}{cut}\n</file>')
        out.files.append(name)
    if blocks:
        out.text = message + "\n\n" + "\n\n".join(blocks)
    return out
