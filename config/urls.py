from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("prudencial.api.urls")),
    path("accounts/", include("prudencial.accounts.urls")),  # login screen, SSO, e-mail links
    path("acesso/", include("prudencial.access.urls")),  # second-factor enrolment links
    # Public leverage, lookup and calendar; the agents' FA screen.
    path("", include("prudencial.closing.public_urls")),
    path("selo/", include("seal.public_urls")),  # public seal levels
    path("fator/", include("prudencial.closing.agent_urls", namespace="leverage")),  # agents' FA
]
if settings.DEBUG:
    urlpatterns += static(settings.STATIC_URL, document_root=settings.STATIC_ROOT)

handler404 = "prudencial.api.errors.handler404"
handler500 = "prudencial.api.errors.handler500"
