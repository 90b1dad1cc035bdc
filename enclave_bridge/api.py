"""API for agents' software: the enclave's keys and fresh attestations to check before encrypting.

GET  /api/v1/enclave/keys/          registered keys (JWK, PCRs, attestation document, validity)
POST /api/v1/enclave/attestation/   {"nonce": base64url of 16–64 random bytes} → a fresh document
                                    from the running enclave, bound to that nonce and its JWKS
GET  /api/v1/enclave/attestation/?nonce=…   the same, the nonce in the query (browsers, curl)
"""

from __future__ import annotations

import binascii
import logging

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from enclave_bridge import gateway
from enclave_bridge.gateway import (
    AnswerVerificationError,
    AttestationError,
    EnclaveConnectionError,
    EnclaveError,
    EnclaveUnlockError,
)
from enclave_bridge.models import EnclaveKey
from enclave_bridge.selectors import enclave_key_list
from enclave_bridge.wire.protocol import NONCE_MAX_BYTES, NONCE_MIN_BYTES, b64url, b64url_decode

logger = logging.getLogger(__name__)


class EnclaveUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("O enclave não está disponível no momento; tente novamente em instantes.")
    default_code = "enclave_unavailable"


class EnclaveNotTrusted(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = _(
        "A atestação do enclave não passou na verificação do servidor; nada foi publicado."
    )
    default_code = "enclave_not_trusted"


class EnclaveKeyOutputSerializer(serializers.ModelSerializer):
    attestation = serializers.SerializerMethodField(help_text="COSE_Sign1 document, base64url")

    class Meta:
        model = EnclaveKey
        fields = [
            "kid",
            "use",
            "status",
            "public_jwk",
            "module_id",
            "pcrs",
            "debug_mode",
            "attested_at",
            "verified_at",
            "expires_at",
            "attestation",
        ]

    def get_attestation(self, obj: EnclaveKey) -> str:
        return b64url(bytes(obj.attestation))


class EnclaveKeyListView(generics.ListAPIView):
    """The enclave's public keys: encrypt to the current `enc` key, check answers with `sig`."""

    serializer_class = EnclaveKeyOutputSerializer
    pagination_class = None

    def get_queryset(self):
        return enclave_key_list()


class AttestationInputSerializer(serializers.Serializer):
    nonce = serializers.CharField(
        help_text=f"base64url of {NONCE_MIN_BYTES}–{NONCE_MAX_BYTES} random bytes"
    )

    def validate_nonce(self, value: str) -> bytes:
        try:
            raw = b64url_decode(value)
        except (binascii.Error, ValueError):
            raise ValidationError(gettext("nonce deve estar em base64url.")) from None
        if not NONCE_MIN_BYTES <= len(raw) <= NONCE_MAX_BYTES:
            raise ValidationError(
                gettext("nonce deve ter de %(min)s a %(max)s bytes (tem %(got)s).")
                % {"min": NONCE_MIN_BYTES, "max": NONCE_MAX_BYTES, "got": len(raw)}
            )
        return raw


class AttestationOutputSerializer(serializers.Serializer):
    document = serializers.CharField(help_text="COSE_Sign1 attestation document, base64url")
    nonce = serializers.CharField()
    kid = serializers.CharField(help_text="current envelope key id")
    kids = serializers.ListField(child=serializers.CharField(), help_text="every envelope key id")
    signing_kid = serializers.CharField()
    jwks = serializers.JSONField()


class AttestationView(APIView):
    """A fresh attestation bound to your nonce: verify it yourself before encrypting."""

    # Each call makes the enclave attest and sign: bounded per user.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "attestation"

    @extend_schema(
        parameters=[AttestationInputSerializer],
        responses=AttestationOutputSerializer,
        description=str(_("O mesmo que o POST, com o nonce em ?nonce= (base64url).")),
    )
    def get(self, request):
        data = AttestationInputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        return self._attest(data.validated_data["nonce"])

    @extend_schema(request=AttestationInputSerializer, responses=AttestationOutputSerializer)
    def post(self, request):
        data = AttestationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._attest(data.validated_data["nonce"])

    def _attest(self, nonce: bytes) -> Response:
        try:
            # Verified by the gateway with the deployment's trust root and PCRs; a restarted
            # enclave is unlocked first.
            attestation = gateway.attest(nonce)
        except (EnclaveConnectionError, EnclaveUnlockError) as exc:
            logger.error("enclave unavailable for an attestation: %s", exc)
            raise EnclaveUnavailable() from exc
        except EnclaveError as exc:
            raise EnclaveUnavailable(
                gettext("O enclave recusou o pedido (%(code)s).") % {"code": exc.code}
            ) from exc
        except (AttestationError, AnswerVerificationError) as exc:
            logger.error("attestation from the enclave refused by the host: %s", exc)
            raise EnclaveNotTrusted() from exc
        out = AttestationOutputSerializer(
            {
                "document": b64url(attestation.document),
                "nonce": b64url(attestation.nonce),
                "kid": attestation.kid,
                "kids": attestation.kids,
                "signing_kid": attestation.signing_kid,
                "jwks": attestation.jwks,
            }
        )
        return Response(out.data)
