"""The registry feed endpoint: CCEE's registry platform sends changes to representations.

POST /api/v1/registry/feed/ with a JSON body {"changes": [...]} (docs/registry.md). Only an
account holding `prudencial.apply_registry_feed` (CCEE's registry service account, or staff
given it) may call it. Each request is one batch: validated whole, applied in one transaction,
answered with the counts; a wrong row refuses the whole batch with 422 and every error's row,
field and rule. Feeds larger than the API's body limit are sent as several batches (each
idempotent) or applied from a file with `manage.py apply_registry_feed`.
"""

from __future__ import annotations

import json

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from prudencial.services.registry_feed import FeedRefused, feed_source, registry_feed_apply

MAX_CHANGES_PER_REQUEST = 10_000


class CanApplyRegistryFeed(permissions.BasePermission):
    message = _("Esta conta não pode aplicar o feed do cadastro.")

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and user.has_perm("prudencial.apply_registry_feed")
        )


class RegistryFeedView(APIView):
    """Apply one batch of the registry's representation changes (all or nothing)."""

    permission_classes = [CanApplyRegistryFeed]

    class InputSerializer(serializers.Serializer):
        changes = serializers.ListField(
            child=serializers.DictField(), allow_empty=False, max_length=MAX_CHANGES_PER_REQUEST
        )

    class OutputSerializer(serializers.Serializer):
        rows = serializers.IntegerField()
        created = serializers.IntegerField()
        changed = serializers.IntegerField()
        ended = serializers.IntegerField()
        removed = serializers.IntegerField()
        unchanged = serializers.IntegerField()
        users_created = serializers.IntegerField()
        permissions_added = serializers.IntegerField()
        permissions_removed = serializers.IntegerField()
        source = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            422: inline_serializer(
                "RegistryFeedRefused",
                {
                    "detail": serializers.CharField(),
                    "errors": serializers.ListField(child=serializers.DictField()),
                },
            ),
        },
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = data.validated_data["changes"]
        source = feed_source(json.dumps(changes, sort_keys=True, default=str))
        try:
            result = registry_feed_apply(rows=changes, by=request.user, source=source)
        except FeedRefused as refused:
            return Response(
                {
                    "detail": _("Feed recusado: nada foi aplicado."),
                    "errors": [e.as_dict() for e in refused.errors],
                },
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        return Response(self.OutputSerializer(result.as_dict()).data)
