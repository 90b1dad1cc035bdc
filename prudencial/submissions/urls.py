"""URLs of the submissions, included under /api/v1/ in the "api" namespace."""

from django.urls import path

from prudencial.submissions import api

urlpatterns = [
    path(
        "weeks/<str:code>/agents/<int:agent_id>/portfolio/",
        api.PortfolioCreateView.as_view(),
        name="submission-portfolio",
    ),
    path(
        "weeks/<str:code>/agents/<int:agent_id>/counterparties/",
        api.CounterpartiesCreateView.as_view(),
        name="submission-counterparties",
    ),
    path(
        "weeks/<str:code>/agents/<int:agent_id>/submissions/",
        api.SubmissionListView.as_view(),
        name="submission-list",
    ),
    path("weeks/<str:code>/batch/", api.BatchCreateView.as_view(), name="batch-create"),
    path("weeks/<str:code>/progress/", api.ProgressView.as_view(), name="week-progress"),
    path("batches/<int:pk>/", api.BatchDetailView.as_view(), name="batch-detail"),
]
