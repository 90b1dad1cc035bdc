"""Registry API views: thin, every queryset from a selector."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, parsers
from rest_framework.exceptions import NotFound, ValidationError

from prudencial import selectors
from prudencial.access.api import TokenCreateView
from prudencial.api.lockout import locked_out
from prudencial.api.parsers import JSONParser
from prudencial.api.serializers import (
    AgentOutputSerializer,
    WeekDetailOutputSerializer,
    WeekOutputSerializer,
)
from prudencial.api.throttling import ScopedRateThrottle
from prudencial.domain.calendar import is_week_code


@extend_schema(auth=[])  # the way to get a token needs none
class TokenView(TokenCreateView):
    """POST username and password; returns a new API token and when it expires
    ({"token", "expires_at", "id", "name"}; prudencial.access).

    Throttled per client address (scope "auth"); a username or an address with too many failures
    is locked out by django-axes (429 with Retry-After, prudencial.api.lockout)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
    parser_classes = [JSONParser, parsers.FormParser, parsers.MultiPartParser]

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            # Axes marks the request when this failure, or an earlier series, locked it out.
            if getattr(request, "axes_locked_out", False):
                raise locked_out(request) from None
            raise


class AgentListView(generics.ListAPIView):
    """Agents the caller may see (those it controls or represents; all for CCEE staff)."""

    serializer_class = AgentOutputSerializer

    def get_queryset(self):
        return selectors.agent_list(user=self.request.user).order_by("acronym")


class AgentDetailView(generics.RetrieveAPIView):
    serializer_class = AgentOutputSerializer

    def get_queryset(self):
        return selectors.agent_list(user=self.request.user)


class WeekListView(generics.ListAPIView):
    serializer_class = WeekOutputSerializer

    def get_queryset(self):
        return selectors.week_list().order_by("-code")


@extend_schema(description=str(_("Uma semana com seus parâmetros CCEE.")))
class WeekDetailView(generics.RetrieveAPIView):
    serializer_class = WeekDetailOutputSerializer
    lookup_field = "code"

    def get_queryset(self):
        return selectors.week_detail_list()

    def get_object(self):
        # A string that is no week code (a NUL byte...) is not found, never looked up.
        if not is_week_code(self.kwargs.get(self.lookup_field)):
            raise NotFound
        return super().get_object()
