"""`@image.png` in the app: the image goes as an image part of the user message, and stays on a follow-up."""

from __future__ import annotations

import base64
from pathlib import Path

from m3code.tui.blocks import NoticeBlock, UserBlock
from m3code.tui.mentions import prepare
from tests.e2e.helpers import events, session_dirs
from tests.tools.test_image_tool import tiny_png
from tests.tui.helpers import idle, make_app, send, wait_for


async def test_an_image_mention_is_attached_as_an_image(demo_repo: Path, scripted_server) -> None:
    png = tiny_png(8, 8, (0, 128, 0))
    (demo_repo / "docs").mkdir()
    (demo_repo / "docs" / "shot.png").write_bytes(png)
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    server = scripted_server({"turns": [{"content": "A green square."}, {"content": "Still green."}]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "what is in @docs/shot.png?")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the answer")
        user = server.requests[0]["body"]["messages"][1]
        assert user == {"role": "user", "content": [
            {"type": "text", "text": "what is in @docs/shot.png?\n\n[image: docs/shot.png (1 KB)]"},
            {"type": "image_url", "image_url": {"url": url}},
        ]}
        assert "[image: docs/shot.png (1 KB)]" in app.transcript_text()
        assert "<image" not in app.transcript_text()
        # A follow-up resumes the session from its log: the first message still carries the image.
        await send(pilot, "and now?")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app) and len(server.requests) == 2,
                       what="the second answer")
        again = server.requests[1]["body"]["messages"]
        assert again[1] == user and again[-1] == {"role": "user", "content": "and now?"}
        assert len(app.blocks_of(UserBlock)) == 2
    [session] = session_dirs(demo_repo)
    [first, follow_up] = [e for e in events(session) if e["type"] == "user_message"]
    assert first["images"] == [{"media_type": "image/png", "data": base64.b64encode(png).decode(),
                                "path": "docs/shot.png"}]
    assert follow_up["images"] == []


async def test_a_file_named_like_an_image_that_is_not_one_is_said(demo_repo: Path, scripted_server) -> None:
    (demo_repo / "fake.png").write_text("not a picture\n")
    server = scripted_server({"turns": [{"content": "ok"}]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "look at @fake.png")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the answer")
        warnings = [b.text for b in app.blocks_of(NoticeBlock) if b.level == "warn"]
        assert warnings == ["@fake.png: not attached (not a PNG, JPEG, GIF or WebP image)"]
        assert server.requests[0]["body"]["messages"][1] == {"role": "user", "content": "look at @fake.png"}


def test_prepare_attaches_images_and_refuses_oversize_ones(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(tiny_png())
    (tmp_path / "notes.txt").write_text("hello\n")
    with (tmp_path / "big.png").open("wb") as handle:
        handle.write(tiny_png())
        handle.truncate(6 * 1024 * 1024)
    prepared = prepare("see @a.png, @notes.txt and @big.png", tmp_path)
    assert prepared.images == ["a.png"] and prepared.files == ["notes.txt"]
    [image] = prepared.attachments
    assert image.media_type == "image/png" and base64.b64decode(image.data) == tiny_png()
    assert "[image: a.png (1 KB)]" in prepared.text and '<file path="notes.txt">' in prepared.text
    assert "big.png" not in prepared.text.split("\n\n", 1)[1]
    [problem] = prepared.problems
    assert problem.startswith("@big.png: not attached (big.png is 6.0 MB (6291456 bytes), over the limit for images")
