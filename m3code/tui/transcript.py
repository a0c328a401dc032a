"""The transcript: a virtual list of blocks that renders only what is on screen.

Heights of blocks never shown are estimates; a block is rendered (and its height made exact) when it
scrolls into view. Rendered lines are cached per block until the block, the width or the theme changes,
so a session of 10,000+ events scrolls and types as fast as an empty one.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from m3code.tui.blocks import Block
from m3code.tui.palette import Palette

GUTTER = 2  # columns left of each block: a bar marks the selected block
FLUSH_DELAY = 1 / 30  # coalesce bursts of changes (streamed deltas) into one update per frame


class Transcript(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    Transcript { height: 1fr; scrollbar-size-vertical: 1; overflow-x: hidden; }
    Transcript:focus { background-tint: $foreground 3%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "select(-1)", "Previous", show=False),
        Binding("down,j", "select(1)", "Next", show=False),
        Binding("enter,space", "fold", "Fold/unfold", show=False),
        Binding("home,g", "scroll_home", show=False),
        Binding("end,G", "follow", show=False),
    ]

    class Toggled(Message):
        """A block was folded or unfolded."""

    def __init__(self, palette: Palette, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.palette = palette
        self.blocks: list[Block] = []
        self._index: dict[int, int] = {}  # id(block) -> position
        self._heights: list[int] = []
        self._exact: list[bool] = []
        self._offsets: list[int] = [0]
        self._dirty_from = 0
        self._cache: dict[int, tuple[tuple[int, int, int, bool], list[Strip]]] = {}
        self._width = 0
        self._flush_pending = False
        self.follow = True
        self.selected: int | None = None

    # -- content ---------------------------------------------------------------------------------------

    def add(self, block: Block) -> None:
        self._index[id(block)] = len(self.blocks)
        self.blocks.append(block)
        self._heights.append(self._estimate(block))
        self._exact.append(False)
        self._schedule()

    def changed(self, block: Block) -> None:
        i = self._index.get(id(block))
        if i is not None:
            self._exact[i] = False
            self._dirty_from = min(self._dirty_from, i)
        self._schedule()

    def clear(self) -> None:
        self.blocks, self._index, self._heights, self._exact = [], {}, [], []
        self._offsets, self._dirty_from, self._cache = [0], 0, {}
        self.selected, self.follow = None, True
        self._schedule()

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        self._cache.clear()
        self._exact = [False] * len(self.blocks)
        self._schedule()

    def text(self) -> str:
        """Every block as plain text (for tests and the tmux check)."""
        return "\n".join(b.plain() for b in self.blocks if not b.hidden)

    # -- layout ----------------------------------------------------------------------------------------

    @property
    def _block_width(self) -> int:
        return max(10, self.scrollable_content_region.width - GUTTER - 1)

    def _estimate(self, block: Block) -> int:
        return 0 if block.hidden else block.estimate(self._block_width) + 1  # +1: the blank line after it

    def _strips(self, i: int) -> list[Strip]:
        """Block i rendered at the current width (cached); makes its height exact."""
        block, width = self.blocks[i], self._block_width
        key = (width, block.version, self.palette.version, block.expanded)
        cached = self._cache.get(id(block))
        if cached is not None and cached[0] == key:
            strips = cached[1]
        else:
            strips = [] if block.hidden else self._render_block(block, width)
            self._cache[id(block)] = (key, strips)
        height = len(strips) + (0 if block.hidden else 1)
        if height != self._heights[i]:
            self._heights[i] = height
            self._dirty_from = min(self._dirty_from, i)
        self._exact[i] = True
        return strips

    def _render_block(self, block: Block, width: int) -> list[Strip]:
        console = self.app.console
        options = console.options.update_width(width)
        base = self.rich_style
        lines = console.render_lines(block.renderable(self.palette, width), options, style=base, pad=True)
        return [Strip(line, width) for line in lines]

    def _relayout(self) -> None:
        if self._dirty_from < len(self.blocks) or len(self._offsets) != len(self.blocks) + 1:
            start = min(self._dirty_from, len(self._offsets) - 1)
            head = self._offsets[: start + 1]
            self._offsets = head + list(accumulate(self._heights[start:], initial=head[-1]))[1:]
        self._dirty_from = len(self.blocks)

    @property
    def total_height(self) -> int:
        self._relayout()
        return self._offsets[-1]

    def _block_at(self, line: int) -> int:
        return max(0, bisect_right(self._offsets, line) - 1)

    def _materialize_view(self) -> None:
        """Render what the viewport shows, bottom-up when following the end, else from the top line."""
        height = self.scrollable_content_region.height
        if not self.blocks or height <= 0:
            return
        if self.follow:
            covered, i = 0, len(self.blocks) - 1
            while i >= 0 and covered < height:
                self._strips(i)
                covered += self._heights[i]
                i -= 1
            return
        for _ in range(3):  # heights settle in a pass or two: each pass only makes estimates exact
            self._relayout()
            top = int(self.scroll_y)
            i, changed = self._block_at(top), False
            while i < len(self.blocks) and self._offsets[i] < top + height:
                if not self._exact[i]:
                    self._strips(i)
                    changed = True
                i += 1
            if not changed:
                return

    def _schedule(self) -> None:
        if not self._flush_pending and self.is_attached:
            self._flush_pending = True
            self.set_timer(FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self.sync()

    def sync(self) -> None:
        """Bring layout, scroll position and screen up to date with the blocks."""
        width = self._block_width
        if width != self._width:  # a new width: every height is a guess again
            self._width = width
            self._heights = [self._estimate(b) for b in self.blocks]
            self._exact = [False] * len(self.blocks)
            self._dirty_from = 0
        self._materialize_view()
        self._relayout()
        self.virtual_size = Size(self.scrollable_content_region.width, self._offsets[-1])
        if self.follow:
            self.scroll_to(y=max(0, self._offsets[-1] - self.scrollable_content_region.height), animate=False,
                           immediate=True, force=True)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.sync()

    def on_mount(self) -> None:
        self.sync()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.follow = round(new_value) >= self.max_scroll_y
        if not self.follow:
            self._relayout()
            top, height = int(new_value), self.scrollable_content_region.height
            i = self._block_at(top)
            while i < len(self.blocks) and self._offsets[i] < top + height:
                if not self._exact[i]:
                    self._schedule()
                    break
                i += 1

    # -- rendering -------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        self._relayout()
        width = self.scrollable_content_region.width
        line = int(self.scroll_y) + y
        base = self.rich_style
        if line >= self._offsets[-1] or not self.blocks:
            return Strip.blank(width, base)
        i = self._block_at(line)
        strips = self._strips(i)
        row = line - self._offsets[i]
        body = strips[row] if row < len(strips) else Strip.blank(self._block_width, base)
        mark = "▌ " if i == self.selected and row < len(strips) else "  "
        style = base + Style(color=self.palette.accent.color) if mark.strip() else base
        gutter = Strip([Segment(mark, style)], GUTTER)
        return Strip.join([gutter, body]).adjust_cell_length(width, base)

    # -- keys ------------------------------------------------------------------------------------------

    def action_select(self, step: int) -> None:
        visible = [i for i, b in enumerate(self.blocks) if not b.hidden]
        if not visible:
            return
        if self.selected is None or self.selected not in visible:
            pos = len(visible) - 1 if step < 0 else 0
            # start from what is on screen
            top = int(self.scroll_y)
            on_screen = [i for i in visible if self._offsets[i] >= top] if not self.follow else []
            if on_screen and step > 0:
                pos = visible.index(on_screen[0])
        else:
            pos = max(0, min(len(visible) - 1, visible.index(self.selected) + step))
        self.selected = visible[pos]
        self.scroll_to_block(self.selected)
        self.refresh()

    def scroll_to_block(self, i: int) -> None:
        self._relayout()
        top, bottom = self._offsets[i], self._offsets[i + 1]
        view = self.scrollable_content_region.height
        if top < self.scroll_y:
            self.follow = False
            self.scroll_to(y=top, animate=False, immediate=True, force=True)
        elif bottom > self.scroll_y + view:
            self.scroll_to(y=min(top, bottom - view), animate=False, immediate=True, force=True)
        self._schedule()

    def action_fold(self) -> None:
        if self.selected is not None:
            self.toggle(self.blocks[self.selected])

    def toggle(self, block: Block) -> bool:
        if not block.toggle():
            return False
        self.changed(block)
        self.post_message(self.Toggled())
        return True

    def toggle_latest(self) -> bool:
        """Fold or unfold the selected block, else the newest foldable one (ctrl+o)."""
        if self.selected is not None and self.blocks[self.selected].foldable:
            return self.toggle(self.blocks[self.selected])
        for block in reversed(self.blocks):
            if block.foldable and not block.hidden:
                return self.toggle(block)
        return False

    def action_follow(self) -> None:
        self.follow = True
        self.selected = None
        self.sync()

    def action_scroll_home(self) -> None:
        self.follow = False
        self.scroll_to(y=0, animate=False, immediate=True, force=True)
        self._schedule()

    def on_click(self, event: events.Click) -> None:
        line = int(self.scroll_y) + event.y
        if self.blocks and line < self.total_height:
            i = self._block_at(line)
            self.selected = i
            self.toggle(self.blocks[i])
            self.refresh()

    def on_blur(self) -> None:
        self.selected = None
        self.refresh()
