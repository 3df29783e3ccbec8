"""Examining a backlog on the other cores while this process stores what was examined.

`examine` (recognise, parse, triage) is pure and takes about as long as storing and
answering a message, so when the inbox holds more than one batch, a pool of worker
processes examines batch N+1 while this process stores batch N. Workers are spawned,
never forked from this process: the daemon has scheduler and IDLE threads, and a fork
taken while another thread holds a lock can deadlock. A worker exits as soon as this
process is gone, however it went (SIGKILL included), so none is left behind holding
the journal's pipe.

Nothing here may lose a message: if the pool breaks (a worker killed, a result that
cannot be sent back), that batch is examined here instead and the pool is not used
again in this run.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from mailbot.config import Config
from mailbot.ingest.examine import Examined, examine, triage_rules
from mailbot.logs import event
from mailbot.service.runtime import tune_garbage_collector
from mailbot.triage import TriageRules

log = logging.getLogger(__name__)

MAX_WORKERS = 4

# One message to examine: its bytes, and whether only its header was fetched.
Work = tuple[bytes, bool]


def worker_count(config: Config) -> int:
    """Worker processes for a backlog: one fewer than the CPUs, since this process has
    the storing to do; none on one CPU or when `[mailbox] parallel_examine` is off."""
    if not config.mailbox.parallel_examine:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min((cpus or 1) - 1, MAX_WORKERS))


# Messages a task: small enough that this process can take over what no worker has
# started, large enough that sending the task costs little beside examining it.
CHUNK = 25


@dataclass
class PendingBatch:
    """A batch being examined: `futures` hold its chunks of CHUNK messages, in order
    (none when it is all examined here)."""

    work: list[Work]
    futures: list[Future[list[Examined]]]

    def chunks(self) -> list[list[Work]]:
        return [self.work[i : i + CHUNK] for i in range(0, len(self.work), CHUNK)]


class ExaminePool:
    def __init__(self, config: Config, rules: TriageRules | None, workers: int) -> None:
        self.config = config
        self.rules = rules
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._broken = workers < 1

    def submit(self, work: list[Work]) -> PendingBatch:
        """Start examining WORK in the pool, a chunk a task."""
        if self._broken or not work:
            return PendingBatch(work, [])
        try:
            executor = self._start()
            futures = [executor.submit(_examine_chunk, work[i : i + CHUNK])
                       for i in range(0, len(work), CHUNK)]
        except Exception as exc:  # noqa: BLE001 - examined here instead
            self._give_up(exc)
            return PendingBatch(work, [])
        return PendingBatch(work, futures)

    def results(self, pending: PendingBatch) -> list[Examined]:
        """What was found for the batch. Chunks no worker has started yet are examined
        here, last first, rather than waited for: while the workers start (the first
        batch), or when they fall behind. What the pool could not do is done here."""
        chunks = pending.chunks()
        if not pending.futures or self._broken:  # broken: already said, once
            return self._examine_here(pending.work)
        found: list[list[Examined] | None] = [None] * len(chunks)
        while True:
            unstarted = next((i for i in reversed(range(len(chunks)))
                              if found[i] is None and pending.futures[i].cancel()), None)
            if unstarted is None:
                break
            found[unstarted] = self._examine_here(chunks[unstarted])
        try:
            for index, future in enumerate(pending.futures):
                if found[index] is None:
                    from_pool = future.result()
                    if len(from_pool) != len(chunks[index]):
                        raise RuntimeError(
                            f"{len(from_pool)} results for {len(chunks[index])} messages")
                    found[index] = from_pool
        except Exception as exc:  # noqa: BLE001 - examined here instead
            self._give_up(exc)
        return [examined
                for index, chunk in enumerate(chunks)
                for examined in (found[index] or self._examine_here(chunk))]

    def _examine_here(self, work: Sequence[Work]) -> list[Examined]:
        return _examine_all(work, self.config, self.rules)

    def close(self) -> None:
        # Every result is in by now; the workers wind down while this process sends and
        # syncs (the interpreter joins them at exit) rather than holding it up.
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ExaminePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.config,),
            )
            event(log, logging.INFO, "examine_pool_started", workers=self.workers)
        return self._executor

    def _give_up(self, exc: BaseException) -> None:
        event(log, logging.WARNING, "examine_pool_failed",
              error=f"{exc.__class__.__name__}: {exc}"[:500], fallback="this process")
        self._broken = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# --- in the worker processes ---------------------------------------------------------------

_worker: dict[str, object] = {}


def _start_worker(config: Config) -> None:
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()
    # The rules are read again rather than sent: compiled, they are large to pickle.
    _worker["config"] = config
    _worker["rules"] = triage_rules(config)
    tune_garbage_collector()


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


def _examine_chunk(work: list[Work]) -> list[Examined]:
    return _examine_all(work, _worker["config"], _worker["rules"])  # type: ignore[arg-type]


def _examine_all(
    work: Sequence[Work], config: Config, rules: TriageRules | None
) -> list[Examined]:
    return [examine(raw, config, rules=rules, too_large=too_large) for raw, too_large in work]
