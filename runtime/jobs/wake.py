"""Telling workers about runs, after the transaction that made them due has committed.

A message is only a wake-up: the run is already stored, so a message that cannot be sent
(the broker is down or restarting) is logged and dropped, never raised to the caller whose
write already committed; the sweeper (runtime.jobs.sweeper) sends it again later. After a
failure, sends are skipped for `BROKER_PAUSE` seconds and then tried by one caller at a
time, so that a broker that is down costs the wait for it to the callers that were sending
when it went, then to one caller per pause, not to every write.
"""

from __future__ import annotations

import threading
import time
from typing import Iterable

import structlog

log = structlog.get_logger(__name__)

# Once a send fails, the broker counts as down in this process for this many seconds:
# wake-ups are skipped at once (the sweeper sends them) instead of each waiting out
# Celery's connection attempts, about 6 s a message here with the defaults; every write
# that started a run, and every event it emitted, would have waited that long for its
# answer. When the pause is out, one caller tries the broker again while the others go on
# skipping; its success ends the pause, its failure starts another. Callers that were
# already sending when the broker went away still wait for their own attempt.
BROKER_PAUSE = 5.0
_down_until = 0.0       # time.monotonic(); 0: the broker is up
_probing = False        # a caller is trying the broker after a pause
_state = threading.Lock()


def _may_send() -> bool | None:
    """None: skip (the broker is down); False: send; True: send, as the one caller trying
    the broker again after a pause (the others skip until it has its answer)."""
    global _probing
    if not _down_until:
        return False
    with _state:
        if not _down_until:
            return False
        if _probing or time.monotonic() < _down_until:
            return None
        _probing = True
        return True


def _sent(ok: bool, probe: bool) -> None:
    global _down_until, _probing
    with _state:
        if probe:
            _probing = False
        _down_until = 0.0 if ok else time.monotonic() + BROKER_PAUSE


def wake_runs(run_ids: Iterable[object]) -> int:
    """Wake workers for these runs; returns how many messages were sent.

    A woken worker runs its run and then any other due runs, up to `engine.DRAIN`, so a
    batch of runs needs one message per DRAIN of them (plus one, so that two workers
    share a batch), not one each: messages a worker only finds nothing to do for cost it
    several milliseconds each."""
    from runtime.jobs.engine import DRAIN
    from runtime.jobs.tasks import execute

    ids = [str(run_id) for run_id in run_ids]
    if len(ids) > 2:
        wanted = len(ids) // DRAIN + 2
        ids = ids[:: max(1, len(ids) // wanted)][:wanted]
    return _send(execute, ids, "run_id")


def wake_events(event_ids: Iterable[object]) -> int:
    from runtime.jobs.tasks import deliver

    return _send(deliver, [int(event_id) for event_id in event_ids], "event_id")


def _send(task, args: list, what: str) -> int:
    probe = _may_send() if args else None
    if probe is None:
        return 0
    sent, ok = 0, False
    try:
        for arg in args:
            task.apply_async(args=[arg], retry=False)
            sent += 1
        ok = True
    except Exception as exc:  # broker unreachable: the sweeper re-sends
        log.warning("jobs.wake_failed", **{what: args[sent]}, error=type(exc).__name__, paused_s=BROKER_PAUSE)
    finally:
        if probe or not ok:
            _sent(ok, probe)
    return sent
