from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from enclave_bridge import api as enclave_api
from prudencial.access import api as access_api
from prudencial.api import public, views
from prudencial.api.registry_feed import RegistryFeedView

app_name = "api"

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("auth/tokens/", access_api.TokenListView.as_view(), name="token-list"),
    path("auth/tokens/<int:pk>/", access_api.TokenRevokeView.as_view(), name="token-revoke"),
    path("agents/", views.AgentListView.as_view(), name="agent-list"),
    path("agents/<int:pk>/", views.AgentDetailView.as_view(), name="agent-detail"),
    path("registry/feed/", RegistryFeedView.as_view(), name="registry-feed"),
    path("registry/lookup/", public.RegistryLookupView.as_view(), name="registry-lookup"),
    path("schemas/portfolio.json", public.PortfolioSchemaView.as_view(), name="schema-portfolio"),
    path(
        "schemas/counterparties.json",
        public.CounterpartiesSchemaView.as_view(),
        name="schema-counterparties",
    ),
    path("weeks/", views.WeekListView.as_view(), name="week-list"),
    path("weeks/<str:code>/", views.WeekDetailView.as_view(), name="week-detail"),
    path(
        "weeks/<str:code>/templates/portfolio.xlsx",
        public.PortfolioTemplateView.as_view(),
        name="template-portfolio",
    ),
    path(
        "weeks/<str:code>/templates/counterparties.xlsx",
        public.CounterpartiesTemplateView.as_view(),
        name="template-counterparties",
    ),
    path("enclave/keys/", enclave_api.EnclaveKeyListView.as_view(), name="enclave-keys"),
    path("enclave/attestation/", enclave_api.AttestationView.as_view(), name="enclave-attestation"),
    # Submissions: weeks/{code}/agents/{id}/portfolio|counterparties|submissions/, weeks/{code}/
    # batch|progress/, batches/{id}/ (prudencial.submissions.urls).
    path("", include("prudencial.submissions.urls")),
    path("", include("prudencial.closing.urls")),
    path("", include("prudencial.alerts.urls")),
    path("", include("seal.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
