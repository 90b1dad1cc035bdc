"""HTTP calls to the platform's API (``/api/v1/``), one method per endpoint, nothing else.

Every answer that is not 2xx raises ``ApiError`` with the platform's code, message (in the
language asked for with ``Accept-Language``), fields and row errors. Connection failures raise
``ConnectionFailed``. The session is a ``requests.Session``: tests mount a transport adapter on
it, agents' developers may pass their own (proxies, client certificates).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from .errors import ApiError, ConnectionFailed

API_PREFIX = "/api/v1"
UPLOAD_BLOCK = 64 * 1024


def api_root(base_url: str) -> str:
    """``https://host`` or ``https://host/api/v1`` → ``https://host/api/v1``."""
    base = base_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else base + API_PREFIX


def _segment(value: Any) -> str:
    return quote(str(value), safe="")


class _ProgressBody(io.BytesIO):
    """A request body that reports how many bytes have been read (sent) so far; requests sends
    it with its Content-Length (the API refuses chunked bodies)."""

    def __init__(self, data: bytes, progress: Callable[[int], None]) -> None:
        super().__init__(data)
        self._progress = progress

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(UPLOAD_BLOCK if size is None or size < 0 else min(size, UPLOAD_BLOCK))
        if chunk:
            self._progress(len(chunk))
        return chunk


