"""Declaring jobs: `@job`, `JobSpec`, durations, the retry policy and argument checks.

Responsibilities:
- `job` turns a plain function into a job: it attaches a frozen `JobSpec`
  (`fn.job_spec`) and `fn.submit(**args)` (see `harunner.api.client`), registers
  it under its module, and returns the function otherwise unchanged, so it
  stays callable as a plain function (handy in tests).
- `check_arguments` and `parse_cli_arguments` check a submission's arguments
  against the job's signature and JSON; `retry_delay` is the back-off policy.

Invariants: a job's name is unique within the modules discovery imports;
every argument, checkpoint state and result is JSON (it survives
`json.loads(json.dumps(value))`). Layering: this module depends on
`harunner.store` and `harunner.errors` only. What a running job sees is in
`harunner.api.context`; importing job modules in `harunner.api.discovery`.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harunner.errors import (
    JobArgumentError,
    JobDefinitionError,
)
from harunner.store import JobRecord

if TYPE_CHECKING:
    from harunner.api.schedule import Schedule
    pass

MAX_BACKOFF = 3600.0
SCHEDULED_AT = "scheduled_at"  # the argument a periodic job gets: its fire time, ISO 8601
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")

# module name -> job name -> spec; filled by `job` when a job module is imported.
_registry: dict[str, dict[str, JobSpec]] = {}
# what `fn.submit` calls: set by harunner.api.client (the client depends on this module).
_submitter: list[Callable[..., Any]] = []


@dataclass(frozen=True)
class JobSpec:
    """A job's definition: its name, function and retry/timeout policy (seconds)."""

    name: str
    function: Callable[..., Any]
    retries: int
    backoff: float
    timeout: float | None
    module: str
    schedule: Schedule | None = None

    @property
    def signature(self) -> str:
        """The function's signature as written, for error messages."""
        return _signature_text(self.function)


@functools.lru_cache(maxsize=1024)
def _signature_text(function: Callable[..., Any]) -> str:
    signature = inspect.signature(function)
    params = [param.replace(annotation=_unquoted(param.annotation))
              for param in signature.parameters.values()]
    shown = signature.replace(parameters=params, return_annotation=signature.empty)
    return f"{function.__name__}{shown}"


class _Annotation(str):
    """An annotation written as a string (PEP 563), shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _unquoted(annotation: Any) -> Any:
    return _Annotation(annotation) if isinstance(annotation, str) else annotation


def parse_duration(value: Any, what: str) -> float:
    """Seconds from a number or a string like "500ms", "30s", "5m", "2h", "1d"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise JobDefinitionError(f"{what} = {value!r} is not a duration; "
                                 "give seconds or a string like '500ms', '30s', '5m', '2h', '1d'")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise JobDefinitionError(f"{what} = {value!r} is not a duration; "
                                     "use a number with a unit ms, s, m, h or d, e.g. '30s'")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise JobDefinitionError(f"{what} = {value!r} must be a finite, non-negative duration")
    return seconds


def retry_delay(backoff: float, attempt: int) -> float:
    """Seconds to wait before retrying after failed attempt `attempt` (1-based), capped."""
    return min(backoff * 2.0 ** max(attempt - 1, 0), MAX_BACKOFF)


def retry_at(record: JobRecord, now: float) -> float | None:
    """When to retry after this record's attempt failed (wall clock), or None if exhausted."""
    if record.attempts <= record.retries:
        return now + retry_delay(record.backoff, record.attempts)
    return None


