"""Checking a submission's values against the job's annotations, before anything is stored.

Understood: `int`, `float` (an int is accepted), `bool`, `str`, `list`,
`dict`, their generic forms (`list[int]`, `dict[str, float]`), `Optional[X]`
and `X | Y`, and `Any`. Any other annotation, or one that cannot be resolved,
is not checked (the job still gets the JSON value). A bool is never an int.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from harunner.api.job import JobSpec
from harunner.errors import JobArgumentError

_PLAIN = {int: "int", float: "float", bool: "bool", str: "str", list: "list", dict: "dict"}


def annotations_of(spec: JobSpec) -> dict[str, Any]:
    """The resolved annotations of the job's parameters; {} if they cannot be resolved."""
    return _hints(spec.function)


@functools.lru_cache(maxsize=1024)
def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """Resolved once per function (a client submitting thousands does not resolve each time)."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation naming something undefined: check nothing
        return {}
    hints.pop("return", None)
    return hints


def check_types(spec: JobSpec, args: Mapping[str, Any]) -> None:
    """`JobArgumentError` naming the job, parameter, annotation and value if a value misfits."""
    hints = annotations_of(spec)
    for key, value in args.items():
        if key in hints and not fits(value, hints[key]):
            raise JobArgumentError(
                f"job {spec.name!r}: argument {key}={value!r} ({_kind(value)}) does not fit "
                f"the annotation {_show(hints[key])} (signature {spec.signature}); "
                f"give a {_show(hints[key])}, e.g. --arg {key}={_example(hints[key])}")


def fits(value: Any, annotation: Any) -> bool:
    """Whether a JSON value fits `annotation` (unknown annotations fit anything)."""
    if annotation is Any or annotation is object:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(fits(value, option) for option in typing.get_args(annotation))
    if origin in (list, dict):
        return _fits_generic(value, origin, typing.get_args(annotation))
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation in (str, list, dict):
        return isinstance(value, annotation)
    return True


def _fits_generic(value: Any, origin: Any, params: tuple[Any, ...]) -> bool:
    if not isinstance(value, origin):
        return False
    if origin is list:
        return not params or all(fits(item, params[0]) for item in value)
    return len(params) != 2 or all(fits(item, params[1]) for item in value.values())


def expects_text(spec: JobSpec, key: str) -> bool:
    """Whether parameter `key` is annotated `str` (or Optional[str]) and nothing else."""
    annotation = annotations_of(spec).get(key)
    if annotation is str:
        return True
    options = set(typing.get_args(annotation)) if typing.get_origin(annotation) in (
        typing.Union, types.UnionType) else set()
    return options == {str, type(None)}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(annotation: Any) -> str:
    return _PLAIN.get(annotation) or str(annotation).replace("typing.", "")


def _example(annotation: Any) -> str:
    examples = {int: "3", float: "0.5", bool: "true", str: "text", list: "'[1, 2]'",
                dict: """'{"a": 1}'"""}
    origin = typing.get_origin(annotation) or annotation
    if origin is typing.Union or origin is types.UnionType:
        origin = next((a for a in typing.get_args(annotation) if a is not type(None)), str)
        origin = typing.get_origin(origin) or origin
    return examples.get(origin, "VALUE")
