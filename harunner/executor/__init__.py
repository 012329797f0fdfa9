"""Running jobs in worker processes the runner can kill: executor, launcher, worker."""