def job(fn: Callable[..., Any] | None = None, *, name: str | None = None, retries: int = 0,
        backoff: float | str = "1s", timeout: float | str | None = None,
        schedule: str | None = None, every: Any = None, timezone: str | None = None,
        catch_up: str = "latest", overlap: bool = False) -> Any:
    """Declare a job: `@job` or `@job(name=None, retries=0, backoff="1s", timeout=None)`.

    A periodic job adds `schedule="*/5 * * * *"` (cron, in `timezone`, default UTC) or
    `every="30s"` / a `timedelta`, and the policies `catch_up` ("none", "latest", "all")
    and `overlap` (docs/jobs.md, "Periodic jobs").
    """
    if fn is not None and not callable(fn):
        raise JobDefinitionError(f"@job got {fn!r} instead of a function; to name the job "
                                 f"write @job(name={fn!r})")
    periodic = (schedule, every, timezone, catch_up, overlap)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        spec = _make_spec(function, name, retries, backoff, timeout, periodic)
        _register(spec)
        function.job_spec = spec  # type: ignore[attr-defined]
        function.submit = functools.partial(_submit, function)  # type: ignore[attr-defined]
        return function

    return decorate(fn) if fn is not None else decorate


def set_submitter(submitter: Callable[..., Any]) -> None:
    """Install what `fn.submit` calls; `harunner.api.client` does it (it imports this module)."""
    _submitter[:] = [submitter]


def _submit(function: Callable[..., Any], /, **args: Any) -> Any:
    """`fn.submit(**args)`: submit through the client of the config found from the cwd."""
    if not _submitter:
        raise JobDefinitionError("fn.submit needs the client: import harunner.api.client "
                                 "(`from harunner import job` does)")
    return _submitter[0](function, **args)


def spec_of(function: Any) -> JobSpec | None:
    """The `JobSpec` attached by `@job`, or None."""
    spec = getattr(function, "job_spec", None)
    return spec if isinstance(spec, JobSpec) else None


def registered(module: str) -> dict[str, JobSpec]:
    """The jobs registered so far by module `module` (a copy)."""
    return dict(_registry.get(module, {}))


def forget(module: str) -> None:
    """Drop module `module`'s registrations (before it is imported again)."""
    _registry.pop(module, None)


def _make_spec(function: Callable[..., Any], name: str | None, retries: Any, backoff: Any,
               timeout: Any, periodic: tuple[Any, ...] = (None, None, None, "latest", False)
               ) -> JobSpec:
    where = f"@job on {getattr(function, '__module__', '?')}.{function.__qualname__}"
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise JobDefinitionError(f"{where}: retries = {retries!r} must be an integer >= 0")
    backoff_s = parse_duration(backoff, f"{where}: backoff")
    timeout_s = None if timeout is None else parse_duration(timeout, f"{where}: timeout")
    if timeout_s == 0:
        raise JobDefinitionError(f"{where}: timeout = {timeout!r} must be positive (or None)")
    _check_callable_shape(function, where)
    cron, every, timezone, catch_up, overlap = periodic
    schedule = None
    if periodic != (None, None, None, "latest", False):  # zoneinfo & co. only when needed
        from harunner.api.schedule import parse_schedule

        schedule = parse_schedule(where, cron, every, timezone, catch_up, overlap,
                                  parse_duration)
    if schedule is not None:
        _check_periodic_shape(function, where)
    return JobSpec(_job_name(function, name, where), function, retries, backoff_s, timeout_s,
                   function.__module__, schedule)


def _check_periodic_shape(function: Callable[..., Any], where: str) -> None:
    """A periodic job is fired without arguments (but `scheduled_at`): the rest need defaults."""
    params = list(inspect.signature(function).parameters.values())[1:]
    for param in params:
        if (param.name != SCHEDULED_AT and param.default is param.empty
                and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)):
            raise JobDefinitionError(f"{where}: a periodic job is fired without arguments, so "
                                     f"parameter {param.name!r} needs a default (only "
                                     f"{SCHEDULED_AT!r} is passed)")


def takes_scheduled_at(spec: JobSpec) -> bool:
    """Whether the job's function accepts `scheduled_at` (by name or through **kwargs)."""
    params = inspect.signature(spec.function).parameters.values()
    return any(p.name == SCHEDULED_AT or p.kind is p.VAR_KEYWORD for p in params)


