"""The replacement engine behind edit and multi_edit."""

from __future__ import annotations

import time

import pytest

from tools.editing import EditError, replace_exact


def test_replacement_reports_lines() -> None:
    result = replace_exact("a\nb\nc\n", "b\n", "x\ny\n")
    assert (result.text, result.count, result.start_line, result.end_line) == ("a\nx\ny\nc\n", 1, 2, 4)


def test_mixed_file_falls_back_to_exact_form() -> None:
    text = "a\r\nb\r\nc\nd\r\n"  # mostly CRLF, one LF line
    assert replace_exact(text, "c\nd", "C\nD").text == "a\r\nb\r\nC\nD\r\n"


def test_lf_file_accepts_crlf_strings() -> None:
    assert replace_exact("a\nb\n", "a\r\nb", "x\r\ny").text == "x\ny\n"


def test_nothing_similar() -> None:
    with pytest.raises(EditError, match="No similar lines"):
        replace_exact("alpha\nbeta\n", "completely unrelated text here", "x")


def test_nearest_match_is_fast_on_big_files() -> None:
    text = "".join(f"value_{i} = compute({i}, factor={i % 7})\n" for i in range(20_000))
    started = time.monotonic()
    with pytest.raises(EditError, match="lines 12346-12347") as caught:  # value_N is on line N+1
        old = "value_12345 = compute(12345, factor=4)\nvalue_12346 = compute(12346, factr=5)"
        replace_exact(text, old, "")
    assert time.monotonic() - started < 3
    assert " 12346\tvalue_12345" in str(caught.value)
