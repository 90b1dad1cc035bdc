"""What keeps one test run from touching another's state on the shared services.

With REDIS_URL the Django cache lives in the same Redis database as the Celery broker, and the
xdist workers (and other runs on the machine) share it. ``cache.clear()`` is FLUSHDB there: it
drops every queued task of the other worker, whose submission then waits forever for a
validation that was never delivered. Tests empty only their own keys, with ``clear_cache``;
tests/architecture checks that no test calls ``cache.clear()``.
"""

from __future__ import annotations


def clear_cache() -> None:
    """Delete this run's cache keys only (its KEY_PREFIX, config/settings/test.py); the
    in-memory cache of a run without Redis is simply cleared."""
    from django.core.cache import cache

    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):
        cache.clear()  # locmem: this process's own memory, nobody else's
        return
    client = backend.get_client(None, write=True)
    pattern = f"{cache.key_prefix}:*" if cache.key_prefix else None
    if pattern is None:
        raise RuntimeError("the test cache has no KEY_PREFIX: clearing it would flush the broker")
    batch = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)
