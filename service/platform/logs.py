"""Logs as JSON lines on stdout: one object per line, control characters escaped.

Every request writes one line, so the path is kept cheap: the logging module is told
not to collect what no line shows (caller, thread and process names), and the
timestamp is formatted without building a datetime.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

from service.platform.jsonutil import scrub

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
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
            return orjson.dumps(entry, default=str).decode()
        except orjson.JSONEncodeError:  # undecodable header bytes: replaced, never the line lost
            return orjson.dumps(scrub(entry), default=str).decode()


def setup_logging(level: str = "INFO") -> None:
    # None of these reaches a line (the formatter leaves the record's own fields out), and
    # each costs time on every record: the caller's frame walk above all.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
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
