"""The console entry point: `harunner submit` on a short path, every other command by Typer.

Typer (with click, rich and pydantic) takes longer to import than a
submission takes to run, and a script that submits one job per call pays it
every time. So a plain `harunner submit NAME [--arg k=v]... [--config F]
[--state-dir D]` is parsed here, with the standard library only, and stored
through the client; anything else (another command, `--help`, `--wait`, an
option this parser does not know, a missing value) goes to the Typer app
unchanged, which parses it and prints its own usage errors. Both paths store
the same way, print the same line (the job id) and report errors the same way
(`harunner.cli.errors.report`: one line, the exit code of
`harunner.api.exit_codes`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from harunner.api import exit_codes
from harunner.cli.errors import report
from harunner.errors import HarunnerError

_VALUED = {"--arg": "args", "-a": "args", "--config": "config", "-c": "config",
           "--state-dir": "state_dir"}


@dataclass
class Submit:
    """A `harunner submit` the short path can run."""

    name: str
    args: list[str] = field(default_factory=list)
    config: str | None = None
    state_dir: str | None = None


def parse_submit(argv: list[str]) -> Submit | None:
    """The submission `argv` asks for, or None to leave it to the Typer app."""
    if len(argv) < 2 or argv[0] != "submit":
        return None
    words = iter(argv[1:])
    plan: Submit | None = None
    options: dict[str, str | None] = {"config": None, "state_dir": None}
    args: list[str] = []
    for word in words:
        key, value = word, None
        if word.startswith("--") and "=" in word:
            key, value = word.split("=", 1)
        if key in _VALUED:
            if value is None:
                value = next(words, None)
                if value is None:
                    return None
            if _VALUED[key] == "args":
                args.append(value)
            elif options[_VALUED[key]] is not None:
                return None  # given twice: let Typer say what it makes of it
            else:
                options[_VALUED[key]] = value
        elif word.startswith("-") or plan is not None:
            return None  # --help, --wait, an unknown option or a second name
        else:
            plan = Submit(word)
    if plan is None:
        return None
    plan.args, plan.config, plan.state_dir = args, options["config"], options["state_dir"]
    return plan


def submit(plan: Submit) -> int:
    """Store the job (durable on return) and print its id; the exit code."""
    from harunner import config as config_module
    from harunner.api.client import Client
    from harunner.api.statedir import check_state_dir

    try:
        config = config_module.load(plan.config, {"state_dir": plan.state_dir})
        check_state_dir(config.state_path)
        handle = Client(config=config).submit_cli(plan.name, plan.args)
    except (HarunnerError, OSError) as error:
        return report(error)
    print(handle.id)
    return 0


def main() -> None:
    """Console entry point."""
    try:
        plan = parse_submit(sys.argv[1:])
        if plan is not None:
            raise SystemExit(submit(plan))
        from harunner.cli.app import main as full

        full()
    except KeyboardInterrupt:
        raise SystemExit(exit_codes.INTERRUPTED) from None
