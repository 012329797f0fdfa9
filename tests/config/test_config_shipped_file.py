"""config/harunner.toml is the documentation of every option: it must equal Config()'s defaults."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from harunner.config import FIELDS, Config, _coerce

SHIPPED = Path(__file__).resolve().parent.parent.parent / "config" / "harunner.toml"


def shipped() -> dict:
    return tomllib.loads(SHIPPED.read_text())


def test_every_value_in_the_file_equals_the_default():
    defaults = Config()
    for key, value in shipped().items():
        assert key in FIELDS, f"{SHIPPED}: {key} is not an option"
        assert _coerce(key, value, str(SHIPPED)) == getattr(defaults, key), key


def test_every_option_is_in_the_file_with_a_comment():
    lines = {}
    for line in SHIPPED.read_text().splitlines():
        match = re.match(r"^(\w+)\s*=\s*(.+?)\s+#\s*(\S.*)$", line)
        if match:
            lines[match.group(1)] = match.group(3)
    options = [f.name for f in dataclasses.fields(Config) if f.name != "source"]
    assert set(options) == set(FIELDS)
    for name in options:
        assert name in lines, f"{SHIPPED} lacks {name} = <default>  # <what it does>"
        assert len(lines[name]) > 10, f"{SHIPPED}: the comment on {name} says too little"
    assert set(shipped()) == set(options)


def test_loading_the_shipped_file_gives_the_defaults():
    from harunner.config import load

    loaded = load(str(SHIPPED), env={})
    assert loaded == Config()
    assert loaded.source == str(SHIPPED)
