"""`harunner submit` on the short path (no Typer): same output, errors and exit codes.

The console entry point (`harunner.cli.entry`) parses a plain submission
itself and leaves everything else to the Typer app. These tests run both
paths as real processes on the same inputs and compare what a user sees, and
check that the short path imports neither Typer nor ZeroMQ.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from harunner.cli.entry import Submit, parse_submit
from harunner.store import Store

SHORT = [sys.executable, "-m", "harunner"]
TYPER = [sys.executable, "-c", "import sys; from harunner.cli.app import main; "
         "sys.argv[0] = 'harunner'; main()"]


@pytest.mark.parametrize(("argv", "expected"), [
    (["submit", "a.b"], Submit("a.b")),
    (["submit", "a.b", "--arg", "x=1", "-a", "y=2", "--arg=z=3"],
     Submit("a.b", ["x=1", "y=2", "z=3"])),
    (["submit", "--config", "c.toml", "a.b", "--state-dir=s"],
     Submit("a.b", [], "c.toml", "s")),
    (["submit", "-c", "c.toml", "a.b"], Submit("a.b", [], "c.toml")),
    (["submit"], None),                      # no name: Typer says so
    (["submit", "a.b", "--wait"], None),     # waiting: the full CLI
    (["submit", "a.b", "--help"], None),
    (["submit", "a.b", "--arg"], None),      # a missing value
    (["submit", "a.b", "c.d"], None),        # two names
    (["submit", "a.b", "-ax=1"], None),      # click's attached short form
    (["submit", "a.b", "-c", "x", "-c", "y"], None),
    (["status"], None),
    ([], None),
])
def test_parse_submit_takes_only_plain_submissions(argv, expected):
    assert parse_submit(argv) == expected


CASES = [
    ("ok", ["submit", "itjobs.ticker", "--arg", "to=3"]),
    ("unknown job", ["submit", "itjobs.tickr"]),
    ("argument without value", ["submit", "itjobs.ticker", "--arg", "to"]),
    ("unknown argument", ["submit", "itjobs.ticker", "--arg", "speed=3"]),
    ("missing config", ["submit", "itjobs.ticker", "--config", "nowhere.toml"]),
]


@pytest.mark.parametrize(("case", "argv"), CASES, ids=[c for c, _ in CASES])
def test_short_path_says_what_typer_says(cli_project, case, argv):
    short = subprocess.run(SHORT + argv, capture_output=True, text=True, timeout=60)
    full = subprocess.run(TYPER + argv, capture_output=True, text=True, timeout=60)
    assert short.returncode == full.returncode, (short.stderr, full.stderr)
    assert short.stderr == full.stderr
    if case == "ok":
        assert short.returncode == 0
        ids = [short.stdout.strip(), full.stdout.strip()]
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", job_id) for job_id in ids)
        store = Store(cli_project / "state")
        assert [store.get(job_id).args for job_id in ids] == [{"to": 3}, {"to": 3}]
    else:
        assert short.returncode != 0 and short.stdout == full.stdout == ""
        assert short.stderr.startswith("harunner: ") and short.stderr.count("\n") == 1


def test_short_path_imports_neither_typer_nor_zmq(cli_project):
    probe = ("import sys; sys.argv = ['harunner', 'submit', 'itjobs.ticker']\n"
             "from harunner.cli import entry\n"
             "try:\n    entry.main()\nexcept SystemExit as end:\n    code = end.code\n"
             "print(code, sorted(m for m in ('typer', 'click', 'rich', 'pydantic', 'zmq') "
             "if m in sys.modules), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.stderr.strip() == "0 []", done.stderr
