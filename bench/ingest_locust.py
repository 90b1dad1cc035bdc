"""Locust user of bench/ingest_bench.py: POSTs pre-encrypted envelopes as fast as the target
rate allows (the encryption is the agent's cost, done before the run). Not run by itself:

    INGEST_TOKEN=... INGEST_ENVELOPES=envelopes.json INGEST_RATE_PER_USER=3 \
        locust -f bench/ingest_locust.py --headless -u 100 -r 50 -t 60s --host http://127.0.0.1:8000
"""

from __future__ import annotations

import itertools
import json
import os
import threading

from locust import FastHttpUser, constant_throughput, task

with open(os.environ["INGEST_ENVELOPES"]) as _file:
    _DATA = json.load(_file)
_WEEK = _DATA["week"]
_ITEMS = _DATA["items"]  # [[agent_id, kind, jwe], ...]
_NEXT = itertools.count()
_LOCK = threading.Lock()


def _item():
    with _LOCK:
        n = next(_NEXT)
    return _ITEMS[n % len(_ITEMS)]


class AgentSoftware(FastHttpUser):
    wait_time = constant_throughput(float(os.environ.get("INGEST_RATE_PER_USER", "3")))

    def on_start(self):
        self.headers = {
            "Authorization": f"Token {os.environ['INGEST_TOKEN']}",
            "Content-Type": "application/json",
        }

    @task
    def submit(self):
        agent_id, kind, jwe = _item()
        with self.client.post(
            f"/api/v1/weeks/{_WEEK}/agents/{agent_id}/{kind}/",
            data=json.dumps({"jwe": jwe}),
            headers=self.headers,
            name=f"POST weeks/{{code}}/agents/{{id}}/{kind}/",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"status {response.status_code}")
