"""``Client``: the library behind the command line, one method per command.

    from prudencial.client import Client

    client = Client.from_config()                  # ~/.config/prudencial/client.toml
    client.login("joao.silva", "…")                # token stored 0600
    att = client.attestation()                     # fetched with a fresh nonce and VERIFIED
    sub = client.submit("portfolio", week="202303001", agent="CM47", path="portfolio.json")
    final = client.wait(sub)                       # received → accepted | rejected
    for e in final["errors"]: print(e["field"], e["row"], e["rule"])

Nothing is encrypted to a key whose attestation did not pass the pinned policy, and the
plaintext never leaves the process except inside the JWE.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests

from prudencial.domain import formats, sheets
from prudencial.domain.identifiers import normalize_cnpj

from . import attestation as attestation_mod
from . import envelope as envelope_mod
from . import local, preview
from . import reply as reply_mod
from .api import Api
from .config import ClientConfig, TrustPolicy, forget_token, load_config, load_token, save_token
from .errors import ApiError, ConfigError, ConnectionFailed, PayloadError, ReplyKeyError
from .i18n import http_language

FINAL_STATUSES = frozenset({"accepted", "rejected", "error", "unverified", "failed"})
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Submitted:
    """What the platform answered to a POST (202), with what the client sent."""

    answer: dict[str, Any]
    kind: str  # "portfolio", "counterparties" or "batch"
    week: str
    agent_ids: tuple[int, ...]
    receipt: str  # SHA-256 of the JWE we sent
    idempotency_key: str
    kid: str
    reply_kid: str | None = None  # thumbprint of the prd_reply key the envelope carried

    @property
    def id(self) -> Any:
        return self.answer.get("id")

    @property
    def status(self) -> str:
        return str(self.answer.get("status", ""))

    @property
    def receipt_ok(self) -> bool:
        """The platform's receipt is the SHA-256 of exactly what was sent (an answer without
        one is not a receipt)."""
        return self.answer.get("receipt") == self.receipt


def is_final(status: Any) -> bool:
    return str(status) in FINAL_STATUSES


class Client:
    """The agent-side client: log in, verify the enclave, encrypt, submit, follow, preview."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        trust: TrustPolicy | None = None,
        session: requests.Session | None = None,
        language: str | None = None,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        config = config or load_config()
        if base_url:
            config = replace(config, base_url=base_url.rstrip("/"))
        if trust is not None:
            config = replace(config, trust=trust)
        if not config.base_url:
            raise ConfigError("no_base_url")
        self.config = config
        self.retries = retries
        self.backoff = backoff
        self.api = Api(
            config.base_url,
            token=token if token is not None else load_token(config),
            session=session,
            timeout=config.timeout,
            verify_tls=config.verify_tls,
            language=language or http_language(),
        )
        self._attestation: attestation_mod.VerifiedAttestation | None = None
        self._agents: list[dict[str, Any]] | None = None
        self._weeks: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_config(cls, path: str | Path | None = None, **kwargs: Any) -> Client:
        return cls(load_config(path), **kwargs)

    # --- session --------------------------------------------------------------------------------

    def login(self, username: str, password: str, *, store: bool = True) -> str:
        """Obtain a token (POST /auth/token/) and keep it (token.json, mode 0600)."""
        token = self.api.obtain_token(username, password)
        self.api.token = token
        if store:
            save_token(self.config, token, username)
        return token

    def logout(self) -> bool:
        self.api.token = None
        return forget_token(self.config)

    def _require_token(self) -> None:
        if not self.api.token:
            raise ConfigError("not_logged_in")

    # --- attestation and encryption -------------------------------------------------------------

    def attestation(
        self, *, nonce: bytes | None = None, now: Any = None
    ) -> attestation_mod.VerifiedAttestation:
        """A fresh attestation (own nonce), verified against the pinned policy; kept for the
        encryptions of this session while it is younger than the policy's max_age."""
        self._require_token()
        verified = attestation_mod.fetch_verified(
            self.api, self.config.require_trust(), nonce=nonce, now=now
        )
        self._attestation = verified
        return verified

    def current_attestation(self) -> attestation_mod.VerifiedAttestation:
        import datetime as dt

        policy = self.config.require_trust()
        att = self._attestation
        if att is None or dt.datetime.now(dt.UTC) - att.verified_at > policy.max_age:
            att = self.attestation()
        return att

    def encrypt(
        self,
        what: envelope_mod.LocalFile | Mapping[str, Any] | bytes | str | Path,
        *,
        attestation: attestation_mod.VerifiedAttestation | None = None,
    ) -> str:
        """The JWE of a file, a payload dict or raw bytes, to the verified current key."""
        file = _as_file(what)
        return envelope_mod.encrypt_file(file, attestation or self.current_attestation())

    # --- the reply key --------------------------------------------------------------------------

    def reply_key_path(self) -> Path:
        """Where the reply key lives: beside client.toml (``reply-key.json``)."""
        return reply_mod.default_path(self.config)

    def reply_public(self, path: Path | None = None) -> dict[str, str] | None:
        """The public reply JWK for ``prd_reply`` (kty, crv, x, y), None when there is no key."""
        key = reply_mod.load(path or self.reply_key_path())
        return None if key is None else reply_mod.public_jwk(key)

    # --- registry and weeks ---------------------------------------------------------------------

    def agents(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        self._require_token()
        if self._agents is None or refresh:
            self._agents = self.api.agents()
        return self._agents

    def resolve_agent(self, ref: int | str) -> dict[str, Any]:
        """An agent the user may see, by id, acronym or CNPJ (mask allowed)."""
        text = str(ref).strip()
        agents = self.agents()
        for agent in agents:
            if text.isdigit() and str(agent.get("id")) == text:
                return agent
        for agent in agents:
            if str(agent.get("acronym", "")).upper() == text.upper():
                return agent
        wanted = normalize_cnpj(text)
        for agent in agents:
            if wanted and normalize_cnpj(agent.get("cnpj", "")) == wanted:
                return agent
        raise PayloadError("agent_not_found", agent=text)

    def week(self, code: str) -> dict[str, Any]:
        self._require_token()
        if code not in self._weeks:
            self._weeks[code] = self.api.week(code)
        return self._weeks[code]

    def week_parameters(self, code: str) -> dict[str, Any]:
        """The week's published parameters as the engine payload the enclave computes with."""
        return preview.engine_parameters(self.week(code))

    def _week_context(self, code: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """Bucket labels and energy types of a week (None labels: no parameters yet)."""
        try:
            params = self.week_parameters(code)
        except PayloadError:
            return None, formats.DEFAULT_ENERGY_TYPES
        return sheets.labels_of(params), tuple(
            params.get("energy_types") or formats.DEFAULT_ENERGY_TYPES
        )

    # --- local checks ---------------------------------------------------------------------------

    def check_file(
        self, kind: str, week: str, agent: Mapping[str, Any], file: envelope_mod.LocalFile
    ) -> list[dict[str, Any]]:
        """The errors the enclave would give this file for this agent and week (empty: none
        found locally). The registry check of counterparty acronyms is left to the enclave."""
        labels, types = self._week_context(week)
        who = {"acronym": str(agent["acronym"]), "cnpj": normalize_cnpj(agent.get("cnpj", ""))}
        found, errors = local.payloads_of(
            kind,
            file,
            week=week,
            bucket_labels=labels,
            energy_types=types,
            agents={who["acronym"]: who["cnpj"]},
        )
        if errors:
            return errors
        if file.format == "xlsx" and labels is None:
            return []
        if not found:
            raise PayloadError("not_in_file", agent=who["acronym"])
        others = sorted({local.acronym_of(p) or "?" for p, _ in found} - {who["acronym"]})
        if others:
            raise PayloadError("other_agents", acronyms=", ".join(others))
        payload, rows = found[0]
        return formats.validate(
            kind, payload, agent=who, week=week, energy_types=types, registry=None, rows=rows
        )

    # --- submissions ----------------------------------------------------------------------------

    def _post_with_retries(self, send: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Retry a POST (same Idempotency-Key, so no second version) on a dropped connection,
        502/503/504, or 429 after its Retry-After."""
        attempt = 0
        while True:
            try:
                return send()
            except ConnectionFailed:
                if attempt >= self.retries:
                    raise
            except ApiError as exc:
                if exc.status == 429 and attempt < self.retries:
                    time.sleep(min(exc.retry_after or self.backoff, 30.0))
                    attempt += 1
                    continue
                if exc.status not in RETRY_STATUSES or attempt >= self.retries:
                    raise
            time.sleep(self.backoff * 2**attempt)
            attempt += 1

    def submit(
        self,
        kind: str,
        *,
        week: str,
        agent: int | str | Mapping[str, Any],
        path: str | Path | None = None,
        payload: Mapping[str, Any] | None = None,
        file: envelope_mod.LocalFile | None = None,
        check: bool = True,
        idempotency_key: str | None = None,
        progress: Callable[[int], None] | None = None,
        reply: Mapping[str, str] | bool = True,
    ) -> Submitted:
        """Encrypt one agent's portfolio or counterparties (JSON or XLSX) and POST it.

        With ``check`` the file is first validated locally (PayloadError with the errors by
        field and row: nothing is encrypted or sent). A portfolio's envelope carries the reply
        key (``prd_reply``) so the enclave seals its breakdown to it: ``reply`` True uses the
        stored key when there is one, False sends none, a mapping is the public JWK to use."""
        if kind not in formats.KINDS:
            raise ValueError(f"kind must be one of {', '.join(formats.KINDS)}")
        self._require_token()
        file = file or (envelope_mod.read_file(path) if path else _as_file(payload))
        who = agent if isinstance(agent, Mapping) else self.resolve_agent(agent)
        if check:
            errors = self.check_file(kind, week, who, file)
            if errors:
                raise PayloadError("invalid", errors=errors, count=len(errors))
        public: Mapping[str, str] | None = None
        if kind == "portfolio":  # only a portfolio's leverage has a breakdown
            public = self.reply_public() if reply is True else (reply or None)
        att = self.current_attestation()
        jwe = envelope_mod.encrypt_file(file, att, reply=public)
        key = idempotency_key or str(uuid.uuid4())
        answer = self._post_with_retries(
            lambda: self.api.submit(
                week, who["id"], kind, jwe, idempotency_key=key, progress=progress
            )
        )
        return Submitted(
            answer,
            kind,
            week,
            (int(who["id"]),),
            envelope_mod.receipt(jwe),
            key,
            att.kid,
            None if public is None else reply_mod.thumbprint(public),
        )

    def batch_agents(self, week: str, file: envelope_mod.LocalFile) -> list[dict[str, Any]]:
        """The agents (API records) a batch file covers; PayloadError for an acronym the user
        may not submit for, or for file-level errors."""
        labels, _ = self._week_context(week)
        acronyms, errors = local.batch_agents(file, week=week, bucket_labels=labels)
        if errors:
            raise PayloadError("invalid", errors=errors, count=len(errors))
        if not acronyms:
            raise PayloadError("no_agents")
        by_acronym = {str(a.get("acronym", "")).upper(): a for a in self.agents()}
        missing = [a for a in acronyms if a.upper() not in by_acronym]
        if missing:
            raise PayloadError("unknown_agents", acronyms=", ".join(missing))
        return [by_acronym[a.upper()] for a in acronyms]

    def submit_batch(
        self,
        *,
        week: str,
        path: str | Path | None = None,
        file: envelope_mod.LocalFile | None = None,
        agents: list[int | str] | None = None,
        idempotency_key: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Submitted:
        """Encrypt a batch file (JSON ``prudencial/batch/v1`` or the XLSX template with many
        agents) and POST it with the agents it covers (read from the file unless given)."""
        self._require_token()
        file = file or envelope_mod.read_file(path, batch=True)
        if agents is None:
            records = self.batch_agents(week, file)
        else:
            records = [self.resolve_agent(a) for a in agents]
        ids = [int(a["id"]) for a in records]
        att = self.current_attestation()
        jwe = envelope_mod.encrypt_file(file, att)
        key = idempotency_key or str(uuid.uuid4())
        answer = self._post_with_retries(
            lambda: self.api.submit_batch(week, jwe, ids, idempotency_key=key, progress=progress)
        )
        return Submitted(answer, "batch", week, tuple(ids), envelope_mod.receipt(jwe), key, att.kid)

    # --- following ------------------------------------------------------------------------------

    def submission(self, week: str, agent: int | str, submission_id: Any) -> dict[str, Any]:
        """One submission's record, from the agent's list for the week."""
        agent_id = self.resolve_agent(agent)["id"] if not str(agent).isdigit() else agent
        for item in self.api.submissions(week, agent_id):
            if str(item.get("id")) == str(submission_id):
                return item
        raise ApiError(404, "not_found", str(submission_id))

    def refresh(self, submitted: Submitted) -> dict[str, Any]:
        """The current record of what ``submitted`` answered (a submission or a batch)."""
        if submitted.kind == "batch":
            return self.api.batch(submitted.id)
        url = submitted.answer.get("url")
        if url:
            found = self.api.follow(url)
            if isinstance(found, dict):
                return found
            for item in found or []:
                if str(item.get("id")) == str(submitted.id):
                    return item
        return self.submission(submitted.week, submitted.agent_ids[0], submitted.id)

    def wait(
        self,
        submitted: Submitted,
        *,
        timeout: float = 300.0,
        interval: float = 1.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the submission (or batch) is final; PayloadError("timeout") otherwise."""
        deadline = time.monotonic() + timeout
        delay = min(interval, 0.25)
        while True:
            record = self.refresh(submitted)
            if on_update:
                on_update(record)
            if is_final(record.get("status")):
                return record
            if time.monotonic() >= deadline:
                raise PayloadError("timeout", seconds=int(timeout))
            time.sleep(delay)
            delay = min(delay * 2, interval)

    def submissions(self, week: str, agent: int | str) -> list[dict[str, Any]]:
        self._require_token()
        return self.api.submissions(week, self.resolve_agent(agent)["id"])

    def batch(self, batch_id: int | str) -> dict[str, Any]:
        self._require_token()
        return self.api.batch(batch_id)

    def progress(self, week: str) -> dict[str, Any]:
        self._require_token()
        return self.api.progress(week)

    def lookup(self, query: str) -> list[dict[str, Any]]:
        self._require_token()
        return self.api.lookup(query)

    # --- the leverage result --------------------------------------------------------------------

    def _agent_id(self, agent: int | str) -> Any:
        self._require_token()
        return self.resolve_agent(agent)["id"]

    def leverage(self, week: str, agent: int | str) -> dict[str, Any]:
        """The agent's result in the week's current closing, as the platform shows it."""
        return self.api.leverage(week, self._agent_id(agent))

    def leverage_send(self, week: str, agent: int | str) -> dict[str, Any]:
        """Send the result to CCEE (final). Retried like a submission: the platform answers a
        repeated send with the same decision, so a retry cannot send twice."""
        agent_id = self._agent_id(agent)
        return self._post_with_retries(lambda: self.api.leverage_send(week, agent_id))

    def leverage_cancel(self, week: str, agent: int | str, reason: str) -> dict[str, Any]:
        return self.api.leverage_cancel(week, self._agent_id(agent), reason)

    def network_risk(self, week: str, agent: int | str) -> dict[str, Any]:
        return self.api.network_risk(week, self._agent_id(agent))

    def leverage_history(self, agent: int | str) -> list[dict[str, Any]]:
        return self.api.leverage_history(self._agent_id(agent))

    def open_breakdown(
        self, result: Mapping[str, Any], *, path: Path | None = None
    ) -> dict[str, Any] | None:
        """The result's breakdown decrypted here with the reply key (None: the result has none,
        its portfolio carried no prd_reply). ReplyKeyError names the key file when it is
        missing or does not open it, or when what it opens is another week's or agent's."""
        token = result.get("breakdown_jwe")
        if not token:
            return None
        path = path or self.reply_key_path()
        document = reply_mod.open_breakdown(token, reply_mod.load(path), path)
        got = (str(document.get("week")), str((document.get("agent") or {}).get("acronym")))
        expected = (str(result.get("week")), str(result.get("acronym")))
        if got != expected:
            # Each result's breakdown must be its own: a swapped one would show another
            # week's (or agent's) figures under this result's heading.
            raise ReplyKeyError(
                "not_this_result", path=str(path), got=" ".join(got), expected=" ".join(expected)
            )
        return document

    # --- downloads ------------------------------------------------------------------------------

    def template(self, week: str, kind: str) -> bytes:
        self._require_token()
        return self.api.template(week, kind)

    def schema(self, kind: str, week: str | None = None) -> dict[str, Any]:
        self._require_token()
        return self.api.schema(kind, week)

    # --- local preview --------------------------------------------------------------------------

    def fa_preview(
        self,
        week: str,
        path: str | Path | None = None,
        *,
        payload: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        agent: str | None = None,
    ) -> tuple[list[preview.Preview], list[dict[str, Any]]]:
        """The FA of each portfolio in the file under the week's published parameters, computed
        here; the plaintext is not sent (only the week's public parameters are read)."""
        file = envelope_mod.read_file(path) if path else _as_file(payload)
        params = dict(parameters) if parameters is not None else self.week_parameters(week)
        if str(params.get("week")) != week:
            raise PayloadError("bad_parameters", reason=f"parameters.week != {week}")
        return preview.preview_file(file, params, agent=agent)


def _as_file(what: Any) -> envelope_mod.LocalFile:
    if isinstance(what, envelope_mod.LocalFile):
        return what
    if isinstance(what, str | Path):
        return envelope_mod.read_file(what)
    if isinstance(what, bytes | bytearray):
        return envelope_mod.from_bytes(bytes(what))
    if isinstance(what, Mapping):
        return envelope_mod.from_payload(dict(what))
    raise TypeError("expected a path, bytes, a payload dict or a LocalFile")
