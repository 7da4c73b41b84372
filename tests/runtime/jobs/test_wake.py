"""Wake-ups when the broker is down: a write that committed never waits on every wake-up
for a broker that is not there. After one failed send, sends are skipped (the sweeper
sends them later) until `BROKER_PAUSE` is out; then one caller tries the broker again
while the others go on skipping."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from runtime.jobs import wake

RUN = "00000000-0000-0000-0000-000000000001"


class RefusingBroker:
    """A TCP port that accepts connections and closes them at once (a broker that is not
    answering), counting them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def broker_down(monkeypatch):
    from controlplane.celery import app

    broker = RefusingBroker()
    url, timeout = app.conf.broker_url, app.conf.broker_connection_timeout

    def use(broker_url, connection_timeout):
        app.conf.broker_url, app.conf.broker_connection_timeout = broker_url, connection_timeout
        app._pool = None              # the connection and producer pools, built again on next use
        app.amqp._producer_pool = None

    use(f"redis://127.0.0.1:{broker.port}/0", 0.5)     # each failed send gives up sooner
    monkeypatch.setattr(wake, "_down_until", 0.0)
    yield broker
    use(url, timeout)
    broker.close()


def test_after_a_failed_send_wake_ups_are_skipped_until_the_pause_is_out(broker_down, monkeypatch):
    monkeypatch.setattr(wake, "BROKER_PAUSE", 1.0)
    assert wake.wake_runs([RUN]) == 0
    tried = broker_down.accepted
    assert tried >= 1                   # it did try the broker
    assert wake.wake_runs([RUN]) == 0 and wake.wake_events([1]) == 0
    assert broker_down.accepted == tried    # ... and not again while paused
    time.sleep(1.1)
    assert wake.wake_runs([RUN]) == 0
    assert broker_down.accepted > tried     # the pause is out: tried again


def test_when_the_pause_is_out_one_caller_tries_the_broker_and_the_others_skip(broker_down, monkeypatch):
    from runtime.jobs.tasks import execute

    tries: list[str] = []
    send = execute.apply_async

    def counted(*args, **kwargs):       # the real send, counted
        tries.append(kwargs["args"][0])
        return send(*args, **kwargs)

    monkeypatch.setattr(execute, "apply_async", counted)
    monkeypatch.setattr(wake, "BROKER_PAUSE", 0.05)    # far shorter than a failing send (seconds of attempts)
    assert wake.wake_runs([RUN]) == 0 and len(tries) == 1
    time.sleep(0.1)
    probe = threading.Thread(target=wake.wake_runs, args=[[RUN]])
    probe.start()
    while len(tries) < 2 and probe.is_alive():
        time.sleep(0.01)
    assert len(tries) == 2                   # the pause is out: one caller tries ...
    time.sleep(0.1)                          # (longer than a pause)
    in_flight = probe.is_alive()
    assert wake.wake_runs([RUN]) == 0        # ... and no other while it does, pause or no pause
    if in_flight:
        assert len(tries) == 2
    probe.join(30)