def error_from_response(response: requests.Response) -> ApiError:
    """The API's error shapes — ``{"error": {code, message, fields[, errors]}}``, DRF's
    ``{"detail": ...}``, ``{"errors": [{field, row, rule}]}`` — as one ApiError."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code, message, fields, errors = "http_error", (response.reason or ""), {}, []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = str(err.get("message") or message)
            if isinstance(err.get("fields"), dict):
                fields = {
                    str(k): [str(m) for m in (v if isinstance(v, list) else [v])]
                    for k, v in err["fields"].items()
                }
            if isinstance(err.get("errors"), list):
                errors = [e for e in err["errors"] if isinstance(e, dict)]
        if isinstance(body.get("detail"), str):
            message = body["detail"]
            code = str(body.get("code") or code)
        if isinstance(body.get("errors"), list):
            errors = [e for e in body["errors"] if isinstance(e, dict)]
    retry = response.headers.get("Retry-After")
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
    return ApiError(
        response.status_code,
        code,
        message,
        fields=fields,
        errors=errors,
        retry_after=retry_after,
    )


class Api:
    """The platform's endpoints. ``token`` is sent as ``Authorization: Token <key>``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 60.0,
        verify_tls: bool | str = True,
        language: str | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required")
        self.root = api_root(base_url)
        self.session = session or requests.Session()
        self.timeout = timeout
        self.session.verify = verify_tls
        self.token = token
        if language:
            self.session.headers["Accept-Language"] = language
            self.session.cookies.set("django_language", language.lower())

    # --- plumbing ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        progress: Callable[[int], None] | None = None,
        absolute: bool = False,
    ) -> requests.Response:
        send_headers = dict(headers or {})
        if auth and self.token:
            send_headers["Authorization"] = f"Token {self.token}"
        data = None
        if json_body is not None:
            send_headers["Content-Type"] = "application/json"
            raw = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            data = _ProgressBody(raw, progress) if progress else raw
        try:
            response = self.session.request(
                method,
                path if absolute else self.url(path),
                data=data,
                params=params,
                headers=send_headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ConnectionFailed("unreachable", url=self.root, reason=type(exc).__name__) from exc
        if not 200 <= response.status_code < 300:
            raise error_from_response(response)
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def follow(self, url: str) -> Any:
        """GET a URL the platform returned (absolute, or a path from the host's root)."""
        if url.startswith(("http://", "https://")):
            # The token goes only to the platform it was issued by: same scheme, host and port.
            if urlsplit(url)[:2] != urlsplit(self.root)[:2]:
                raise ValueError("the platform returned a URL on another origin; not followed")
            return self.request("GET", url, absolute=True).json()
        if url.startswith(API_PREFIX):
            url = url[len(API_PREFIX) :]
        return self.get_json(url)

    # --- endpoints ------------------------------------------------------------------------------

    def obtain_token(self, username: str, password: str) -> str:
        """POST auth/token/ → the API token."""
        body = self.request(
            "POST",
            "auth/token/",
            json_body={"username": username, "password": password},
            auth=False,
        ).json()
        return body["token"]

    def attestation(self, nonce_b64: str) -> dict[str, Any]:
        """GET enclave/attestation/?nonce= (POST on a platform that has only that one)."""
        try:
            return self.get_json("enclave/attestation/", params={"nonce": nonce_b64})
        except ApiError as exc:
            if exc.status != 405:
                raise
        return self.request("POST", "enclave/attestation/", json_body={"nonce": nonce_b64}).json()

    def agents(self) -> list[dict[str, Any]]:
        """Every agent the user may see (all pages)."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.get_json("agents/", params={"limit": 500, "offset": offset})
            results = page["results"] if isinstance(page, dict) else page
            out.extend(results)
            if not isinstance(page, dict) or not page.get("next") or not results:
                return out
            offset += len(results)

    def weeks(self) -> list[dict[str, Any]]:
        page = self.get_json("weeks/", params={"limit": 500})
        return page["results"] if isinstance(page, dict) else page

    def week(self, code: str) -> dict[str, Any]:
        """GET weeks/{code}/: the week, its deadline and its published parameters."""
        return self.get_json(f"weeks/{_segment(code)}/")

    def schema(self, kind: str, week: str | None = None) -> dict[str, Any]:
        """The JSON Schema (``week``: with that week's energy types)."""
        params = {"week": week} if week else None
        return self.get_json(f"schemas/{_segment(kind)}.json", params=params)

    def template(self, code: str, kind: str) -> bytes:
        return self.request(
            "GET", f"weeks/{_segment(code)}/templates/{_segment(kind)}.xlsx"
        ).content

    def submit(
        self,
        code: str,
        agent_id: int | str,
        kind: str,
        jwe: str,
        *,
        idempotency_key: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """POST weeks/{code}/agents/{id}/{kind}/ {"jwe"} → 202 {id, receipt, status, version, url}."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request(
            "POST",
            f"weeks/{_segment(code)}/agents/{_segment(agent_id)}/{_segment(kind)}/",
            json_body={"jwe": jwe},
            headers=headers,
            progress=progress,
        ).json()

    def submit_batch(
        self,
        code: str,
        jwe: str,
        agent_ids: list[int],
        *,
        idempotency_key: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """POST weeks/{code}/batch/ {"jwe", "agents"} → 202 {id, receipt, status, url}."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request(
            "POST",
            f"weeks/{_segment(code)}/batch/",
            json_body={"jwe": jwe, "agents": list(agent_ids)},
            headers=headers,
            progress=progress,
        ).json()

    def submissions(self, code: str, agent_id: int | str) -> list[dict[str, Any]]:
        body = self.get_json(f"weeks/{_segment(code)}/agents/{_segment(agent_id)}/submissions/")
        return body["results"] if isinstance(body, dict) and "results" in body else body

    def batch(self, batch_id: int | str) -> dict[str, Any]:
        return self.get_json(f"batches/{_segment(batch_id)}/")

    def progress(self, code: str) -> dict[str, Any]:
        return self.get_json(f"weeks/{_segment(code)}/progress/")

    def lookup(self, query: str) -> list[dict[str, Any]]:
        return self.get_json("registry/lookup/", params={"q": query})

    # --- the leverage result (prudencial/closing/api.py) ----------------------------------------

    def _leverage_path(self, code: str, agent_id: int | str, tail: str) -> str:
        return f"weeks/{_segment(code)}/agents/{_segment(agent_id)}/{tail}"

    def leverage(self, code: str, agent_id: int | str) -> dict[str, Any]:
        """GET …/leverage/: status, closing, decision, signature, figures, breakdown_jwe."""
        return self.get_json(self._leverage_path(code, agent_id, "leverage/"))

    def leverage_send(self, code: str, agent_id: int | str) -> dict[str, Any]:
        """POST …/leverage/send/: final; the platform answers the same decision when repeated."""
        return self.request("POST", self._leverage_path(code, agent_id, "leverage/send/")).json()

    def leverage_cancel(self, code: str, agent_id: int | str, reason: str) -> dict[str, Any]:
        """POST …/leverage/cancel/ {"reason"}."""
        return self.request(
            "POST",
            self._leverage_path(code, agent_id, "leverage/cancel/"),
            json_body={"reason": reason},
        ).json()

    def network_risk(self, code: str, agent_id: int | str) -> dict[str, Any]:
        """GET …/network-risk/: the agent's network indicators and the week's communities."""
        return self.get_json(self._leverage_path(code, agent_id, "network-risk/"))

    def leverage_history(self, agent_id: int | str) -> list[dict[str, Any]]:
        """GET agents/{id}/leverage/history/: FA week by week, superseded closings flagged."""
        body = self.get_json(f"agents/{_segment(agent_id)}/leverage/history/")
        return body["results"] if isinstance(body, dict) and "results" in body else body
