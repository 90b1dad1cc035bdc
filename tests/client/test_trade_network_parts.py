"""The staff client sends a trade network too large for one envelope as the parts of one set
(issue 11: 200,000 contracts): parts of at most --part-size contracts, one generated set id,
each part its own envelope, POST and Idempotency-Key (a fake transport stands for the API)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from prudencial.client import cli
from prudencial.domain import formats

WEEK = "202303001"


def _cnpjs():
    from tests.factories import make_cnpj

    return make_cnpj(901), make_cnpj(902)


def _file(tmp_path, n: int):
    seller, buyer = _cnpjs()
    doc = {
        "schema": formats.CONTRACTS_SCHEMA_ID,
        "week": WEEK,
        "contracts": [
            {
                "seller_cnpj": seller if i % 2 else buyer,
                "buyer_cnpj": buyer if i % 2 else seller,
                "bucket": i % 7,
                "volume_mwm": 1.0 + i,
                "price_brl_mwh": 150.0,
            }
            for i in range(n)
        ],
    }
    path = tmp_path / "rede.json"
    path.write_text(json.dumps(doc))
    return path, doc


class FakeApi:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    def request(self, method: str, path: str, *, json_body=None, headers=None):
        assert method == "POST" and path == f"weeks/{WEEK}/trade-network/"
        self.posts.append({"body": json_body, "headers": dict(headers or {})})
        from prudencial.client import envelope

        answer = {
            "id": len(self.posts),
            "week": WEEK,
            "receipt": envelope.receipt(json_body["jwe"]),
            "status": "received",
        }

        class Response:
            def json(self):
                return answer

        return Response()

    def get_json(self, path: str):
        return [
            {"id": i + 1, "status": "accepted", "counts": {"contracts": 1}, "errors": []}
            for i in range(len(self.posts))
        ]


class FakeClient:
    """Encrypts as JSON text (the fake 'envelope' is the document itself)."""

    def __init__(self) -> None:
        self.api = FakeApi()
        self.documents: list[dict[str, Any]] = []

    def encrypt(self, payload):
        self.documents.append(json.loads(json.dumps(payload)))
        return f"jwe-{len(self.documents)}-{len(payload['contracts'])}"

    def _post_with_retries(self, send):
        return send()


@pytest.fixture
def fake(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(cli, "_client", lambda args: client)
    return client


def test_a_file_of_70000_contracts_is_sent_as_three_parts_of_one_set(tmp_path, fake):
    path, doc = _file(tmp_path, 70_000)
    out = io.StringIO()
    code = cli.main(["trade-network", "send", "--week", WEEK, str(path)], stdout=out)
    assert code == 0, out.getvalue()
    assert [len(d["contracts"]) for d in fake.documents] == [30_000, 30_000, 10_000]
    sets = {d["part"]["set"] for d in fake.documents}
    assert len(sets) == 1
    [set_id] = sets
    assert [d["part"] for d in fake.documents] == [
        {"set": set_id, "index": i, "count": 3} for i in (1, 2, 3)
    ]
    # Together the parts are the file, in its order.
    assert sum((d["contracts"] for d in fake.documents), []) == doc["contracts"]
    assert all(d["week"] == WEEK and d["schema"] == doc["schema"] for d in fake.documents)
    bodies = [p["body"] for p in fake.api.posts]
    assert [(b["part_set"], b["part_index"], b["part_count"]) for b in bodies] == [
        (set_id, i, 3) for i in (1, 2, 3)
    ]
    keys = [p["headers"]["Idempotency-Key"] for p in fake.api.posts]
    assert len(set(keys)) == 3
    text = out.getvalue()
    assert set_id in text
    from prudencial.client import envelope

    for body in bodies:
        assert envelope.receipt(body["jwe"]) in text


def test_a_small_file_is_one_whole_envelope_and_part_size_is_an_option(tmp_path, fake):
    path, _doc = _file(tmp_path, 50)
    out = io.StringIO()
    assert cli.main(["trade-network", "send", "--week", WEEK, str(path)], stdout=out) == 0
    [document] = fake.documents
    assert "part" not in document
    assert "part_set" not in fake.api.posts[0]["body"]
    fake.documents.clear()
    fake.api.posts.clear()
    out = io.StringIO()
    argv = ["trade-network", "send", "--week", WEEK, "--part-size", "20", "--no-wait", str(path)]
    assert cli.main(argv, stdout=out) == 0
    assert [len(d["contracts"]) for d in fake.documents] == [20, 20, 10]
    too_many = ["trade-network", "send", "--week", WEEK, "--part-size", "1", str(path)]
    err = io.StringIO()
    assert cli.main(too_many, stdout=io.StringIO(), stderr=err) != 0
    assert "32" in err.getvalue()
    assert len(fake.api.posts) == 3  # nothing more was sent
