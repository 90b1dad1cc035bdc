from django.urls import path

from prudencial.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.AccountView.as_view(), name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("access/", views.AccessRequestView.as_view(), name="access"),
    path("access/<uidb64>/<token>/", views.AccessLinkView.as_view(), name="access-link"),
    path("forgot-login/", views.LoginReminderView.as_view(), name="forgot-login"),
    path("confirm/<uidb64>/<token>/", views.ConfirmEmailView.as_view(), name="confirm-email"),
    path("oidc/start/", views.OIDCStartView.as_view(), name="oidc-start"),
    path("oidc/callback/", views.OIDCCallbackView.as_view(), name="oidc-callback"),
]
