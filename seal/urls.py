"""API routes of the seal app (mounted under /api/v1/ by prudencial.api.urls)."""

from django.urls import path

from seal import api

urlpatterns = [
    path("seal/levels/", api.LevelListView.as_view(), name="seal-levels"),
    path("seal/evaluations/", api.EvaluationListView.as_view(), name="seal-evaluation-list"),
    path(
        "seal/evaluations/<int:pk>/",
        api.EvaluationDetailView.as_view(),
        name="seal-evaluation-detail",
    ),
    path(
        "seal/evaluations/<int:pk>/responses/",
        api.ResponseCreateView.as_view(),
        name="seal-response-create",
    ),
    path(
        "seal/evaluations/<int:pk>/evidence/",
        api.EvidenceCreateView.as_view(),
        name="seal-evidence-create",
    ),
    path(
        "seal/evaluations/<int:pk>/adherence/",
        api.AdherenceView.as_view(),
        name="seal-adherence",
    ),
    path("seal/evidence/<int:pk>/file/", api.EvidenceFileView.as_view(), name="seal-evidence-file"),
]
