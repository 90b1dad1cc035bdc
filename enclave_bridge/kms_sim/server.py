"""SIMULATED AWS KMS: moto's KMS server behind a WSGI middleware that implements `Recipient`
and key-policy authorization.

moto 5.2.5 accepts and ignores `Recipient` (it returns Plaintext) and ignores key policies. This
middleware, in front of moto's own server application, does what KMS does:
1. identifies the caller by the access key id in the SigV4 `Authorization` header (PRINCIPALS:
   "testing" is the parent instance role that host and enclave use, "kms-admin" the separate key
   administrator; signatures are NOT verified — this models the production policy, it is not a
   security boundary on a development machine);
2. verifies the attestation document of a `Recipient` (verify.py, against the trust root);
3. BEFORE moto runs anything, authorizes the operation: on a key, by evaluating the key policy
   (policy.py: principal, action, `kms:RecipientAttestation:*` conditions, explicit deny wins,
   default deny) for EVERY operation; not on a key (CreateKey, ListKeys, GenerateRandom ...), by
   the fixed IAM-like table ACCOUNT_OPS. Refusals are AccessDeniedException, as in KMS;
4. replaces Plaintext (or PrivateKeyPlaintext) with CiphertextForRecipient: CMS EnvelopedData
   encrypted to the document's public_key.
It also persists moto's KMS backend to a state file after every change. boto3 talks to it
unmodified through `endpoint_url`. Region us-east-1, moto's default account.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.serving import BaseWSGIServer, make_server

from enclave_bridge.attestation.cms import build_enveloped_data
from enclave_bridge.attestation.verify import (
    AttestationDocument,
    AttestationError,
    load_trusted_root,
    verify_attestation,
)

from .policy import INSTANCE_ROLE_NAME, KEY_ADMIN_ROLE_NAME, is_allowed, role_arn
from .state import load_backend, save_backend

logger = logging.getLogger(__name__)

REGION = "us-east-1"
INSTANCE_ACCESS_KEY = "testing"  # the parent instance role: host and enclave
ADMIN_ACCESS_KEY = "kms-admin"  # the key administrator (never on the parent instance in AWS)
FAKE_CREDENTIALS = {"aws_access_key_id": INSTANCE_ACCESS_KEY, "aws_secret_access_key": "testing"}
ADMIN_CREDENTIALS = {"aws_access_key_id": ADMIN_ACCESS_KEY, "aws_secret_access_key": "kms-admin"}
INSTANCE_ROLE_ARN = role_arn(INSTANCE_ROLE_NAME)
KEY_ADMIN_ROLE_ARN = role_arn(KEY_ADMIN_ROLE_NAME)
# Access key id → principal ARN. Any other access key is refused (UnrecognizedClientException).
PRINCIPALS = {INSTANCE_ACCESS_KEY: INSTANCE_ROLE_ARN, ADMIN_ACCESS_KEY: KEY_ADMIN_ROLE_ARN}
# Operations not on a key are authorized by IAM in AWS; the simulation's fixed IAM: the key
# administrator may create and list keys, the instance role may only ask for random bytes. In
# particular the instance role may NOT CreateKey: it would create a key under a policy of its
# choosing and point the enclave at it. Any operation not listed here must name a key.
ACCOUNT_OPS = {
    "CreateKey": {KEY_ADMIN_ROLE_ARN},
    "ListKeys": {KEY_ADMIN_ROLE_ARN},
    "ListAliases": {KEY_ADMIN_ROLE_ARN},
    "GenerateRandom": {INSTANCE_ROLE_ARN},
}
# How old an attestation document KMS accepts; AWS documents no exact figure, 5 minutes is
# what its SDK samples assume.
ATTESTATION_MAX_AGE = dt.timedelta(minutes=5)
RECIPIENT_OPS = {"Decrypt", "GenerateDataKey", "GenerateDataKeyPair", "GenerateRandom"}
# Operations on a key whose key is not named by "KeyId": request field → policy action. Decrypt
# and ReEncrypt are also authorized on the key their CiphertextBlob names.
KEY_FIELDS = {
    "ReEncrypt": (("SourceKeyId", "kms:ReEncryptFrom"), ("DestinationKeyId", "kms:ReEncryptTo")),
    "CreateAlias": (("TargetKeyId", "kms:CreateAlias"),),
    "UpdateAlias": (("TargetKeyId", "kms:UpdateAlias"),),
    "DeleteAlias": (("AliasName", "kms:DeleteAlias"),),
}
_BLOB_ACTION = {"Decrypt": "kms:Decrypt", "ReEncrypt": "kms:ReEncryptFrom"}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_PLAINTEXT_FIELD = {"GenerateDataKeyPair": "PrivateKeyPlaintext"}
_READ_ONLY_OPS = {
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateRandom",
    "GenerateMac",
    "VerifyMac",
    "Sign",
    "Verify",
    "GetPublicKey",
}

StartResponse = Callable[..., Any]


def _backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.kms.models import kms_backends

    return kms_backends[DEFAULT_ACCOUNT_ID][REGION]


_KEY_PAIR_SPECS: dict[str, Callable[[], Any]] = {
    "RSA_2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "RSA_3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
    "RSA_4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
    "ECC_NIST_P256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ECC_NIST_P384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ECC_NIST_P521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ECC_SECG_P256K1": lambda: ec.generate_private_key(ec.SECP256K1()),
}


def _generate_data_key_pair(request: dict[str, Any]) -> dict[str, Any]:
    """GenerateDataKeyPair, which moto 5.2.5 lacks: a fresh pair, private half encrypted by moto."""
    spec = request.get("KeyPairSpec")
    if spec not in _KEY_PAIR_SPECS:
        raise KmsError(
            "ValidationException", f"KeyPairSpec must be one of {sorted(_KEY_PAIR_SPECS)}"
        )
    backend = _backend()
    try:
        key_id = backend.any_id_to_key_id(str(request.get("KeyId") or ""))
        key = backend.keys[key_id]
    except Exception as exc:  # KeyError, or moto's own NotFoundException for unknown aliases
        raise KmsError("NotFoundException", f"Invalid keyId ({type(exc).__name__})") from None
    # moto leaves key_usage None when CreateKey omitted it; KMS defaults to ENCRYPT_DECRYPT.
    if key.key_usage not in (None, "ENCRYPT_DECRYPT") or not key.enabled:
        raise KmsError("InvalidKeyUsageException", "the key cannot be used to encrypt")
    private_key = _KEY_PAIR_SPECS[spec]()
    private_der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    blob, arn = backend.encrypt(key_id, private_der, request.get("EncryptionContext") or {})
    return {
        "KeyId": arn,
        "KeyPairSpec": spec,
        "PublicKey": base64.b64encode(public_der).decode(),
        "PrivateKeyCiphertextBlob": base64.b64encode(blob).decode(),
        "PrivateKeyPlaintext": base64.b64encode(private_der).decode(),
    }


class KmsError(Exception):
    """An error answered in the KMS JSON protocol (status 400, `__type`)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _json_response(
    start_response: StartResponse, status: str, body: dict[str, Any]
) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _principal(environ: dict) -> str:
    """The caller, from the access key id of the SigV4 Authorization header (not verified)."""
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        raise KmsError(
            "MissingAuthenticationTokenException", "Request is missing Authentication Token"
        )
    principal = PRINCIPALS.get(match.group(1))
    if principal is None:
        raise KmsError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    return principal


