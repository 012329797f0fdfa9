"""The job API: `@job`, `Context`, discovery of job modules, and the client.

Layering: this folder depends on `harunner.store` (and the floor: errors,
config) only. `job` holds the decorator, durations, the retry policy and
argument checks; `schedule` the options and fire times of periodic jobs;
`context` what a running job sees; `discovery` imports the job modules;
`client` submits and waits from outside a cluster.
"""

from harunner.api.context import Context, job_logger
from harunner.api.job import (
    JobSpec,
    check_arguments,
    forget,
    job,
    parse_cli_arguments,
    parse_duration,
    registered,
    retry_at,
    retry_delay,
    spec_of,
    to_json,
)

__all__ = ["Context", "JobSpec", "check_arguments", "forget", "job", "job_logger",
           "parse_cli_arguments", "parse_duration", "registered", "retry_at", "retry_delay",
           "spec_of", "to_json"]
