"""Registry API views: thin, every queryset from a selector."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import ScopedRateThrottle

from prudencial import selectors
from prudencial.api.serializers import (
    AgentOutputSerializer,
    WeekDetailOutputSerializer,
    WeekOutputSerializer,
)


class TokenView(ObtainAuthToken):
    """POST username and password; returns the user's API token."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"


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
