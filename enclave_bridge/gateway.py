"""The host's one way to the enclave: every Django module (views, tasks, services, commands)
talks to it through this gateway, never through an EnclaveClient of its own.

The gateway keeps the enclave unlocked. An enclave starts locked, and it restarts (a crash, a
new instance, a deployment) without telling the host; the host finds out when a call is answered
`locked`. Every call here then runs `ensure_unlocked()` — hand back the stored sealed key set
(KMS releases its data key only to the attested image), attest, verify the attestation with the
deployment's trust root and PCRs, register the keys — and retries the call once. So a
production enclave that restarts is unlocked by the next call, without a person.

    from enclave_bridge import gateway

    gateway.ensure_unlocked()                       # what `manage.py enclave_boot` runs
    gateway.attest(nonce)                           # verified Attestation
    sha = gateway.stage_registry(entries)           # the public registry, once per change
    gateway.validate_envelope(envelope=..., kind="portfolio", agent=..., week="202303001",
                              energy_types=[...], registry_sha256=sha, registry=loader)
    gateway.split_batch(envelope=..., week=..., agents=[...], energy_types=[...],
                        registry_sha256=sha, registry=loader)      # -> SignedBatch
    gateway.compute_week(parameters=..., items=[...], network={...})

One EnclaveGateway (one EnclaveClient, one connection pool) per process and address; it is
thread-safe, and unlocking is serialised so concurrent calls that meet a locked enclave unseal
it once. Another process unlocking the same enclave at the same moment is harmless (the loser
is answered `already_unlocked` and only registers the attestation).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from enclave_bridge.attestation.verify import AttestationError
from enclave_bridge.client import (
    AnswerVerificationError,
    Attestation,
    EnclaveClient,
    EnclaveConnectionError,
    EnclaveError,
    check_attestation,
    split_args,
    validate_args,
)
from enclave_bridge.models import EnclaveKey, SealedKeySet
from enclave_bridge.selectors import sealed_key_sets_for_boot
from enclave_bridge.services import (
    attested_keys_record,
    current_signing_key,
    expected_pcrs,
    parent_aws_credentials,
    sealed_key_set_promote,
    sealed_key_set_store,
    trusted_root,
)
from enclave_bridge.wire.protocol import (
    E_ALREADY_UNLOCKED,
    E_LOCKED,
    E_UNKNOWN_REGISTRY,
    SIGNING_CURVE,
    registry_sha256,
)

__all__ = [
    "AnswerVerificationError",
    "AttestationError",
    "BootReport",
    "EnclaveConnectionError",
    "EnclaveError",
    "EnclaveBoot",
    "EnclaveGateway",
    "EnclaveUnlockError",
    "RegistrySource",
    "SignedBatch",
    "SignedResults",
    "SignedVerdict",
    "attest",
    "compute_chunk",
    "compute_network",
    "compute_week",
    "enclave_addresses",
    "enclave_boot",
    "enclave_rotate",
    "ensure_unlocked",
    "gateway",
    "register_attestation",
    "reset_gateways",
    "split_batch",
    "stage_registry",
    "trusted_signing_key",
    "validate_envelope",
    "validate_trade_network",
    "verify_attestation_of",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class EnclaveUnlockError(Exception):
    """The enclave is locked and the host could not unlock it. Nothing was trusted, and no
    sealed key set was removed or replaced: fix the cause and the next call unlocks it."""


@dataclass(frozen=True)
class BootReport:
    """What ensure_unlocked found and did.

    ``state_before`` is the enclave's answer to `health` ("locked" or "unlocked"); ``action``
    is "none" (unlocked, keys already trusted), "registered" (unlocked by someone else: its
    attestation verified and its keys registered), "unsealed" (the current sealed set handed
    back), "unsealed_pending" (a first-boot set whose attestation had not verified yet) or
    "initialised" (first boot: new keys, their sealed set stored)."""

    address: str
    state_before: str
    action: str
    keys: list[EnclaveKey]

    @property
    def kid(self) -> str | None:
        return next((k.kid for k in self._current("enc")), None)

    @property
    def signing_kid(self) -> str | None:
        return next((k.kid for k in self._current("sig")), None)

    @property
    def pcr0(self) -> str:
        return next((k.pcrs.get("0", "") for k in self.keys), "")

    def _current(self, use: str) -> Iterable[EnclaveKey]:
        return (k for k in self.keys if k.use == use and k.status == EnclaveKey.Status.CURRENT)


@dataclass(frozen=True)
class SignedVerdict:
    """A verified verdict and what proves it: the enclave's JWS over it (with the request id and
    nonce it echoes), and the args that JWS is bound to (``args_sha256`` is the SHA-256 of their canonical CBOR, which is what was sent).
    Anyone holding the envelope, the args and the JWS can check it again with the signing key
    (``enclave_bridge.wire.protocol.verify_answer``)."""

    verdict: dict[str, Any]
    token: str
    args: dict[str, Any]
    args_sha256: str
    request_id: str
    nonce: bytes
    signing_kid: str


@dataclass(frozen=True)
class SignedBatch:
    """A verified split of one batch file, and what proves it (as SignedVerdict).

    ``result`` is ``{"status": "accepted"|"rejected", "errors": [file-level {field,row,rule}],
    "digest", "kid", "agents": [{"acronym", "portfolio": {"verdict", "envelope"}|None,
    "counterparties": ...}], "counts"}``: a rejected file has no agents; an accepted one has
    every agent of the request, in its order, each payload re-encrypted to the enclave's
    current envelope key (``kid``) with its verdict (``envelope`` None only for a rejected
    payload whose cells could not even be serialised)."""

    result: dict[str, Any]
    token: str
    args: dict[str, Any]
    args_sha256: str
    request_id: str
    nonce: bytes
    signing_kid: str

    @property
    def status(self) -> str:
        return self.result["status"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.result["errors"]

    @property
    def agents(self) -> list[dict[str, Any]]:
        return self.result["agents"]


# Where the gateway finds the registry's entries to stage (again) when the enclave answers
# `unknown_registry`: the entries themselves, or a callable returning them (called only then).
RegistrySource = Iterable[Mapping[str, Any]] | Callable[[], Iterable[Mapping[str, Any]]]
_REMEMBERED_REGISTRIES = 4


@dataclass(frozen=True)
class SignedResults:
    """A week's verified results, with the JWS of the `compute` answer and its args' digest."""

    results: dict[str, Any]
    token: str
    args_sha256: str
    request_id: str
    nonce: bytes
    signing_kid: str
    # The args the JWS is bound to (closing ops; compute_week leaves them empty: they name a
    # staged batch that no longer exists).
    args: dict[str, Any] = field(default_factory=dict)


# --- the boot sequence: what ensure_unlocked runs on a locked enclave --------------------------


def verify_attestation_of(attestation: Attestation, *, now: dt.datetime | None = None) -> Any:
    """Check an attestation with this deployment's trust settings (raises on any failure):
    chain to ENCLAVE_TRUST_ROOT (and ENCLAVE_ROOT_SHA256), ENCLAVE_EXPECTED_PCRS, maximum age,
    nonce, and the binding of the JWKS and signing key. Returns the verified document."""
    return check_attestation(
        attestation,
        trusted_root=trusted_root(),
        root_sha256=settings.ENCLAVE_ROOT_SHA256 or None,
        expected_pcrs=expected_pcrs(),
        max_age=dt.timedelta(seconds=settings.ENCLAVE_ATTESTATION_MAX_AGE),
        allow_debug=settings.ENCLAVE_ALLOW_DEBUG,
        now=now,
    )


_trusted_signing_keys: dict[tuple[Any, ...], bool] = {}
_TRUSTED_SIGNING_KEYS_MAX = 64


def trusted_signing_key(kid: str) -> Any | None:
    """The registered answer-signing key ``kid`` (a jwcrypto JWK) if, and only if, the
    attestation document stored with it still verifies with this deployment's trust settings
    (chain to ENCLAVE_TRUST_ROOT / ENCLAVE_ROOT_SHA256, ENCLAVE_EXPECTED_PCRS, debug refused
    unless ENCLAVE_ALLOW_DEBUG) at the time it was attested (freshness and nonce do not apply
    to a stored document), and its user_data binds this very key (``sig_kid`` and
    ``sig_spki``). None otherwise: a key row inserted by hand is never trusted.

    One query per call; the verification's outcome is remembered by the process for the same
    row content and trust settings."""
    import hashlib

    import cbor2
    from cryptography.hazmat.primitives import serialization
    from jwcrypto import jwk

    from enclave_bridge.attestation.verify import verify_attestation
    from enclave_bridge.wire.protocol import canonical_json

    if not isinstance(kid, str) or not kid:
        return None
    row = (
        EnclaveKey.objects.filter(kid=kid, use=EnclaveKey.Use.SIGNATURE)
        .values_list("public_jwk", "attestation", "attested_at")
        .first()
    )
    if row is None:
        return None
    public_jwk, document, attested_at = row
    document = bytes(document or b"")
    try:
        key = jwk.JWK(**public_jwk)
    except Exception:
        return None
    cache_key = (
        kid,
        hashlib.sha256(canonical_json(public_jwk)).hexdigest(),
        hashlib.sha256(document).hexdigest(),
        attested_at,
        settings.ENCLAVE_TRUST_ROOT,
        settings.ENCLAVE_ROOT_SHA256,
        settings.ENCLAVE_EXPECTED_PCRS,
        bool(settings.ENCLAVE_ALLOW_DEBUG),
    )
    trusted = _trusted_signing_keys.get(cache_key)
    if trusted is None:
        trusted = False
        try:
            verified = verify_attestation(
                document,
                trusted_root=trusted_root(),
                root_sha256=settings.ENCLAVE_ROOT_SHA256 or None,
                now=attested_at,
                max_age=None,
                expected_nonce=None,
                expected_pcrs=expected_pcrs(),
                allow_debug=settings.ENCLAVE_ALLOW_DEBUG,
            )
            bound = cbor2.loads(verified.user_data or b"")
            spki = key.get_op_key("verify").public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            trusted = (
                isinstance(bound, dict)
                and public_jwk.get("kid") == kid
                and bound.get("sig_kid") == kid
                and bound.get("sig_spki") == spki
            )
            reason = "its attestation does not bind it"
        except Exception as exc:  # noqa: BLE001 - any failure means "not trusted"
            reason = type(exc).__name__
        if not trusted:
            logger.warning("signing key %s is not trusted: %s", kid[:128], reason)
        if len(_trusted_signing_keys) >= _TRUSTED_SIGNING_KEYS_MAX:
            _trusted_signing_keys.clear()
        _trusted_signing_keys[cache_key] = trusted
    return key if trusted else None


def register_attestation(*, attestation: Attestation) -> list[EnclaveKey]:
    """Verify an attestation and record the keys it binds; older keys become retired."""
    document = verify_attestation_of(attestation)
    return attested_keys_record(attestation=attestation, document=document)


@dataclass(frozen=True)
class EnclaveBoot:
    """What enclave_boot did: "unsealed" (the current set), "unsealed_pending" (a first-boot set
    whose attestation had not verified yet) or "initialised" (new keys, sealed set stored)."""

    action: str
    keys: list[EnclaveKey]


def attest_untrusted(client: EnclaveClient) -> Attestation:
    """Attest through a client of the same address that trusts no signing key yet: after an
    `init` (or a restart unlocked elsewhere) the enclave signs with a key `client` would refuse,
    and only the verified attestation document (trust root, PCRs, nonce) makes a key trusted."""
    fresh = EnclaveClient(client.address, timeout=client.timeout, retries=1)
    try:
        return fresh.attest()
    finally:
        fresh.close()


def enclave_boot(*, client: EnclaveClient, kms_key_id: str) -> EnclaveBoot:
    """Unlock a (re)started enclave: hand back the current sealed key set when it was sealed
    under this KMS key, else let the enclave create keys (first boot) and keep the sealed set.
    Then attest, verify and register the keys.

    A first-boot set is committed at once but only as *pending*: it becomes current when the
    attestation of the enclave that made it verifies. So a boot whose attestation is refused (a
    wrong PCR setting, say) does not lose the keys the enclave now holds (the next boot unseals
    the pending set), and whatever answered `init` without being the attested image cannot
    displace the current set. No key is trusted until register_attestation has verified it."""
    sealed, pending = sealed_key_sets_for_boot(kms_key_id=kms_key_id)
    action = "unsealed"
    if sealed is not None:
        pending = None
        keys = client.unseal(bytes(sealed.blob), aws_credentials=parent_aws_credentials())
        logger.info("enclave unsealed with key set of %s", sealed.created_at.isoformat())
        if keys.sealed_keys is not None:
            # A set sealed before ES256: the enclave replaced its P-384 signing key and resealed
            # the set. Kept pending until the attestation below binds the new signing key.
            pending = sealed_key_set_store(
                blob=keys.sealed_keys, reason="rotate", kms_key_id=kms_key_id, attested=False
            )
            logger.info("legacy signing key replaced: resealed key set stored (pending)")
    else:
        action = "unsealed_pending"
        if pending is not None:
            try:
                client.unseal(bytes(pending.blob), aws_credentials=parent_aws_credentials())
                logger.info("enclave unsealed with the pending key set of %s", pending.created_at)
            except EnclaveError as exc:
                logger.warning("pending sealed key set does not unseal (%s): first boot", exc.code)
                pending = None
        if pending is None:
            action = "initialised"
            keys = client.init(aws_credentials=parent_aws_credentials())
            pending = sealed_key_set_store(
                blob=keys.sealed_keys, reason="init", kms_key_id=kms_key_id, attested=False
            )
    attestation = attest_untrusted(client)
    registered = register_attestation(attestation=attestation)
    if pending is not None:
        sealed_key_set_promote(pending)
    client.register_signing_key(attestation.signing_jwk)
    return EnclaveBoot(action, registered)


def enclave_rotate(
    *, client: EnclaveClient, kms_key_id: str, rotate_signing: bool = False
) -> list[EnclaveKey]:
    """New envelope key (new kid); older keys stay in the sealed set to open older envelopes.
    The rotate answer is signed by the attested signing key, so its sealed set is current at
    once, and kept even if the attestation that follows fails."""
    keys = client.rotate(rotate_signing=rotate_signing, aws_credentials=parent_aws_credentials())
    sealed_key_set_store(blob=keys.sealed_keys, reason="rotate", kms_key_id=kms_key_id)
    attestation = client.attest()
    return register_attestation(attestation=attestation)


class EnclaveGateway:
    """One enclave address, one client; keeps it unlocked and its signing key trusted."""

    def __init__(
        self,
        address: str,
        *,
        kms_key_id: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        self.address = address
        self.kms_key_id = kms_key_id
        self.client = EnclaveClient(address, timeout=timeout, retries=retries, backoff=backoff)
        self._unlock = threading.Lock()
        # Registries this process staged, by digest (the last few): staged again on
        # `unknown_registry` (an enclave restart, or evicted by newer ones).
        self._registries: dict[str, list[dict[str, str]]] = {}
        self._registries_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # --- keeping it unlocked ---------------------------------------------------------------------

    def ensure_unlocked(self, *, allow_new_keys: bool = False) -> BootReport:
        """Ask `health`; unlock the enclave when it answers `locked`, and make sure its keys are
        registered and its signing key trusted.

        Unlocking hands back the current sealed set stored for this KMS key (passing the
        instance role's credentials when ENCLAVE_PASS_AWS_CREDENTIALS), or, when there is none,
        lets the enclave create keys and stores their sealed set (enclave_boot, below). New
        keys are made unattended only on a true first boot (no sealed set stored at all): when
        sets exist only under other KMS keys, new keys would leave every envelope encrypted to
        the old ones unreadable, so that needs ``allow_new_keys`` (`enclave_boot --new-keys`;
        `run_enclave`, whose development KMS key changes with the image)."""
        with self._unlock:
            state = self._state()
            if state != "locked":
                if self.client.signing_kid is not None:
                    return BootReport(self.address, state, "none", _current_keys())
                # Unlocked by someone else (another host process, an operator): trust nothing
                # until its attestation verifies.
                return BootReport(self.address, state, "registered", self._register())
            kms_key_id = self._require_kms_key_id()
            self._refuse_unattended_new_keys(kms_key_id, allow_new_keys)
            logger.warning("enclave at %s is locked: unlocking it", self.address)
            try:
                boot = enclave_boot(client=self.client, kms_key_id=kms_key_id)
            except EnclaveError as exc:
                if exc.code == E_ALREADY_UNLOCKED:  # another process won the race
                    return BootReport(self.address, state, "registered", self._register())
                raise EnclaveUnlockError(
                    f"the enclave at {self.address} is locked and refused to unlock "
                    f"({exc.code}: {exc.message}). A `sealing_failed` from unseal means KMS "
                    "did not release the sealed key set to this enclave: its image's PCRs must "
                    "be in the KMS key policy, and the instance role must be allowed to decrypt. "
                    "The stored sealed set is kept."
                ) from exc
            except (AttestationError, AnswerVerificationError) as exc:
                raise EnclaveUnlockError(
                    f"the enclave at {self.address} was unlocked but its attestation was "
                    f"refused ({type(exc).__name__}: {exc}); no key was trusted. Check "
                    "ENCLAVE_TRUST_ROOT and ENCLAVE_EXPECTED_PCRS against the released image. "
                    "The sealed set is kept."
                ) from exc
            logger.info(
                "enclave at %s %s; signing kid %s",
                self.address,
                boot.action,
                self.client.signing_kid,
            )
            return BootReport(self.address, state, boot.action, boot.keys)

    def _state(self) -> str:
        """ "locked" or "unlocked", the enclave's `health`, with the registered key trusted."""
        self._trust_registered_key()
        try:
            return self.client.health()["state"]
        except AnswerVerificationError:
            if self.client.signing_kid is not None:
                raise
            # Signed by keys this host has not registered yet (nothing is trusted from it).
            return "unlocked"

    def _require_kms_key_id(self) -> str:
        if not self.kms_key_id:
            raise ImproperlyConfigured(
                "ENCLAVE_KMS_KEY_ID is not set: the host cannot tell which stored sealed key set "
                "the enclave can open. Set it to the enclave's --kms-key-id "
                "(e.g. alias/prudencial-enclave)."
            )
        return self.kms_key_id

    @staticmethod
    def _refuse_unattended_new_keys(kms_key_id: str, allow_new_keys: bool) -> None:
        if allow_new_keys or SealedKeySet.objects.filter(kms_key_id=kms_key_id).exists():
            return
        others = sorted(set(SealedKeySet.objects.values_list("kms_key_id", flat=True)))
        if not others and EnclaveKey.objects.exists():
            # Keys were registered (envelopes may be encrypted to them) but their sealed set is
            # not here: not a first boot, and new keys would make those envelopes unreadable.
            raise EnclaveUnlockError(
                "the enclave is locked and no sealed key set is stored, but enclave keys are "
                "registered: envelopes encrypted to them could no longer be opened if new keys "
                "were made. Restore the sealed set (SealedKeySet) from backup, or run "
                "`manage.py enclave_boot --new-keys` if new keys are intended."
            )
        if others:
            raise EnclaveUnlockError(
                f"no sealed key set is stored for KMS key {kms_key_id!r} (ENCLAVE_KMS_KEY_ID), "
                f"only for {', '.join(others)}: unlocking would create new keys, and envelopes "
                "encrypted to the old ones could no longer be opened. Fix ENCLAVE_KMS_KEY_ID, "
                "or run `manage.py enclave_boot --new-keys` if new keys are intended."
            )

    def _trust_registered_key(self) -> bool:
        """Make the client check answers against the registered signing key (another process
        may have booted or rotated it); False when none is registered yet."""
        signing = current_signing_key()
        if signing is None or signing.public_jwk.get("crv") != SIGNING_CURVE:
            # None registered, or a pre-ES256 (P-384) key no answer is signed with any more:
            # the next unlock's attestation registers the enclave's current one.
            return False
        if self.client.signing_kid != signing.kid:
            self.client.register_signing_key(signing.public_jwk)
        return True

    def _register(self) -> list[EnclaveKey]:
        """Attest, verify and record the enclave's keys, then trust its signing key here. The
        attestation goes through a client that trusts no key yet: this one would refuse the new
        signing key a restarted enclave announces, and only the verified attestation document
        (trust root, PCRs, this nonce) makes a key trusted."""
        attestation = attest_untrusted(self.client)
        keys = register_attestation(attestation=attestation)
        self.client.register_signing_key(attestation.signing_jwk)
        return keys

    def _call(self, run: Callable[[EnclaveClient], T]) -> T:
        """Run one call (or sequence) and, once, what makes it succeed again: when the enclave
        answers `locked` (it restarted), unlock it; when an answer is signed by another key than
        the one this process trusts, take up the registered one if it changed (another process
        rotated the signing key), else the one a fresh verified attestation names (the enclave
        restarted and another process unlocked it). Anything else is raised as it came."""
        if self.client.signing_kid is None and not self._trust_registered_key():
            self.ensure_unlocked()
        try:
            return run(self.client)
        except EnclaveError as exc:
            if exc.code != E_LOCKED:
                raise
            logger.warning("enclave at %s answered locked (restarted?): unlocking", self.address)
            self.ensure_unlocked()
        except AnswerVerificationError:
            trusted = self.client.signing_kid
            self._trust_registered_key()
            if self.client.signing_kid == trusted:
                # Not another process's rotation: the enclave may have restarted and been
                # unlocked by another worker with a new signing key not registered yet. A fresh
                # attestation (verified: trust root, PCRs, nonce) is the only thing that makes
                # a new key trusted; if it names the key this process already had, the answer
                # was not the enclave's and the error stands.
                self._register()
                if self.client.signing_kid == trusted:
                    raise
            logger.info("enclave signing key changed to %s", self.client.signing_kid)
        return run(self.client)

    # --- operations ------------------------------------------------------------------------------

    def attest(self, nonce: bytes | None = None) -> Attestation:
        """A fresh attestation bound to ``nonce``, verified with this deployment's trust root,
        PCRs and maximum age (raises AttestationError / AnswerVerificationError otherwise)."""
        attestation = self._call(lambda client: client.attest(nonce))
        verify_attestation_of(attestation)
        return attestation

    # --- the registry ------------------------------------------------------------------------

    def stage_registry(self, entries: Iterable[Mapping[str, Any]]) -> str:
        """Stage the public registry ({cnpj, acronym} each, ≤ 100,000) in the enclave and
        return its digest, which validations and splits name (``registry_sha256``)."""
        canonical = [{"cnpj": e["cnpj"], "acronym": e["acronym"]} for e in entries]
        digest = self._call(lambda client: client.stage_registry(canonical))
        self._remember(digest, canonical)
        return digest

    def _remember(self, digest: str, entries: list[dict[str, str]]) -> None:
        with self._registries_lock:
            self._registries.pop(digest, None)
            self._registries[digest] = entries
            while len(self._registries) > _REMEMBERED_REGISTRIES:
                self._registries.pop(next(iter(self._registries)))

    def _registry_digest(
        self, registry_sha256_: str | None, registry: RegistrySource | None
    ) -> str | None:
        if registry_sha256_ is not None or registry is None or callable(registry):
            return registry_sha256_
        entries = [{"cnpj": e["cnpj"], "acronym": e["acronym"]} for e in registry]
        digest = registry_sha256(entries)
        self._remember(digest, entries)
        return digest

    def _registry_entries(self, digest: str, registry: RegistrySource | None) -> list[dict]:
        with self._registries_lock:
            known = self._registries.get(digest)
        if known is not None:
            return known
        if registry is None:
            raise EnclaveError(
                E_UNKNOWN_REGISTRY,
                "the enclave holds no registry with this digest and none was given to stage "
                "(pass registry=entries or a loader, or call stage_registry first)",
            )
        source = registry() if callable(registry) else registry
        entries = [{"cnpj": e["cnpj"], "acronym": e["acronym"]} for e in source]
        if registry_sha256(entries) != digest:
            raise ValueError("registry entries given do not have the registry_sha256 named")
        self._remember(digest, entries)
        return entries

    def _with_registry(
        self,
        op: str,
        args: dict[str, Any],
        registry: RegistrySource | None,
        timeout: float | None = None,
    ) -> Any:
        """call_signed(op, args) and, once, when the enclave does not hold the registry the
        args name (`unknown_registry`: it restarted, or newer ones evicted it): stage it and
        send the same args again."""
        digest = args.get("registry_sha256")

        def run(client: EnclaveClient):
            try:
                return client.call_signed(op, args, timeout=timeout)
            except EnclaveError as exc:
                if exc.code != E_UNKNOWN_REGISTRY or digest is None:
                    raise
                logger.info("enclave at %s lacks registry %s: staging it", self.address, digest)
                client.stage_registry(self._registry_entries(digest, registry))
            return client.call_signed(op, args, timeout=timeout)

        return self._call(run)

    # --- validation --------------------------------------------------------------------------

    def validate_envelope(
        self,
        *,
        envelope: str,
        kind: str,
        agent: Mapping[str, str],
        week: str,
        energy_types: Iterable[str] | None = None,
        bucket_labels: Iterable[str] | None = None,
        registry_sha256: str | None = None,
        registry: RegistrySource | None = None,
    ) -> SignedVerdict:
        """The enclave's signed verdict on one envelope for this agent and week.

        ``energy_types`` / ``bucket_labels``: the week's (its parameters'); the defaults of
        formats.py when None. ``registry_sha256``: the staged registry to judge the
        counterparties' acronyms by (``stage_registry``); ``registry``: its entries, or a
        callable returning them, staged only if the enclave answers `unknown_registry`
        (entries alone, without a digest, are hashed here: O(n log n) per call). Neither:
        the acronym rule is skipped."""
        args = validate_args(
            envelope,
            kind=kind,
            agent=agent,
            week=week,
            energy_types=energy_types,
            bucket_labels=bucket_labels,
            registry_sha256=self._registry_digest(registry_sha256, registry),
        )
        answer = self._with_registry("validate", args, registry)
        return SignedVerdict(
            verdict=answer.result,
            token=answer.token,
            args=args,
            args_sha256=answer.args_sha256,
            request_id=answer.request_id,
            nonce=answer.nonce,
            signing_kid=self.client.signing_kid,
        )

    def split_batch(
        self,
        *,
        envelope: str,
        week: str,
        agents: Iterable[Mapping[str, str]],
        energy_types: Iterable[str] | None = None,
        bucket_labels: Iterable[str] | None = None,
        registry_sha256: str | None = None,
        registry: RegistrySource | None = None,
        timeout: float | None = None,
    ) -> SignedBatch:
        """One batch file (JSON prudencial/batch/v1 or the multi-agent XLSX) → the enclave's
        signed split: per agent the verdicts and each payload re-encrypted to its current
        envelope key. ``agents`` ({acronym, cnpj}, ≤ 2,000) are those the file must cover
        exactly; any other agent in it, or one of them missing, rejects the file whole.
        ``registry_sha256`` / ``registry`` as in validate_envelope."""
        args = split_args(
            envelope,
            week=week,
            agents=agents,
            energy_types=energy_types,
            bucket_labels=bucket_labels,
            registry_sha256=self._registry_digest(registry_sha256, registry),
        )
        timeout = timeout or max(self.client.timeout, 300.0)
        answer = self._with_registry("split", args, registry, timeout)
        return SignedBatch(
            result=answer.result,
            token=answer.token,
            args=args,
            args_sha256=answer.args_sha256,
            request_id=answer.request_id,
            nonce=answer.nonce,
            signing_kid=self.client.signing_kid,
        )

    def compute_week(
        self,
        *,
        parameters: Mapping[str, Any],
        items: Iterable[Mapping[str, Any]],
        network: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> SignedResults:
        """A week's batch: staged in chunks (stage_batch), then computed (compute). A restart in
        between loses the staged batch with the enclave's memory, so the whole sequence is what
        is run again after the unlock."""
        items = [dict(item) for item in items]

        def run(client: EnclaveClient):
            batch = client.stage_batch(parameters, items, timeout=timeout)
            return client.call_signed(
                "compute",
                {"batch": batch, "network": dict(network or {})},
                timeout=timeout or max(client.timeout, 600.0),
            )

        answer = self._call(run)
        return SignedResults(
            results=answer.result,
            token=answer.token,
            args_sha256=answer.args_sha256,
            request_id=answer.request_id,
            nonce=answer.nonce,
            signing_kid=self.client.signing_kid,
        )

    # --- the weekly closing ----------------------------------------------------------------------

    def compute_chunk(
        self,
        *,
        parameters: Mapping[str, Any],
        items: Iterable[Mapping[str, Any]],
        closing: str,
        chunk: int,
        registry_sha256: str | None = None,
        registry: RegistrySource | None = None,
        timeout: float | None = None,
    ) -> SignedResults:
        """One chunk of a closing (op ``closing_chunk``): the items staged (stage_batch), then
        validated with the verdicts of ``validate`` (the staged registry's acronym rule when
        ``registry_sha256`` names one), FA and concentration per agent, each breakdown sealed to
        its reply key and the chunk's network part sealed to the enclave key ring. A restart
        loses the staged batch, so the whole sequence is what runs again after the unlock;
        ``unknown_registry`` stages the registry once and runs it again."""
        items = [dict(item) for item in items]
        digest = self._registry_digest(registry_sha256, registry)
        timeout = timeout or max(self.client.timeout, 600.0)
        sent: dict[str, Any] = {}

        def once(client: EnclaveClient):
            batch = client.stage_batch(parameters, items, timeout=timeout)
            args: dict[str, Any] = {"batch": batch, "closing": closing, "chunk": chunk}
            if digest is not None:
                args["registry_sha256"] = digest
            sent.clear()
            sent.update(args)
            return client.call_signed("closing_chunk", args, timeout=timeout)

        def run(client: EnclaveClient):
            try:
                return once(client)
            except EnclaveError as exc:
                if exc.code != E_UNKNOWN_REGISTRY or digest is None:
                    raise
                logger.info("enclave at %s lacks registry %s: staging it", self.address, digest)
                client.stage_registry(self._registry_entries(digest, registry))
            return once(client)

        answer = self._call(run)
        return self._results(answer, dict(sent))

    def compute_network(
        self,
        *,
        parameters: Mapping[str, Any],
        parts: Iterable[str],
        trade_network: str | list[str] | None,
        options: Mapping[str, Any] | None,
        previous: Mapping[str, int] | None,
        closing: str | None = None,
        timeout: float | None = None,
        previous_week: str | None = None,
    ) -> SignedResults:
        """The network model of a closing (op ``closing_network``) over every chunk's sealed
        network part, staged in frames under the limit (``closing_parts``), and the week's
        trade network envelope (JWE of prudencial/contracts/v1) when there is one — or the
        envelopes of one set of parts, in index order."""
        parts = list(parts)
        timeout = timeout or max(self.client.timeout, 900.0)
        sent: dict[str, Any] = {}

        def run(client: EnclaveClient):
            staged = client.stage_parts(parts, timeout=timeout)
            args: dict[str, Any] = {
                "parameters": dict(parameters),
                "parts": staged,
                # A set of parts goes staged like the chunk parts when it does not fit one frame
                # (five 30,000-contract envelopes are ~30 MiB): the frame carries {staged: id}.
                "trade_network": (
                    client.stage_parts(trade_network, timeout=timeout)
                    if isinstance(trade_network, list)
                    else trade_network
                ),
                "options": dict(options or {}),
                "previous": None if previous is None else dict(previous),
            }
            if previous_week is not None:
                args["previous_week"] = previous_week
            if closing is not None:
                args["closing"] = closing
            sent.clear()
            sent.update(args)
            return client.call_signed("closing_network", args, timeout=timeout)

        answer = self._call(run)
        return self._results(answer, dict(sent))

    def validate_trade_network(
        self,
        *,
        jwe: str,
        week: str,
        part: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> SignedVerdict:
        """The enclave's signed verdict on a staff trade network upload (prudencial/contracts/v1):
        ``{status, errors [{field,row,rule}], contracts}``; the args are ``{envelope, week}``,
        plus ``part`` (``{set, index, count}``, the document must carry it) for a part of a
        set."""
        args: dict[str, Any] = {"envelope": jwe, "week": week}
        if part is not None:
            args["part"] = dict(part)
        answer = self._call(
            lambda client: client.call_signed(
                "validate_trade_network", args, timeout=timeout or max(client.timeout, 120.0)
            )
        )
        return SignedVerdict(
            verdict=answer.result,
            token=answer.token,
            args=args,
            args_sha256=answer.args_sha256,
            request_id=answer.request_id,
            nonce=answer.nonce,
            signing_kid=self.client.signing_kid,
        )

    def _results(self, answer: Any, args: dict[str, Any]) -> SignedResults:
        return SignedResults(
            results=answer.result,
            token=answer.token,
            args_sha256=answer.args_sha256,
            request_id=answer.request_id,
            nonce=answer.nonce,
            signing_kid=self.client.signing_kid,
            args=args,
        )

    def rotate(self, *, rotate_signing: bool = False) -> list[EnclaveKey]:
        """A new envelope key (enclave_rotate, below), the enclave unlocked first."""
        self.ensure_unlocked()
        return enclave_rotate(
            client=self.client,
            kms_key_id=self._require_kms_key_id(),
            rotate_signing=rotate_signing,
        )


def _current_keys() -> list[EnclaveKey]:
    return list(EnclaveKey.objects.filter(status=EnclaveKey.Status.CURRENT))


# --- the process-wide gateway --------------------------------------------------------------------


_gateways: dict[tuple[str, str, float, int], EnclaveGateway] = {}
_gateways_lock = threading.Lock()


def gateway(address: str | None = None, *, kms_key_id: str | None = None) -> EnclaveGateway:
    """The gateway of this process for ``address`` (settings.ENCLAVE_ADDRESS by default) and
    ``kms_key_id`` (settings.ENCLAVE_KMS_KEY_ID by default)."""
    key = (
        address or settings.ENCLAVE_ADDRESS,
        settings.ENCLAVE_KMS_KEY_ID if kms_key_id is None else kms_key_id,
        float(settings.ENCLAVE_TIMEOUT),
        int(settings.ENCLAVE_RETRIES),
    )
    with _gateways_lock:
        found = _gateways.get(key)
        if found is None:
            found = _gateways[key] = EnclaveGateway(
                key[0], kms_key_id=key[1], timeout=key[2], retries=key[3]
            )
        return found


def reset_gateways() -> None:
    """Close and forget every gateway of this process (tests, settings changed)."""
    with _gateways_lock:
        closing = list(_gateways.values())
        _gateways.clear()
    for item in closing:
        item.close()


def _forget_after_fork() -> None:
    # A forked worker (gunicorn, Celery prefork) must not share its parent's pooled sockets:
    # it starts with no gateway and opens its own connections.
    global _gateways_lock
    _gateways_lock = threading.Lock()
    _gateways.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def ensure_unlocked(*, allow_new_keys: bool = False) -> BootReport:
    return gateway().ensure_unlocked(allow_new_keys=allow_new_keys)


def attest(nonce: bytes | None = None) -> Attestation:
    return gateway().attest(nonce)


def stage_registry(entries: Iterable[Mapping[str, Any]]) -> str:
    return gateway().stage_registry(entries)


def validate_envelope(
    *,
    envelope: str,
    kind: str,
    agent: Mapping[str, str],
    week: str,
    energy_types: Iterable[str] | None = None,
    bucket_labels: Iterable[str] | None = None,
    registry_sha256: str | None = None,
    registry: RegistrySource | None = None,
) -> SignedVerdict:
    return gateway().validate_envelope(
        envelope=envelope,
        kind=kind,
        agent=agent,
        week=week,
        energy_types=energy_types,
        bucket_labels=bucket_labels,
        registry_sha256=registry_sha256,
        registry=registry,
    )


def split_batch(
    *,
    envelope: str,
    week: str,
    agents: Iterable[Mapping[str, str]],
    energy_types: Iterable[str] | None = None,
    bucket_labels: Iterable[str] | None = None,
    registry_sha256: str | None = None,
    registry: RegistrySource | None = None,
    timeout: float | None = None,
) -> SignedBatch:
    return gateway().split_batch(
        envelope=envelope,
        week=week,
        agents=agents,
        energy_types=energy_types,
        bucket_labels=bucket_labels,
        registry_sha256=registry_sha256,
        registry=registry,
        timeout=timeout,
    )


def compute_week(
    *,
    parameters: Mapping[str, Any],
    items: Iterable[Mapping[str, Any]],
    network: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> SignedResults:
    return gateway().compute_week(
        parameters=parameters, items=items, network=network, timeout=timeout
    )


def enclave_addresses() -> list[str]:
    """The enclave processes a closing fans out over: settings.ENCLAVE_ADDRESSES (env
    comma-separated), or [ENCLAVE_ADDRESS] when empty. Each is a separate enclave unsealed from
    the same SealedKeySet, so any of them opens the others' sealed network parts."""
    configured = [a for a in (getattr(settings, "ENCLAVE_ADDRESSES", None) or []) if a]
    return list(configured) or [settings.ENCLAVE_ADDRESS]


def compute_chunk(
    *,
    address: str | None = None,
    parameters: Mapping[str, Any],
    items: Iterable[Mapping[str, Any]],
    closing: str,
    chunk: int,
    registry_sha256: str | None = None,
    registry: RegistrySource | None = None,
    timeout: float | None = None,
) -> SignedResults:
    return gateway(address).compute_chunk(
        parameters=parameters,
        items=items,
        closing=closing,
        chunk=chunk,
        registry_sha256=registry_sha256,
        registry=registry,
        timeout=timeout,
    )


def compute_network(
    *,
    address: str | None = None,
    parameters: Mapping[str, Any],
    parts: Iterable[str],
    trade_network: str | list[str] | None,
    options: Mapping[str, Any] | None,
    previous: Mapping[str, int] | None,
    closing: str | None = None,
    timeout: float | None = None,
    previous_week: str | None = None,
) -> SignedResults:
    return gateway(address).compute_network(
        parameters=parameters,
        parts=parts,
        trade_network=trade_network,
        options=options,
        previous=previous,
        closing=closing,
        timeout=timeout,
        previous_week=previous_week,
    )


def validate_trade_network(
    *,
    jwe: str,
    week: str,
    part: Mapping[str, Any] | None = None,
    address: str | None = None,
    timeout: float | None = None,
) -> SignedVerdict:
    return gateway(address).validate_trade_network(jwe=jwe, week=week, part=part, timeout=timeout)


# --- the seal's risk adherence (seal app) ---------------------------------------------------------


@dataclass(frozen=True)
class SignedAdherence:
    """The enclave's signed `adherence` answer and what proves it: ``args`` are the request's
    without the envelope (the submission's own), so a stored answer is verified again with the
    envelope, the args and the JWS (``verify_answer``, op "adherence")."""

    result: dict[str, Any]
    token: str
    args: dict[str, Any]
    args_sha256: str
    request_id: str
    nonce: bytes
    signing_kid: str


def risk_adherence(
    *,
    envelope: str,
    agent: Mapping[str, str],
    week: str,
    parameters: Mapping[str, Any],
    limit: float,
    address: str | None = None,
) -> SignedAdherence:
    """The agent's accepted portfolio ``envelope`` of ``week`` under the week's stress
    scenarios against ``limit`` × PLA, computed in the enclave: ``result`` is ``{week, agent,
    limit, status: adherent|not_adherent|rejected, margin (fraction of PLA) | None,
    worst_scenario, reason, errors}`` — no R$ figure (enclave_bridge/enclave/adherence.py)."""
    args = {
        "agent": {"acronym": agent["acronym"], "cnpj": agent["cnpj"]},
        "week": week,
        "parameters": dict(parameters),
        "limit": float(limit),
    }
    target = gateway(address)
    answer = target._call(
        lambda client: client.call_signed("adherence", {**args, "envelope": envelope})
    )
    return SignedAdherence(
        result=answer.result,
        token=answer.token,
        args=args,
        args_sha256=answer.args_sha256,
        request_id=answer.request_id,
        nonce=answer.nonce,
        signing_kid=target.client.signing_kid,
    )


__all__ += ["SignedAdherence", "risk_adherence"]
