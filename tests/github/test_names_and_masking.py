"""Parsing names and URLs, branch names, and masking secrets in text, events and the session log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from m3code.github.ci import take_secrets
from m3code.github.errors import SetupError
from m3code.github.masking import MASK, MaskedSession, Masker
from m3code.github.refs import RepoRef, branch_for, parse_issue, parse_remote_url, parse_repo, slugify
from m3code.session.events import ToolResultEvent
from tests.github.helpers import MODEL_KEY, WRITE_TOKEN, assert_no_secret, secret_forms


@pytest.mark.parametrize(("url", "host", "full"), [
    ("https://github.com/octo/widgets.git", "github.com", "octo/widgets"),
    ("https://github.com/octo/widgets", "github.com", "octo/widgets"),
    ("https://x-access-token:abc@github.com/octo/widgets.git", "github.com", "octo/widgets"),
    ("git@github.com:octo/widgets.git", "github.com", "octo/widgets"),
    ("ssh://git@ghe.example.com:2222/team/tool.git", "ghe.example.com", "team/tool"),
    ("http://127.0.0.1:8123/octo/widgets.git", "127.0.0.1:8123", "octo/widgets"),
])
def test_remote_urls_name_their_repository(url: str, host: str, full: str) -> None:
    remote = parse_remote_url(url)
    assert remote is not None and remote.host == host and remote.repo.full == full


@pytest.mark.parametrize("url", ["/srv/git/widgets.git", "./widgets", "file:///srv/widgets.git", "https://github.com/"])
def test_paths_and_odd_urls_name_no_repository(url: str) -> None:
    assert parse_remote_url(url) is None


def test_repository_and_issue_names() -> None:
    assert parse_repo("octo-org/my.repo") == RepoRef("octo-org", "my.repo")
    assert parse_issue("octo/widgets#42") == (RepoRef("octo", "widgets"), 42)
    for bad in ("octo", "octo/widgets/extra", "-octo/x", "octo/.."):
        with pytest.raises(SetupError, match="OWNER/NAME"):
            parse_repo(bad)
    with pytest.raises(SetupError, match="OWNER/NAME#NUMBER"):
        parse_issue("octo/widgets 42")


def test_branch_names_come_from_the_title_and_session() -> None:
    assert slugify("Fix slugify: it ignores UPPER case!") == "fix-slugify-it-ignores-upper-case"
    assert len(slugify("word " * 50)) <= 40
    task = "\n# Fix `slugify`, again\n\nBody text."
    assert branch_for(task, "20260101-120000-a1b2c3") == "m3code/fix-slugify-again-a1b2c3"
    assert branch_for("#\n", "20260101-120000-a1b2c3") == "m3code/m3code-job-a1b2c3"


def test_masker_masks_values_their_auth_header_form_and_token_patterns() -> None:
    masker = Masker([WRITE_TOKEN, MODEL_KEY, None, "short"])
    stranger = "github_pat_" + "A1b2" * 15  # a token m3code was never told about
    text = f"token={WRITE_TOKEN} key={MODEL_KEY} header={secret_forms(WRITE_TOKEN)[1]} other={stranger} short"
    masked = masker.mask(text)
    assert_no_secret(masked, WRITE_TOKEN, MODEL_KEY)
    assert stranger not in masked and masked.count(MASK) == 4 and masked.endswith("short")


def test_masked_session_logs_and_shows_only_masked_events(tmp_path: Path) -> None:
    seen: list[object] = []
    session = MaskedSession("s1", tmp_path / "s1", [seen.append], Masker([WRITE_TOKEN]))
    clean = ToolResultEvent(call_id="c1", name="bash", output="nothing secret")
    session.emit(clean)
    session.emit(ToolResultEvent(call_id="c2", name="bash", output=f"GITHUB_TOKEN={WRITE_TOKEN}",
                                 data={"env": [WRITE_TOKEN]}), sync=True)
    session.close()
    log = (tmp_path / "s1" / "events.jsonl").read_text()
    assert_no_secret(log, WRITE_TOKEN)
    assert log.count(MASK) == 2
    assert seen[0] is clean  # an event with nothing to mask is passed on as it is
    assert seen[1].output == f"GITHUB_TOKEN={MASK}"  # type: ignore[attr-defined]


def test_the_token_is_taken_from_the_environment_and_hidden_from_proc() -> None:
    env = {"GH_TOKEN": "first", "GITHUB_TOKEN": "second", "ACTIONS_RUNTIME_TOKEN": "runner", "PATH": "/bin"}
    assert take_secrets(env) == ("first", ["first", "second", "runner"]) and env == {"PATH": "/bin"}
    # In a child process (prctl applies to the whole process): not dumpable after, its own children are.
    code = ("import ctypes, subprocess; from m3code.github.ci import hide_own_environment as h; "
            "libc = ctypes.CDLL(None); assert h(); assert libc.prctl(3, 0, 0, 0, 0) == 0; "
            "print(subprocess.run(['python3', '-c', 'import ctypes; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))'],"
            " capture_output=True, text=True).stdout.strip())")
    if sys.platform.startswith("linux"):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.strip() == "1", result.stderr