def _job_name(function: Callable[..., Any], name: str | None, where: str) -> str:
    if name is not None:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise JobDefinitionError(f"{where}: name = {name!r} must be a non-empty string "
                                     "without surrounding spaces")
        return name
    if "<locals>" in function.__qualname__:
        raise JobDefinitionError(f"{where}: a job defined inside a function needs name=...; "
                                 "better, define it at the top level of its module")
    return f"{function.__module__}.{function.__qualname__}"


def _check_callable_shape(function: Callable[..., Any], where: str) -> None:
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError) as error:
        raise JobDefinitionError(f"{where}: cannot read the signature ({error})") from None
    first_ok = params and params[0].kind in (params[0].POSITIONAL_ONLY,
                                             params[0].POSITIONAL_OR_KEYWORD)
    if not first_ok:
        raise JobDefinitionError(f"{where}: the first parameter must take the Context, "
                                 "e.g. def my_job(ctx, ...)")
    for param in params[1:]:
        if param.kind is param.POSITIONAL_ONLY:
            raise JobDefinitionError(f"{where}: parameter {param.name!r} is positional-only; "
                                     "job arguments are passed by name")


def _register(spec: JobSpec) -> None:
    jobs = _registry.setdefault(spec.module, {})
    old = jobs.get(spec.name)
    if old is not None and old.function.__qualname__ != spec.function.__qualname__:
        raise JobDefinitionError(
            f"job name {spec.name!r} is used twice in module {spec.module}: by "
            f"{old.function.__qualname__} and {spec.function.__qualname__}; rename one")
    jobs[spec.name] = spec


def _plain(value: Any) -> bool:
    """A JSON scalar that a round trip returns as it is, of the same type (exact types: a
    subclass, an enum, a non-finite float or an int too long to print take the round trip)."""
    kind = type(value)
    return (kind is str or kind is bool or value is None
            or (kind is int and value.bit_length() <= 64)
            or (kind is float and math.isfinite(value)))


def to_json(value: Any, what: str) -> Any:
    """`value` after a JSON round trip; `TypeError` naming `what` if it is not JSON."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} is not JSON-serialisable: {error}") from None


def check_arguments(spec: JobSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` checked against the job's signature and JSON; returns the JSON round trip."""
    named, takes_any = _parameters(spec.function)
    where = f"job {spec.name!r} (signature {spec.signature})"
    for key in args:
        if not isinstance(key, str):
            raise JobArgumentError(f"{where}: argument name {key!r} is not a string")
        if key not in named and not takes_any:
            raise JobArgumentError(f"{where} has no parameter {key!r}; "
                                   f"known: {', '.join(named) or 'none'}")
    missing = [n for n, p in named.items() if p.default is p.empty and n not in args]
    if missing:
        raise JobArgumentError(f"{where}: missing required argument(s) {', '.join(missing)}; "
                               f"give them as --arg {missing[0]}=VALUE")
    if all(map(_plain, args.values())):
        # str keys (checked above) and values of exactly these types: the round trip
        # would return an equal dict of the same types, so it is skipped
        return dict(args)
    try:
        return to_json(dict(args), f"arguments of {where}")
    except TypeError as error:
        raise JobArgumentError(str(error)) from None


@functools.lru_cache(maxsize=1024)
def _parameters(function: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """A job function's named parameters after the context, and whether it takes **kwargs
    (read once per function: a client submitting thousands does not read them each time)."""
    params = list(inspect.signature(function).parameters.values())[1:]
    named = {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def parse_cli_arguments(items: Sequence[str]) -> dict[str, Any]:
    """`--arg key=value` strings as a dict; a value that parses as JSON is taken as JSON."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise JobArgumentError(f"--arg {item!r} is not KEY=VALUE with KEY a parameter name; "
                                   "e.g. --arg folder=/data or --arg count=3")
        if key in parsed:
            raise JobArgumentError(f"--arg {key} is given twice; give each argument once")
        parsed[key] = _json_or_text(text)
    return parsed


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
