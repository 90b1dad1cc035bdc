"""The public registry of agents (CNPJ → acronym) staged by the host with op ``registry``.

The counterparty rule "``acronym`` is the registry's acronym when the CNPJ is a registered agent,
else null" (docs/formats.md) needs the registry inside the enclave. It is public data, so the host
simply sends it; what the enclave must make sure of is that a validation is judged against the
registry the host says it used: each staged registry is keyed by its canonical digest
(``protocol.registry_sha256``, which the host computes with the same code), and a validation names
that digest (``registry_sha256``). The signed answer is bound to the args, hence to the digest.

Bounded: at most ``MAX_REGISTRY_ENTRIES`` entries of a 14-character CNPJ and an acronym of at most
``MAX_ACRONYM_CHARS`` characters, one entry per CNPJ; at most ``MAX_STAGED`` registries held (the
least recently used is dropped, and a validation naming it is answered ``unknown_registry``, on
which the gateway stages it again). Staging is idempotent: the same entries give the same digest
and the same state, so the op stays out of the replay cache (see replay.py).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from enclave_bridge.wire.protocol import (
    E_BAD_REQUEST,
    E_UNKNOWN_REGISTRY,
    MAX_REGISTRY_ENTRIES,
    ProtocolError,
    registry_sha256,
)
from prudencial.domain.identifiers import CNPJ_PATTERN

MAX_ACRONYM_CHARS = 40
MAX_STAGED = 4
_CNPJ = re.compile(CNPJ_PATTERN)  # the stored form, as the schemas and the host have it
_DIGEST = re.compile(r"[0-9a-f]{64}")


def parse_entries(raw: Any, name: str = "entries") -> dict[str, str]:
    """The map CNPJ → acronym of a registry, staged (op ``registry``) or inline (a validation's
    ``expected.registry``, validation.py): the one parser of both; any fault is a
    ``bad_request`` naming the rule (and the entry's index), never a value."""
    if not isinstance(raw, list):
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be a list of {{cnpj, acronym}}")
    if len(raw) > MAX_REGISTRY_ENTRIES:
        raise ProtocolError(
            E_BAD_REQUEST, f"a registry holds at most {MAX_REGISTRY_ENTRIES} entries"
        )
    mapping: dict[str, str] = {}
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or set(entry) != {"cnpj", "acronym"}:
            raise ProtocolError(
                E_BAD_REQUEST, f"{name}[{i}] must be a map of exactly cnpj and acronym"
            )
        cnpj, acronym = entry["cnpj"], entry["acronym"]
        if not isinstance(cnpj, str) or not _CNPJ.fullmatch(cnpj):
            raise ProtocolError(
                E_BAD_REQUEST,
                f"{name}[{i}].cnpj must be 14 characters (12 digits or upper-case letters, "
                "2 check digits)",
            )
        if (
            not isinstance(acronym, str)
            or not 0 < len(acronym) <= MAX_ACRONYM_CHARS
            or not acronym.isprintable()
            or acronym != acronym.strip()
        ):
            raise ProtocolError(
                E_BAD_REQUEST,
                f"{name}[{i}].acronym must be 1 to {MAX_ACRONYM_CHARS} printable characters",
            )
        if cnpj in mapping:
            raise ProtocolError(E_BAD_REQUEST, f"{name}[{i}].cnpj repeats an earlier entry")
        mapping[cnpj] = acronym
    return mapping


def check_digest(value: Any, name: str = "registry_sha256") -> str:
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be 64 lower-case hex characters")
    return value


class RegistryStore:
    """Staged registries by digest, least recently used dropped beyond ``max_staged``."""

    def __init__(self, max_staged: int = MAX_STAGED) -> None:
        self.max_staged = max_staged
        self._lock = threading.Lock()
        self._staged: OrderedDict[str, Mapping[str, str]] = OrderedDict()

    def stage(self, raw: Any) -> tuple[str, int]:
        """Parse and keep a registry; return its digest and entry count."""
        mapping = parse_entries(raw)
        digest = registry_sha256(
            {"cnpj": cnpj, "acronym": acronym} for cnpj, acronym in mapping.items()
        )
        with self._lock:
            if digest in self._staged:
                self._staged.move_to_end(digest)
            else:
                self._staged[digest] = MappingProxyType(mapping)
                while len(self._staged) > self.max_staged:
                    self._staged.popitem(last=False)
        return digest, len(mapping)

    def get(self, digest: Any) -> Mapping[str, str] | None:
        """The staged map named by ``digest`` (None when the args name none); an unknown digest
        is ``unknown_registry``: the host stages it again and retries."""
        if digest is None:
            return None
        digest = check_digest(digest)
        with self._lock:
            found = self._staged.get(digest)
            if found is not None:
                self._staged.move_to_end(digest)
        if found is None:
            raise ProtocolError(
                E_UNKNOWN_REGISTRY,
                "registry_sha256 names no registry staged in this enclave (stage it with op "
                "registry and retry)",
            )
        return found

    def __len__(self) -> int:
        return len(self._staged)
