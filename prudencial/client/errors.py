"""What the agent client raises. Every error has a ``code`` for programs and a message for
people (pt-BR or English, ``prudencial.client.i18n``); none quotes a payload value."""

from __future__ import annotations

from typing import Any

from .i18n import tr


class ClientError(Exception):
    """Base class: ``code`` and the parameters of its message."""

    kind = "client"

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(code)

    @property
    def message(self) -> str:
        return tr(f"{self.kind}.{self.code}", **self.params)

    def __str__(self) -> str:
        return self.message


class ConfigError(ClientError):
    """client.toml or the token file is missing, unreadable or not what it must be."""

    kind = "config"


class AttestationRefused(ClientError):
    """The enclave's attestation did not pass a check: nothing may be encrypted to its key."""

    kind = "attestation"


class PayloadError(ClientError):
    """A local file cannot be sent as it is (unreadable, too large, invalid before sending).

    ``errors`` lists the refusals by field and row, as the enclave would give them."""

    kind = "payload"

    def __init__(self, code: str, errors: list[dict[str, Any]] | None = None, **params: Any):
        super().__init__(code, **params)
        self.errors = list(errors or [])


class ApiError(ClientError):
    """The platform answered with an error: HTTP ``status``, the API's ``api_code`` and
    ``api_message`` (already in the requested language), ``fields`` ({field: [rules]}) and
    ``errors`` ([{field, row, rule}]) when the platform gives them."""

    kind = "api"

    def __init__(
        self,
        status: int,
        api_code: str,
        api_message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__("http", status=status, api_code=api_code, api_message=api_message)
        self.status = status
        self.api_code = api_code
        self.api_message = api_message
        self.fields = dict(fields or {})
        self.errors = list(errors or [])
        self.retry_after = retry_after


class ReplyKeyError(ClientError):
    """The reply key (the breakdown's key) is missing, unreadable, or does not open a breakdown:
    the message names the file, never the key."""

    kind = "reply"


class ConnectionFailed(ClientError):
    """The platform could not be reached."""

    kind = "connection"
