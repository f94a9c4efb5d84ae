"""Process lifecycle under Sanic's worker manager: replace crashed workers, shut down gracefully.

Sanic's manager (the main process of ``sanic ... --workers N``) leaves gaps that this module
closes:

- A worker that dies (OOM killer, a segfault, SIGKILL) is not replaced: the service would run
  on fewer workers, or on none while the main process, and so the dyno, looks alive. The main
  process checks its workers twice a second and asks the manager to restart a dead one.
- Heroku, like Ctrl-C in a terminal, signals every process of the group, and the manager then
  signals its workers again. Sanic handles each signal by stopping the worker's loop, so the
  second one cut the drain short and dropped every request in flight. A worker now acts on
  the first signal only.
- The manager keeps its own copy of the listening socket until the last worker exits, so
  connections kept arriving into the kernel's backlog during the drain, were never answered
  and were reset at the very end. The main process now closes its copy when the shutdown
  begins; each worker closes its own as it starts draining, and the port refuses new
  connections.
- A keep-alive connection whose request was in flight stayed open after its response, so
  every shutdown with busy clients lasted the full GRACEFUL_SHUTDOWN_TIMEOUT. Responses sent
  while draining now close their connection.
- The manager's bookkeeping lives in a helper process (multiprocessing's SyncManager). It got
  the dyno-wide SIGTERM too and died at once, so the main process failed mid-shutdown and
  exited with an error. The command-line entry point now makes that helper immune to SIGTERM
  before Sanic starts it; the manager still stops it when everything is done.

In-flight requests then get GRACEFUL_SHUTDOWN_TIMEOUT (25 s; Heroku's SIGKILL follows its
SIGTERM after 30 s) to finish.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import threading
import time
from contextlib import suppress
from functools import partial
from typing import Any

from sanic import Sanic
from sanic.exceptions import SanicException
from sanic.request import Request

log = logging.getLogger("service.platform.lifecycle")

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
WATCH_INTERVAL = 0.5  # seconds between two looks at the workers
MAX_BACKOFF = 30.0  # a worker that keeps dying (say, at start-up) is retried at most this often
STABLE_AFTER = 10.0  # a worker that lived this long resets its back-off


def setup_lifecycle(app: Sanic) -> None:
    @app.main_process_ready
    async def supervise_workers(app_: Sanic) -> None:
        try:
            manager = app_.manager
        except SanicException:
            return  # no manager: a single process
        stopping = threading.Event()
        for signum in SHUTDOWN_SIGNALS:
            signal.signal(signum, _stop_supervising(app_, stopping, signal.getsignal(signum)))
        threading.Thread(target=_replace_dead_workers, args=(manager, stopping),
                         name="worker-supervisor", daemon=True).start()

    draining = False

    @app.before_server_stop
    async def begin_draining(_app: Sanic) -> None:
        nonlocal draining
        draining = True

    @app.on_response(priority=-200)
    async def close_connection_after_response(request: Request, response: Any) -> None:
        # Sanic closes idle keep-alive connections once, as the drain begins; a connection
        # whose request was in flight would stay open (and the worker up) for the whole
        # GRACEFUL_SHUTDOWN_TIMEOUT. Its response now says "Connection: close" instead.
        if draining and request.stream is not None:
            request.stream.keep_alive = False

    @app.after_server_start
    async def drain_on_first_signal(app_: Sanic) -> None:
        if not hasattr(app_, "multiplexer"):
            return  # a single process (``serve --workers 1``): nobody signals it twice
        loop = asyncio.get_running_loop()
        stopping = False

        def on_signal(_signum: int, _frame: Any) -> None:
            nonlocal stopping
            if not stopping:  # the repeats are ignored: the drain runs to its end (or SIGKILL)
                stopping = True
                loop.call_soon_threadsafe(partial(app_.stop, terminate=False))

        # A plain handler instead of the loop's: Sanic removes the loop's handlers as the
        # drain begins, which would leave the next signal to the default action (exit).
        for signum in SHUTDOWN_SIGNALS:
            loop.remove_signal_handler(signum)
            signal.signal(signum, on_signal)


def shield_helper_processes() -> None:
    """Let the processes Sanic's manager starts for itself ignore SIGTERM (see above).

    Called by the application factory in the main process of ``sanic ... --factory`` before
    the manager exists: child processes inherit an ignored signal (a handler is reset when
    they start), and the manager installs its own handler here right after. The workers set
    theirs up themselves.
    """
    if multiprocessing.current_process().name == "MainProcess":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stop_supervising(app: Sanic, stopping: threading.Event, manager_handler: Any):
    def handler(signum: int, frame: Any) -> None:
        stopping.set()
        # Only this process's copy of the listening socket (see the module's docstring).
        for server_info in app.state.server_info:
            sock = server_info.settings.get("sock")
            if sock is not None:
                with suppress(OSError):
                    sock.close()
        if callable(manager_handler):
            manager_handler(signum, frame)

    return handler


def _replace_dead_workers(manager: Any, stopping: threading.Event) -> None:
    """Runs in the main process: restart server workers that died, with a back-off."""
    # Until every worker has reported ready once, the manager only waits for those reports
    # (a restart request then would make it spin), and a worker that fails to start makes
    # the manager give up on its own: supervise from then on.
    while not _all_ready(manager):
        if stopping.wait(WATCH_INTERVAL):
            return
    backoff: dict[str, float] = {}
    not_before: dict[str, float] = {}
    started: dict[str, float] = {}
    while not stopping.wait(WATCH_INTERVAL):
        now = time.monotonic()
        for process in list(manager.transient_processes):
            if process.is_alive() or process.exitcode is None or not process.restartable:
                continue  # alive, or never started / being restarted
            if now < not_before.get(process.name, 0.0):
                continue
            lived = now - started.get(process.name, 0.0)
            delay = 1.0 if lived >= STABLE_AFTER else min(MAX_BACKOFF, backoff.get(process.name, 0.5) * 2)
            backoff[process.name], not_before[process.name] = delay, now + delay
            started[process.name] = now
            log.warning("worker died; starting a new one", extra={
                "event": "worker.replaced", "worker": process.name, "exitcode": process.exitcode})
            if stopping.is_set():
                return
            # The same request a worker sends with ``app.m.restart()``: the manager's own
            # loop performs it, so nothing here touches its state from another thread.
            manager.monitor_publisher.send(f"{process.name}:")


def _all_ready(manager: Any) -> bool:
    try:
        states = [manager.worker_state.get(process.name, {}).get("state")
                  for process in manager.transient_processes]
    except (OSError, EOFError):  # the manager's bookkeeping process is gone: shutting down
        return False
    return bool(states) and all(state == "ACKED" for state in states)
