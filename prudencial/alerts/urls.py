"""API routes of this app (mounted under /api/v1/ by prudencial.api.urls, namespace "api")."""

from django.urls import path

from prudencial.alerts import api

urlpatterns = [
    path("agents/<int:agent_id>/cases/", api.AgentCaseListView.as_view(), name="agent-cases"),
    path("cases/<int:pk>/comments/", api.CaseCommentsView.as_view(), name="case-comments"),
]
