"""The token API: create (POST /api/v1/auth/token/, the key shown once), list and revoke one's
own tokens (GET /api/v1/auth/tokens/, DELETE /api/v1/auth/tokens/<id>/)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, renderers, serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.response import Response
from rest_framework.views import APIView

from prudencial.access import tokens
from prudencial.access.models import AccessToken
from prudencial.api.addresses import client_address


class TokenCreateInputSerializer(AuthTokenSerializer):
    # A login is at most 150 characters (the user model's); longer is refused before any
    # lookup, also keeping it within django-axes' 255-character username column.
    username = serializers.CharField(label=_("login"), max_length=150, write_only=True)
    password = serializers.CharField(
        label=_("senha"),
        max_length=4096,
        style={"input_type": "password"},
        trim_whitespace=False,
        write_only=True,
    )
    name = serializers.CharField(
        label=_("nome"),
        required=False,
        allow_blank=True,
        max_length=100,
        write_only=True,
        help_text=_("Para reconhecer o token na sua lista (ex.: 'cliente do agente, servidor 2')."),
    )
    token = None  # the output serializer shows it


class TokenCreatedOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text=_("A chave: mostrada só agora, guarde-a."))
    expires_at = serializers.DateTimeField()
    id = serializers.IntegerField()
    name = serializers.CharField()


class TokenOutputSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=["active", "expired", "revoked"], read_only=True)

    class Meta:
        model = AccessToken
        fields = (
            "id",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "revoked_at",
            "status",
        )
        read_only_fields = fields


@extend_schema(request=TokenCreateInputSerializer, responses={200: TokenCreatedOutputSerializer})
class TokenCreateView(APIView):
    """POST username and password (and optionally a name); returns a new API token.

    The key is in this answer only (the server keeps its SHA-256); it expires at ``expires_at``
    (ACCESS_TOKEN_LIFETIME_DAYS). Send it as ``Authorization: Token <key>``."""

    throttle_classes = ()
    permission_classes = ()
    renderer_classes = (renderers.JSONRenderer,)
    serializer_class = TokenCreateInputSerializer

    def get_serializer(self, *args, **kwargs):
        kwargs["context"] = {"request": self.request, "format": self.format_kwarg, "view": self}
        return self.serializer_class(*args, **kwargs)

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = tokens.token_create(
            user=serializer.validated_data["user"],
            name=serializer.validated_data.get("name", ""),
            ip_address=client_address(request),
        )
        data = {"token": key, "expires_at": token.expires_at, "id": token.pk, "name": token.name}
        return Response(TokenCreatedOutputSerializer(data).data)


class TokenListView(generics.ListAPIView):
    """The caller's API tokens (never their keys): active, expired and revoked."""

    serializer_class = TokenOutputSerializer

    def get_queryset(self):
        return tokens.token_list(user=self.request.user)


class TokenRevokeView(generics.GenericAPIView):
    """Revoke one of the caller's tokens (it stops working at once); another's is not found."""

    serializer_class = TokenOutputSerializer

    def get_queryset(self):
        return tokens.token_list(user=self.request.user)

    @extend_schema(responses={200: TokenOutputSerializer})
    def delete(self, request, *args, **kwargs):
        token = tokens.token_revoke(
            token=self.get_object(), by=request.user, ip_address=client_address(request)
        )
        return Response(TokenOutputSerializer(token).data, status=status.HTTP_200_OK)
