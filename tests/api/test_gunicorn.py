"""The hostile inputs against a real server: gunicorn (2 workers) on 127.0.0.1 as a subprocess,
with its own SQLite database, spoken to over real sockets with http.client.

It answers a 20 MB body with a JSON 413, a body nested 100,000 deep with a JSON 400, a POST
without the trailing slash with a JSON 404 naming the URL, and locks a username out after 5
failures although every attempt forges another X-Forwarded-For (and whichever worker answers)."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
USERNAME, PASSWORD = "usuario.gunicorn", "senha-gunicorn-123"
MB20 = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    var = tmp_path_factory.mktemp("gunicorn")
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "PRUDENCIAL_VAR_DIR": str(var),
        "DJANGO_TRUSTED_PROXIES": "",
    }

    def manage(*args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_DIR,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    manage("migrate", "--noinput")
    manage(
        "shell",
        "-c",
        "from prudencial.models import User; "
        f"User.objects.create_user(username={USERNAME!r}, password={PASSWORD!r})",
    )
    log = var / "gunicorn.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--timeout",
                "60",
                "config.wsgi:application",
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text())
            port = int(found.group(1)) if found else time.sleep(0.2)
        while "Booting worker" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request(port, method, path, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post_json(port, path, body: bytes, **headers: str):
    return request(port, "POST", path, body, {"Content-Type": "application/json", **headers})


def error(body: bytes) -> dict:
    return json.loads(body)["error"]


def test_a_20_mb_body_is_a_json_413(server):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=60)
    try:
        connection.putrequest("POST", "/api/v1/auth/token/")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(MB20))
        connection.endheaders()
        chunk = b" " * 65536
        sent = 0
        try:
            while sent < MB20:
                connection.send(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered without reading the rest: what we want
        response = connection.getresponse()
        status, content_type, body = (
            response.status,
            response.getheader("Content-Type"),
            response.read(),
        )
    finally:
        connection.close()
    assert status == 413
    assert content_type == "application/json"
    assert error(body)["code"] == "request_too_large"
    assert "o limite é 2621440 bytes" in error(body)["message"]


def test_a_body_nested_100000_deep_is_a_json_400(server):
    status, headers, body = post_json(
        server, "/api/v1/auth/token/", b"[" * 100_000 + b"]" * 100_000
    )
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert error(body)["code"] == "json_too_deep"


def test_a_duplicate_key_is_a_json_400(server):
    status, _, body = post_json(
        server, "/api/v1/auth/token/", b'{"username": "a", "username": "b", "password": "c"}'
    )
    assert status == 400 and error(body)["code"] == "json_duplicate_key"


def test_a_post_without_the_trailing_slash_is_a_json_404_naming_the_url(server):
    status, headers, body = post_json(server, "/api/v1/auth/token", b'{"username": "a"}')
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert error(body)["code"] == "missing_trailing_slash"
    assert "/api/v1/auth/token/" in error(body)["message"]


def test_forged_forwarded_for_does_not_dodge_the_lockout(server):
    def attempt(password: str, forged: str):
        body = json.dumps({"username": USERNAME, "password": password}).encode()
        return post_json(server, "/api/v1/auth/token/", body, **{"X-Forwarded-For": forged})

    statuses = [attempt("errada", f"203.0.113.{i}")[0] for i in range(8)]
    assert statuses == [400] * 4 + [429] * 4
    status, headers, body = attempt(PASSWORD, "198.51.100.1")
    assert status == 429
    assert headers["Retry-After"] == "900"
    assert error(body)["code"] == "locked_out"
    assert "token" not in json.loads(body)
