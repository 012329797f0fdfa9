"""Checking a submission's arguments and parsing --arg KEY=VALUE."""

from __future__ import annotations

import pytest

from harunner import job
from harunner.api import check_arguments, parse_cli_arguments, spec_of
from harunner.errors import JobArgumentError


@job(name="args.resize")
def resize(ctx, folder: str, width: int = 100, *, quality: float = 0.9):
    return None


@job(name="args.anything")
def anything(ctx, first, **rest):
    return None


RESIZE = spec_of(resize)
ANYTHING = spec_of(anything)


def test_good_arguments_come_back_as_json():
    assert check_arguments(RESIZE, {"folder": "/d", "quality": 0.5}) == {"folder": "/d",
                                                                         "quality": 0.5}
    assert check_arguments(ANYTHING, {"first": (1, 2), "extra": {"a": None}}) == {
        "first": [1, 2], "extra": {"a": None}}


def test_missing_argument_names_job_parameter_and_signature():
    with pytest.raises(JobArgumentError) as caught:
        check_arguments(RESIZE, {"width": 3})
    message = str(caught.value)
    assert "args.resize" in message and "folder" in message
    assert "resize(ctx, folder: str, width: int = 100, *, quality: float = 0.9)" in message


def test_unknown_argument_is_refused_unless_kwargs():
    with pytest.raises(JobArgumentError, match="no parameter 'height'"):
        check_arguments(RESIZE, {"folder": "/d", "height": 3})
    assert check_arguments(ANYTHING, {"first": 1, "height": 3}) == {"first": 1, "height": 3}


@pytest.mark.parametrize("value", [{1, 2}, object(), b"bytes", float("nan")])
def test_non_json_arguments_are_refused(value):
    with pytest.raises(JobArgumentError, match="not JSON"):
        check_arguments(RESIZE, {"folder": value})


def test_cli_arguments_parse_json_or_keep_text():
    parsed = parse_cli_arguments(["folder=/data", "width=3", "flag=true", "items=[1, 2]",
                                  'name="007"', "ratio=0.5", "empty=", "eq=a=b", "obj={\"k\": 1}",
                                  "nothing=null", "word=hello world"])
    assert parsed == {"folder": "/data", "width": 3, "flag": True, "items": [1, 2],
                      "name": "007", "ratio": 0.5, "empty": "", "eq": "a=b", "obj": {"k": 1},
                      "nothing": None, "word": "hello world"}


@pytest.mark.parametrize("item", ["novalue", "=3", "bad key=1", "1x=2"])
def test_malformed_cli_arguments_are_usage_errors(item):
    with pytest.raises(JobArgumentError) as caught:
        parse_cli_arguments([item])
    assert caught.value.exit_code == 2 and "KEY=VALUE" in str(caught.value)


def test_repeated_cli_argument_is_refused():
    with pytest.raises(JobArgumentError, match="twice"):
        parse_cli_arguments(["a=1", "a=2"])
