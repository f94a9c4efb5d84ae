"""Logs as JSON lines on stdout: one object per line, control characters escaped.

Every request writes one line, so the path is kept cheap: the logging module is told
not to collect what no line shows (caller, thread and process names), the timestamp is
formatted without building a datetime, and the lines of one event-loop tick leave in one
write (tests.bench: a flushed write per line was a twentieth of a small request's CPU).
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
        try:
            return orjson.dumps(entry, default=str)
        except orjson.JSONEncodeError:  # undecodable header bytes: replaced, never the line lost
            return orjson.dumps(scrub(entry), default=str)


class JsonLinesHandler(logging.Handler):
    """Writes records as JSON lines to a file descriptor. Inside an event loop the lines
    emitted during one tick are written together right after it (``call_soon``), so many
    requests finishing at once cost one system call; anywhere else a line is written at
    once. ``flush`` (called by ``logging.shutdown`` at exit) writes whatever is pending."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self._pending: list[bytes] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            formatter = self.formatter
            if isinstance(formatter, JsonFormatter):
                data = formatter.line(record) + b"\n"
            else:
                data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            self._pending.append(data)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self.flush)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:
            self._scheduled = False
            if not self._pending:
                return
            data = memoryview(b"".join(self._pending))
            self._pending.clear()
            while data:
                try:
                    data = data[os.write(self.fd, data):]
                except InterruptedError:
                    continue
                except OSError:  # stdout gone: nothing to write to
                    return


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
