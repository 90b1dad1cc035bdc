"""What the host client raises: the enclave's own refusals and failures to reach it."""

from __future__ import annotations


class EnclaveError(Exception):
    """The enclave answered with an error frame (code + message, never payload values).

    ``signed`` is True when the error came signed by the registered key (an unlocked enclave
    signs its errors); unsigned errors come from a locked enclave or from the framing layer.
    """

    def __init__(self, code: str, message: str, *, signed: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.signed = signed


class EnclaveConnectionError(Exception):
    """The enclave could not be reached or the connection broke, after all retries."""
