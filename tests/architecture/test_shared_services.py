"""No test or project code empties the shared Redis database: with REDIS_URL the Django cache,
the Celery broker and the other xdist workers share it, and ``cache.clear()`` (FLUSHDB) drops
their queued tasks. It made a submission wait forever, now and then, in CI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLUSH = re.compile(r"\bcache\.clear\(\)|\.flushdb\(|\.flushall\(")
ALLOWED = {
    Path("tests/isolation.py"),  # clears the in-memory cache only; Redis: this run's keys
    Path("bench/ingest_bench.py"),  # its own Redis index, named on its command line
    Path("tests/architecture/test_shared_services.py"),  # this file names the calls
}


def test_nothing_flushes_the_shared_redis_database():
    found = []
    for folder in ("prudencial", "enclave_bridge", "seal", "config", "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel in ALLOWED:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if FLUSH.search(line):
                    found.append(f"{rel}:{number}: {line.strip()}")
    assert found == [], "use tests.isolation.clear_cache():\n" + "\n".join(found)


def test_clear_cache_deletes_only_this_runs_keys(settings):
    """Against the real Redis when REDIS_URL is set: a key of another prefix (a broker's
    queue, another worker's cache) survives; this run's keys are gone."""
    import os

    import pytest

    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is unset: the cache is in memory")
    import redis
    from django.core.cache import cache

    from tests.isolation import clear_cache

    other = redis.Redis.from_url(os.environ["REDIS_URL"])
    other.rpush("isolation-test-queue", b"a queued task")
    cache.set("isolation-test", 1)
    try:
        clear_cache()
        assert cache.get("isolation-test") is None
        assert other.llen("isolation-test-queue") == 1
    finally:
        other.delete("isolation-test-queue")
