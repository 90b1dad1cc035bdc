from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path


def home(request):
    return HttpResponse(
        "Provedor OpenID de desenvolvimento (django-oauth-toolkit): "
        "/o/.well-known/openid-configuration\n",
        content_type="text/plain; charset=utf-8",
    )


urlpatterns = [
    path("", home),
    path("login/", auth_views.LoginView.as_view(template_name="devidp/login.html"), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
