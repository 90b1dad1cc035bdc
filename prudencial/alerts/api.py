"""API of the cases for the agent's users (and staff who may see the agent):

GET  agents/{id}/cases/          the agent's cases, newest first
GET  cases/{id}/comments/        the case's history (opened, assigned, comments, answer, closed)
POST cases/{id}/comments/        {"text", "answer": false}: a comment; "answer": true (the agent's
                                 users only) is the agent's response, and an open case is answered

A case or agent the caller may not see is 404, never 403 (its existence is not disclosed); a
staff member without ``alerts.change_case`` may read but not write (403); a closed case takes
no comment (409). The value is null for staff until the agent sent the result.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from prudencial.alerts import selectors, services
from prudencial.alerts.models import Case, CaseEvent
from prudencial.api.pagination import BoundedLimitOffsetPagination


class CaseOutputSerializer(serializers.ModelSerializer):
    week = serializers.CharField(source="week.code")
    agent = serializers.IntegerField(source="agent_id")
    closing_sequence = serializers.IntegerField(source="closing.sequence")
    figure_display = serializers.CharField(source="get_figure_display")
    band_display = serializers.CharField()
    value = serializers.SerializerMethodField()
    overdue = serializers.BooleanField(source="is_overdue")
    state_display = serializers.CharField(source="get_state_display")
    comments_url = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "id",
            "agent",
            "week",
            "closing_sequence",
            "figure",
            "figure_display",
            "value",
            "band",
            "band_display",
            "threshold",
            "opened_at",
            "response_due",
            "overdue",
            "state",
            "state_display",
            "decision",
            "decision_text",
            "decided_at",
            "comments_url",
        ]

    def get_value(self, case: Case) -> float | None:
        return case.value if selectors.value_visible(case, self.context["request"].user) else None

    def get_comments_url(self, case: Case) -> str:
        return reverse("api:case-comments", kwargs={"pk": case.pk})


class CaseEventOutputSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display")
    author = serializers.SerializerMethodField()
    assignee = serializers.SerializerMethodField()

    class Meta:
        model = CaseEvent
        fields = ["id", "kind", "kind_display", "side", "author", "assignee", "text", "at"]

    @staticmethod
    def _name(user) -> str | None:
        return (user.get_full_name() or user.get_username()) if user is not None else None

    def get_author(self, event: CaseEvent) -> str | None:
        return self._name(event.author)

    def get_assignee(self, event: CaseEvent) -> str | None:
        return self._name(event.assignee)


class CommentInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=services.COMMENT_MAX_CHARS, trim_whitespace=True)
    answer = serializers.BooleanField(default=False)


class AgentCaseListView(generics.ListAPIView):
    """The agent's cases (404 when you may not see the agent)."""

    serializer_class = CaseOutputSerializer

    def get_queryset(self):
        cases = selectors.agent_cases(user=self.request.user, agent_id=self.kwargs["agent_id"])
        if cases is None:
            raise NotFound
        return cases


class CaseCommentsView(APIView):
    """A case's history; POST adds a comment or, for the agent's users, the answer."""

    def _case(self, request, pk: int) -> Case:
        case = selectors.case_for_user(user=request.user, case_id=pk)
        if case is None:
            raise NotFound
        return case

    pagination_class = BoundedLimitOffsetPagination

    @extend_schema(responses=CaseEventOutputSerializer(many=True))
    def get(self, request, pk: int):
        case = self._case(request, pk)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.case_events(case), request, view=self)
        return paginator.get_paginated_response(CaseEventOutputSerializer(page, many=True).data)

    @extend_schema(request=CommentInputSerializer, responses={201: CaseEventOutputSerializer})
    def post(self, request, pk: int):
        case = self._case(request, pk)
        side = selectors.case_side(request.user, case)
        if side is None:
            raise PermissionDenied(_("Você pode ler este caso, mas não comentar nele."))
        data = CommentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.case_comment(
            case=case,
            by=request.user,
            text=data.validated_data["text"],
            side=side,
            answer=data.validated_data["answer"],
        )
        return Response(CaseEventOutputSerializer(event).data, status=status.HTTP_201_CREATED)
