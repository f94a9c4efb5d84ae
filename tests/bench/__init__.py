"""The throughput and latency benchmark of issue 8 (not part of the unit-test run).

Run it with ``python -m tests.bench``; see ``tests/bench/driver.py``.
"""
