"""Logs as JSON lines on stdout: one object per line, control characters escaped.

Every request writes one line, so the path is kept cheap: the logging module is told
not to collect what no line shows (caller, thread and process names), the timestamp is
formatted without building a datetime, and lines leave in batches (see JsonLinesHandler).
The request line itself takes :func:`info_line` when nothing but our own handler would see
it: the same JSON line without a LogRecord, which the logging module's dispatch (record,
logger chain, handler lock, formatter) made a fifth of a /healthz request's time.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import time

import orjson

from service.platform.jsonutil import scrub

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def _timestamp(created: float) -> str:
    global _second
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    if _second[0] != seconds:  # a new second: format it once, not once per line
        _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{_second[1]}.{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return self.line(record).decode()

    def line(self, record: logging.LogRecord) -> bytes:
        entry = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


def _encode(entry: dict) -> bytes:
    try:
        return orjson.dumps(entry, default=str)
    except orjson.JSONEncodeError:  # undecodable header bytes: replaced, never the line lost
        return orjson.dumps(scrub(entry), default=str)


class JsonLinesHandler(logging.Handler):
    """Writes records as JSON lines to a file descriptor. Inside an event loop the lines of
    INFO and below are gathered for up to ``DELAY`` seconds (or ``MAX_PENDING`` bytes) and
    written together: a write to stdout is a system call, and one per request line cost a
    small request a fifth of its time (tests.bench, /healthz). A warning or an error is
    written at once, with whatever waits before it; outside a loop every line is. ``flush``
    (called by ``logging.shutdown`` at exit) writes whatever is pending."""

    DELAY = 0.05
    MAX_PENDING = 64 * 1024

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self._pending: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            formatter = self.formatter
            if isinstance(formatter, JsonFormatter):
                data = formatter.line(record) + b"\n"
            else:
                data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            self.write(data, urgent=record.levelno >= logging.WARNING)
        except Exception:
            self.handleError(record)

    def write(self, data: bytes, urgent: bool = False) -> None:
        """Queue one line (``urgent``: write it, and what waits before it, at once)."""
        self._pending.append(data)
        self._size += len(data)
        if urgent or self._size >= self.MAX_PENDING:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nothing would run a timer
            self.flush()
            return
        if self._timer is None or self._timer_loop is not loop:  # (a timer of a loop since closed)
            self._timer, self._timer_loop = loop.call_later(self.DELAY, self.flush), loop

    def flush(self) -> None:
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = self._timer_loop = None
            if not self._pending:
                return
            data = memoryview(b"".join(self._pending))
            self._pending.clear()
            self._size = 0
            while data:
                try:
                    data = data[os.write(self.fd, data):]
                except InterruptedError:
                    continue
                except OSError:  # stdout gone: nothing to write to
                    return


def _sole_handler(logger: logging.Logger) -> JsonLinesHandler | None:
    """Our line writer if it is the only handler a record of ``logger`` would reach, with no
    filter on the way (else None: a test's capture handler, say, must see the record)."""
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or type(handler) is not JsonLinesHandler or handler.filters:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    if found is None or not isinstance(found.formatter, JsonFormatter) or logging.INFO < found.level:
        return None
    return found


def info_line(logger: logging.Logger, message: str, fields: dict) -> None:
    """``logger.info(message, extra=fields)``, written as the same JSON line without building a
    LogRecord when only our handler would see it (the request log: one line per request)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _sole_handler(logger)
    if handler is None:
        logger.info(message, extra=fields)
        return
    entry = {"ts": _timestamp(time.time()), "level": "INFO", "logger": logger.name, "message": message, **fields}
    line = _encode(entry) + b"\n"
    with handler.lock:
        handler.write(line)


def stdout_handler() -> logging.Handler:
    """Our line writer on stdout's descriptor; a plain stream handler where stdout has none
    (a test capturing ``sys.stdout``)."""
    try:
        sys.stdout.flush()
        return JsonLinesHandler(sys.stdout.fileno())
    except (AttributeError, io.UnsupportedOperation, ValueError):
        return logging.StreamHandler(sys.stdout)


def setup_logging(level: str = "INFO") -> None:
    # None of these reaches a line (the formatter leaves the record's own fields out), and
    # each costs time on every record: the caller's frame walk above all.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = stdout_handler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("sanic.root", "sanic.error", "sanic.server", "sanic.access", "tortoise",
                 "tortoise.db_client", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Our own request log replaces Sanic's access log; the ORM's query log is too chatty.
    logging.getLogger("sanic.access").setLevel(logging.WARNING)
    logging.getLogger("tortoise").setLevel(logging.WARNING)
