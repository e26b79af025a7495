"""``agentjobs worker FAMILY``: the celery argv it builds, and that any flag passes through."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agentjobs.cli import main
from agentjobs.cli.worker import worker_argv


def test_defaults_equal_the_documented_celery_command() -> None:
    assert worker_argv("haiku") == [
        *("worker", "-Q", "claude.haiku", "-P", "threads", "-c", "32", "-n", "haiku@%h")
    ]


@pytest.mark.parametrize(
    ("extra", "dropped"),
    [
        (["-c", "64"], "-c"),
        (["--concurrency=8"], "-c"),
        (["--autoscale", "64,4"], "-c"),
        (["-P", "gevent"], "-P"),
        (["--pool=solo"], "-P"),
        (["-n", "haiku2@%h"], "-n"),
        (["-Q", "claude.haiku,other"], "-Q"),
    ],
)
def test_given_flags_replace_the_defaults(extra: list[str], dropped: str) -> None:
    argv = worker_argv("sonnet", extra)
    assert argv[-len(extra) :] == extra
    assert dropped not in argv[: -len(extra)]


def test_other_flags_pass_through_unchanged() -> None:
    argv = worker_argv("opus", ["-l", "info", "--without-gossip", "-E"])
    assert argv == [
        *("worker", "-Q", "claude.opus", "-P", "threads", "-c", "32", "-n", "opus@%h"),
        *("-l", "info", "--without-gossip", "-E"),
    ]


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="family must be one of haiku, sonnet, opus"):
        worker_argv("gpt")
    result = CliRunner().invoke(main, ["worker", "gpt"])
    assert result.exit_code == 2
    assert "'gpt' is not one of 'haiku', 'sonnet', 'opus'" in result.output