class RecipientMiddleware:
    """WSGI middleware adding KMS's attested-Recipient behaviour and persistence to moto."""

    def __init__(
        self,
        app: Callable[[dict, StartResponse], Iterable[bytes]],
        *,
        trust_root: x509.Certificate,
        state_file: Path | None = None,
        allow_debug: bool = True,
        max_age: dt.timedelta = ATTESTATION_MAX_AGE,
    ) -> None:
        self._app = app
        self._trust_root = trust_root
        self._state_file = state_file
        # Real KMS accepts debug-mode documents; their zero PCRs then fail any PCR condition.
        self._allow_debug = allow_debug
        self._max_age = max_age
        # One request at a time: moto's backend is not built for concurrent mutation, and the
        # state file must be written from a consistent backend.
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("TrentService."):
            # Only the KMS JSON API is exposed: moto's other services and its /moto-api/
            # (reset, state dumps) stay unreachable.
            return _json_response(
                start_response,
                "404 Not Found",
                {"__type": "UnknownOperationException", "message": "only KMS is simulated here"},
            )
        operation = target.split(".", 1)[1]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with self._lock:
            try:
                return self._handle(operation, body, environ, start_response)
            except KmsError as exc:
                logger.info("simulated KMS refused %s: %s", operation, exc.message)
                return _json_response(
                    start_response,
                    "400 Bad Request",
                    {"__type": exc.error_type, "message": exc.message},
                )

    def _verify(self, recipient: Any) -> tuple[AttestationDocument, rsa.RSAPublicKey]:
        if not isinstance(recipient, dict):
            raise KmsError("ValidationException", "Recipient must be a structure")
        if recipient.get("KeyEncryptionAlgorithm") != "RSAES_OAEP_SHA_256":
            raise KmsError(
                "ValidationException", "Recipient KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256"
            )
        try:
            document = base64.b64decode(recipient.get("AttestationDocument") or "", validate=True)
        except ValueError:
            raise KmsError("ValidationException", "AttestationDocument is not base64") from None
        try:
            attestation = verify_attestation(
                document,
                trusted_root=self._trust_root,
                now=dt.datetime.now(dt.UTC),
                max_age=self._max_age,
                expected_nonce=None,
                expected_pcrs=None,
                allow_debug=self._allow_debug,
            )
        except AttestationError as exc:
            raise KmsError("ValidationException", f"Invalid attestation document: {exc}") from None
        if attestation.public_key is None:
            raise KmsError("ValidationException", "The attestation document has no public_key")
        try:
            public_key = serialization.load_der_public_key(attestation.public_key)
        except ValueError:
            raise KmsError(
                "ValidationException", "The attestation public_key is not a DER public key"
            ) from None
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < 2048:
            raise KmsError("ValidationException", "The attestation public_key must be RSA-2048+")
        return attestation, public_key

    def _call_moto(self, environ: dict, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        inner = dict(environ)
        inner["wsgi.input"] = io.BytesIO(body)
        inner["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        chunks = self._app(inner, capture)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        return captured["status"], captured["headers"], data

    @staticmethod
    def _key(ref: str) -> Any:
        backend = _backend()
        try:
            return backend.keys.get(backend.any_id_to_key_id(ref))
        except Exception:  # moto's NotFoundException for an unknown alias
            return None

    @staticmethod
    def _authorize_key(
        principal: str, key: Any, action: str, attestation: AttestationDocument | None
    ) -> None:
        if key is None:
            raise KmsError("NotFoundException", "Invalid keyId: key not found")
        allowed, reason = is_allowed(key.policy, action, attestation, principal)
        if not allowed:
            raise KmsError(
                "AccessDeniedException",
                f"User: {principal} is not authorized to perform: {action} on resource: "
                f"{key.arn} because {reason}",
            )

    def _authorize(
        self,
        principal: str,
        operation: str,
        request: dict[str, Any],
        attestation: AttestationDocument | None,
    ) -> set[str]:
        """Authorize before anything runs; return the ids of the keys authorized."""
        if operation in ACCOUNT_OPS:
            if principal not in ACCOUNT_OPS[operation]:
                raise KmsError(
                    "AccessDeniedException",
                    f"User: {principal} is not authorized to perform: kms:{operation} "
                    "because no identity-based policy allows it",
                )
            return set()
        checks: list[tuple[Any, str]] = []
        if operation in _BLOB_ACTION:
            try:
                blob = base64.b64decode(str(request.get("CiphertextBlob") or ""), validate=True)
                from moto.kms.utils import _deserialize_ciphertext_blob

                blob_key = _deserialize_ciphertext_blob(blob).key_id
            except Exception:
                raise KmsError("InvalidCiphertextException", "invalid CiphertextBlob") from None
            checks.append((self._key(blob_key), _BLOB_ACTION[operation]))
        for field, action in KEY_FIELDS.get(operation, (("KeyId", f"kms:{operation}"),)):
            ref = request.get(field)
            if ref is None and operation in _BLOB_ACTION and field in ("KeyId", "SourceKeyId"):
                continue  # optional: the blob names the key
            checks.append((self._key(str(ref or "")), action))
        if not checks:
            raise KmsError("AccessDeniedException", f"kms:{operation} is not simulated")
        for key, action in checks:
            self._authorize_key(principal, key, action, attestation)
        return {key.id for key, _ in checks}

    def _handle(
        self, operation: str, body: bytes, environ: dict, start_response: StartResponse
    ) -> Iterable[bytes]:
        principal = _principal(environ)
        attestation: AttestationDocument | None = None
        recipient_key: rsa.RSAPublicKey | None = None
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise KmsError("SerializationException", "request body is not JSON") from None
        if not isinstance(request, dict):
            raise KmsError("SerializationException", "request body must be a JSON object")
        if "Recipient" in request:
            if operation not in RECIPIENT_OPS:
                raise KmsError("ValidationException", f"{operation} does not accept Recipient")
            attestation, recipient_key = self._verify(request.pop("Recipient"))
            body = json.dumps(request).encode()

        authorized = self._authorize(principal, operation, request, attestation)

        if operation == "GenerateDataKeyPair":
            status, answer = "200 OK", _generate_data_key_pair(request)
        else:
            status, headers, data = self._call_moto(environ, body)
            if not status.startswith("200"):
                return self._passthrough(start_response, status, headers, data)
            answer = json.loads(data or b"{}")

        # Belt and braces: the key moto actually used must be one that was authorized.
        used = answer.get("KeyId") if operation in _BLOB_ACTION else None
        if used is not None:
            key = self._key(str(used))
            if key is None or key.id not in authorized:
                self._authorize_key(principal, key, _BLOB_ACTION[operation], attestation)

        if recipient_key is not None:
            field = _PLAINTEXT_FIELD.get(operation, "Plaintext")
            plaintext = base64.b64decode(answer.pop(field))
            envelope = build_enveloped_data(plaintext, recipient_key)
            answer["CiphertextForRecipient"] = base64.b64encode(envelope).decode()
            logger.info("simulated KMS answered %s with CiphertextForRecipient", operation)

        if operation not in _READ_ONLY_OPS and self._state_file is not None:
            save_backend(_backend(), self._state_file)
        return _json_response(start_response, status, answer)

    def _passthrough(
        self,
        start_response: StartResponse,
        status: str,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Iterable[bytes]:
        kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*kept, ("Content-Length", str(len(data)))])
        return [data]


def build_app(
    *,
    trust_root: x509.Certificate | bytes,
    state_file: str | Path | None = None,
    allow_debug: bool = True,
) -> RecipientMiddleware:
    """moto's server application (KMS) wrapped by RecipientMiddleware; restores state if any.

    The moto KMS backend is process-global: it is reset here so the simulator starts from the
    state file (or empty), and two simulators in one process would share it.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    backend = _backend()
    backend.reset()
    state_path = Path(state_file) if state_file is not None else None
    if state_path is not None:
        load_backend(_backend(), state_path)
    return RecipientMiddleware(
        DomainDispatcherApplication(create_backend_app),
        trust_root=load_trusted_root(trust_root),
        state_file=state_path,
        allow_debug=allow_debug,
    )


def make_kms_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    trust_root: x509.Certificate | bytes,
    state_file: str | Path | None = None,
) -> BaseWSGIServer:
    """A threaded werkzeug server running the simulated KMS (not yet serving)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    os.environ.setdefault("AWS_ACCESS_KEY_ID", INSTANCE_ACCESS_KEY)
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    app = build_app(trust_root=trust_root, state_file=state_file)
    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)


def start_kms_sim(
    port: int = 0,
    trust_root: x509.Certificate | bytes | None = None,
    state: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
) -> tuple[str, Callable[[], None]]:
    """Run the simulated KMS in a thread (for test fixtures); return (endpoint_url, stop)."""
    if trust_root is None:
        raise ValueError("trust_root is required (the development PKI's root, usually)")
    server = make_kms_server(host, port, trust_root=trust_root, state_file=state)
    thread = threading.Thread(target=server.serve_forever, name="kms-sim", daemon=True)
    thread.start()
    url = f"http://{host}:{server.server_port}"
    logger.info("simulated KMS listening on %s", url)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return url, stop
