"""Bounded study computation: a fixed pool of workers, a bounded wait queue, a search-size and time budget.

Every study the service computes (a blocking request or a background job) goes through ``Jobs.submit``;
work over a budget fails with a ``LimitError`` that names the limit. Searches are stopped at their next
progress report once over the time or size budget; a kind that reports no progress is checked when it ends
(a thread cannot be stopped from outside), and is never stored then. Entry points: ``Limits``, ``Jobs``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fleetwise.errors import FleetwiseError
from fleetwise.study import Study

log = logging.getLogger("fleetwise.service")
MAX_KEPT_JOBS = 256


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds on work per request.

    Args:
        max_request_bytes: largest request body accepted.
        max_running: studies computed at once (worker threads).
        max_waiting: studies that may wait for a worker; beyond that a request is refused.
        time_budget_s: wall-clock seconds one study may compute.
        max_candidates: largest search space (candidate plans) one study may evaluate.
        max_list: most studies one list request returns.
    """

    max_request_bytes: int = 256 * 1024
    max_running: int = 2
    max_waiting: int = 64
    time_budget_s: float = 120.0
    max_candidates: int = 20_000_000
    max_list: int = 500


class LimitError(FleetwiseError):
    """A request or a study is over one of the service's limits; ``limit`` names it, ``status`` is the HTTP code."""

    def __init__(self, limit: str, message: str, status: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.status = status


RunStudy = Callable[[str, Mapping[str, Any], Callable[[int, int], None]], Study]


@dataclass
class Job:
    """One study being computed: its state, progress and outcome (the study, or a bounded error)."""

    id: str
    kind: str
    state: str = "queued"  # queued | running | done | failed
    done: int = 0
    total: int = 0
    started_s: float = 0.0
    finished_s: float = 0.0
    study_id: str | None = None
    error: str | None = None
    error_status: int = 0
    limit: str | None = None
    created_s: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = (self.finished_s or now) - self.started_s if self.started_s else 0.0
        return {"id": self.id, "kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
                "elapsed_s": round(elapsed, 3), "study_id": self.study_id, "error": self.error,
                "limit": self.limit}


class Jobs:
    """The worker pool and the job table (the last ``MAX_KEPT_JOBS`` jobs are kept for polling)."""

    def __init__(self, limits: Limits, run: RunStudy, on_done: Callable[[Study], object]) -> None:
        self.limits = limits
        self._run = run
        self._on_done = on_done
        self._pool = ThreadPoolExecutor(max_workers=limits.max_running, thread_name_prefix="fleetwise-study")
        self._lock = threading.Lock()
        self._pending = 0
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def submit(self, kind: str, inputs: Mapping[str, Any], save: bool = True) -> tuple[Job, Future[Study]]:
        """Queue one study (stored when done if ``save``); ``LimitError`` (429) when every worker is busy and
        the wait queue is full."""
        cap = self.limits.max_running + self.limits.max_waiting
        with self._lock:
            if self._pending >= cap:
                raise LimitError("concurrency", f"concurrency limit: {self.limits.max_running} studies are "
                                 f"computing and {self.limits.max_waiting} are waiting; retry later", 429)
            self._pending += 1
            job = Job(id=uuid.uuid4().hex, kind=kind)
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_KEPT_JOBS:
                self._jobs.popitem(last=False)
        try:
            fut = self._pool.submit(self._work, job, inputs, save)
        except RuntimeError:
            with self._lock:
                self._pending -= 1
            raise LimitError("shutdown", "the server is shutting down", 503) from None
        return job, fut

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _progress(self, job: Job) -> Callable[[int, int], None]:
        limits = self.limits

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            if total > limits.max_candidates:
                raise LimitError("search_size", f"search-size limit: this search has {total:,} candidate plans, "
                                 f"the limit is {limits.max_candidates:,}; pin some of tp/pp/dp/ep or ask for "
                                 "fewer chips", 422)
            if time.monotonic() - job.started_s > limits.time_budget_s:
                raise LimitError("time_budget", f"time budget: the study ran past {limits.time_budget_s:g} s "
                                 f"({done:,} of {total:,} candidates evaluated); narrow the search", 422)

        return progress

    def _work(self, job: Job, inputs: Mapping[str, Any], save: bool) -> Study:
        job.state, job.started_s = "running", time.monotonic()
        try:
            study = self._run(job.kind, inputs, self._progress(job))
            if time.monotonic() - job.started_s > self.limits.time_budget_s:
                raise LimitError("time_budget", f"time budget: the study took longer than "
                                 f"{self.limits.time_budget_s:g} s; narrow the search", 422)
            if save:
                self._on_done(study)
            job.study_id, job.state = study.id, "done"
            if job.total:
                job.done = job.total
            return study
        except LimitError as exc:
            job.error, job.error_status, job.limit, job.state = str(exc), exc.status, exc.limit, "failed"
            raise
        except FleetwiseError as exc:
            job.error, job.error_status, job.state = str(exc)[:2000], 422, "failed"
            raise
        except Exception:
            log.exception("study %s (%s) failed", job.id, job.kind)
            job.error, job.error_status, job.state = "internal error while computing the study (logged)", 500, \
                "failed"
            raise
        finally:
            job.finished_s = time.monotonic()
            with self._lock:
                self._pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
