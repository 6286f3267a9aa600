"""The embedded engine: each periodic job on its own thread inside `serve`.

For the default SQLite deployment (one process, no extra service). Rows in the database
are the truth, so stopping mid-job loses nothing: the next start picks up due rows.
"""

from __future__ import annotations

import logging
import threading

from app.jobs.registry import JobEnv, PeriodicJob

log = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, jobs: list[PeriodicJob], env: JobEnv) -> None:
        self.jobs = jobs
        self.env = env
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> EmbeddedWorker:
        # One thread per job, whatever its lanes: SQLite has one writer anyway.
        for job in self.jobs:
            thread = threading.Thread(target=self._loop, args=(job,), name=f"job:{job.name}")
            thread.daemon = True
            thread.start()
            self.threads.append(thread)
        log.info("embedded worker running %s", ", ".join(job.name for job in self.jobs))
        return self

    def _loop(self, job: PeriodicJob) -> None:
        while not self.stop_event.is_set():
            try:
                job.run(self.env)
            except Exception:  # a job reports and runs again next time; rows stay due
                log.exception("job %s failed", job.name)
            self.stop_event.wait(job.interval_seconds)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)
