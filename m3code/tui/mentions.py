"""`@path` in a message: the file's text goes with it; an image goes as an image part of the message, for
multimodal models, and leaves a line `[image: path (N KB)]` in the text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from m3code.providers.types import ImagePart
from tools.image import SNIFF_BYTES, SUPPORTED, ImageError, load_image, sniff_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
MAX_ATTACHED_CHARS = 100_000
MENTION = re.compile(r"(?:^|(?<=\s))@([^\s@]+)")
# The line an attached image leaves in the message text (ImagePart.label()): the transcript shows it, the
# model reads it next to the image, and the job finds the images to attach by it (attached_images).
IMAGE_LINE = re.compile(r"^\[image: (\S+) \(\d+ KB\)\]$", re.MULTILINE)


@dataclass
class Prepared:
    text: str  # what the model gets
    files: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    attachments: list[ImagePart] = field(default_factory=list)  # the images, as parts of the user message
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
        problems = len(out.problems)
        image = _image(path, name, out)
        if image is not None:
            out.images.append(name)
            out.attachments.append(image)
            blocks.append(image.label())
            continue
        if len(out.problems) > problems:  # an image that cannot go: said, and not attached as text either
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


def _image(path: Path, name: str, out: Prepared) -> ImagePart | None:
    """The file as an image part when its first bytes say it is one; a problem noted when it should be one
    (by its name, or by its content) but cannot be attached."""
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
        if sniff_image(head) is None:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                out.problems.append(f"@{name}: not attached (not a {SUPPORTED} image)")
            return None
        return ImagePart.model_validate(load_image(path, name))
    except (ImageError, OSError) as exc:
        out.problems.append(f"@{name}: not attached ({exc})")
        return None


def attached_images(text: str, workspace: Path) -> list[ImagePart]:
    """The images `prepare` attached to `text`, found by the lines it left there and read again."""
    root = workspace.resolve()
    images: list[ImagePart] = []
    for name in dict.fromkeys(IMAGE_LINE.findall(text)):
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            continue
        try:
            images.append(ImagePart.model_validate(load_image(path, name)))
        except (ImageError, OSError):
            continue  # it changed since it was mentioned: the line stays, the agent can open it itself
    return images
