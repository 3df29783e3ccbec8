"""Examining a backlog in worker processes: the same results as examining it here,
nothing lost when the pool breaks, and no worker outliving mailbot."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailbot.ingest.examine import examine, triage_rules
from mailbot.ingest.parallel import CHUNK, ExaminePool, worker_count
from tests.conftest import SHARED, sample_bytes
from tests.forms import portal_form

REPO = Path(__file__).resolve().parent.parent


def backlog() -> list[tuple[bytes, bool]]:
    raws = [sample_bytes(p.name) for p in sorted((SHARED / "samples").glob("*.eml"))]
    raws += [portal_form(text=f"He owes money on the wing, day {i}.") for i in range(8)]
    raws += [b"", b"not an email\r\n", (SHARED / "realworld/bounces/dsn_01.eml").read_bytes()]
    return [(raw, i == 3) for i, raw in enumerate(raws)]  # one fetched as too large


def examined_here(config, work):  # type: ignore[no-untyped-def]
    rules = triage_rules(config)
    return [examine(raw, config, rules=rules, too_large=large) for raw, large in work]


def test_workers_find_exactly_what_this_process_finds(offline_config):
    work = backlog()
    with ExaminePool(offline_config, triage_rules(offline_config), 2) as pool:
        pending = pool.submit(work)
        assert len(pending.futures) == -(-len(work) // CHUNK)
        found = pool.results(pending)
    assert found == examined_here(offline_config, work)


def test_what_no_worker_has_started_is_examined_here(offline_config):
    work = backlog() * 4
    with ExaminePool(offline_config, triage_rules(offline_config), 1) as pool:
        pool._start().submit(time.sleep, 2)  # the one worker is busy
        pending = pool.submit(work)
        found = pool.results(pending)
        # Taken over rather than waited for: all but the chunk already handed to the
        # busy worker's queue.
        assert sum(f.cancelled() for f in pending.futures) >= len(pending.futures) - 1
    assert found == examined_here(offline_config, work)


def test_a_broken_pool_costs_time_not_messages(offline_config, caplog):
    work = backlog()
    caplog.set_level(logging.WARNING, logger="mailbot.ingest.parallel")
    with ExaminePool(offline_config, triage_rules(offline_config), 1) as pool:
        pool._start().submit(os._exit, 1)  # a worker dies, as if killed by the OOM killer
        first, second = pool.submit(work), pool.submit(work)
        found = pool.results(first)
        assert pool.results(second) == found
        assert pool.results(pool.submit(work)) == found  # and the pool is not tried again
    assert found == examined_here(offline_config, work)
    assert caplog.messages.count("examine_pool_failed") == 1


def test_no_worker_outlives_a_killed_mailbot():
    code = (
        "import time\n"
        "from mailbot.config import from_dict\n"
        "from mailbot.ingest.parallel import CHUNK, ExaminePool\n"
        "config = from_dict({'prison': {'name': 'HMP Exampletown'},"
        " 'mailbox': {'host': 'localhost', 'username': 'u', 'password_env': 'UNUSED'},"
        " 'smtp': {'host': 'localhost', 'from_address': 'sc@prison.example'}})\n"
        "pool = ExaminePool(config, None, 2)\n"
        "pool.results(pool.submit([(b'x', False)] * 2 * CHUNK))\n"
        "print(*[p.pid for p in pool._executor._processes.values()], flush=True)\n"
        "time.sleep(600)\n"
    )
    mailbot = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               cwd=REPO, text=True)
    workers = [int(pid) for pid in mailbot.stdout.readline().split()]  # type: ignore[union-attr]
    assert len(workers) == 2
    mailbot.kill()
    mailbot.wait()
    waited = 0.0
    while any(_running(pid) for pid in workers) and waited < 60:
        time.sleep(0.1)
        waited += 0.1
    assert not [pid for pid in workers if _running(pid)]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's wait is left


@pytest.mark.parametrize(("setting", "cpus", "expected"), [
    (True, 1, 0), (True, 2, 1), (True, 8, 4), (False, 8, 0),
])
def test_one_worker_fewer_than_the_cpus(offline_config, monkeypatch, setting, cpus, expected):
    from dataclasses import replace

    config = replace(offline_config,
                     mailbox=replace(offline_config.mailbox, parallel_examine=setting))
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert worker_count(config) == expected
