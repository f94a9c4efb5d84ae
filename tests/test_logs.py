"""The JSON-lines writer: batched inside a loop, urgent lines at once, nothing lost at exit, and
the request log's fast path writing exactly the line the logging module would."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest

from service.platform.logs import JsonFormatter, JsonLinesHandler, info_line


@pytest.fixture
def pipe_logger():
    """A logger whose only handler is our writer on a pipe; yields (logger, handler, read)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    handler = JsonLinesHandler(write_fd)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.logs.{id(handler)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def read() -> list[dict]:
        try:
            data = os.read(read_fd, 1 << 20)
        except BlockingIOError:
            return []
        return [json.loads(line) for line in data.decode().splitlines()]

    yield logger, handler, read
    logger.handlers[:] = []
    os.close(read_fd)
    os.close(write_fd)


def test_info_lines_inside_a_loop_leave_together_after_the_delay(pipe_logger):
    logger, handler, read = pipe_logger

    async def scenario():
        for n in range(3):
            logger.info("line", extra={"n": n})
        assert read() == []  # gathered, not yet written
        await asyncio.sleep(handler.DELAY * 3)
        return read()

    lines = asyncio.run(scenario())
    assert [line["n"] for line in lines] == [0, 1, 2]
    assert {line["level"] for line in lines} == {"INFO"} and lines[0]["logger"] == logger.name


def test_a_warning_leaves_at_once_with_the_lines_before_it(pipe_logger):
    logger, _, read = pipe_logger

    async def scenario():
        logger.info("first")
        logger.warning("trouble")
        return read()

    assert [line["message"] for line in asyncio.run(scenario())] == ["first", "trouble"]


def test_pending_lines_are_written_by_flush_and_outside_a_loop_at_once(pipe_logger):
    logger, handler, read = pipe_logger

    async def scenario():
        logger.info("pending")

    asyncio.run(scenario())  # the loop closed before its timer ran
    handler.flush()  # what logging.shutdown() does at exit
    assert [line["message"] for line in read()] == ["pending"]
    logger.info("no loop")
    assert [line["message"] for line in read()] == ["no loop"]

    async def later():  # a new loop still gets its lines out (the old loop's timer is not waited for)
        logger.info("new loop")
        await asyncio.sleep(handler.DELAY * 3)
        return read()

    assert [line["message"] for line in asyncio.run(later())] == ["new loop"]


def test_the_fast_request_line_is_the_line_the_logging_module_writes(pipe_logger):
    logger, handler, read = pipe_logger
    fields = {"event": "http.request", "method": "GET", "path": "/api/v1/x", "status": 200,
              "duration_ms": 1.5, "request_id": "abc", "user_id": None, "ip": "127.0.0.1", "pid": 7}
    info_line(logger, "request", fields)
    logger.info("request", extra=fields)
    handler.flush()
    fast, slow = read()
    assert fast.pop("ts")[:19] == slow.pop("ts")[:19]
    assert list(fast) == list(slow) and fast == slow


def test_the_fast_path_yields_to_any_other_handler(pipe_logger, caplog):
    logger, handler, read = pipe_logger
    logger.propagate = True  # caplog's handler sits on the root logger
    with caplog.at_level(logging.INFO):
        info_line(logger, "request", {"event": "http.request"})
    assert {r.event for r in caplog.records if r.name == logger.name} == {"http.request"}  # a real record
    logger.setLevel(logging.WARNING)
    info_line(logger, "request", {"event": "http.request"})
    handler.flush()
    assert [line["event"] for line in read()] == ["http.request"]  # the first only: INFO is now off
