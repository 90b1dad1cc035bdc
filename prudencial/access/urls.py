from django.urls import path

from prudencial.access import views

app_name = "access"

urlpatterns = [
    path("segundo-fator/<str:value>/", views.totp_enrol, name="totp-enrol"),
]
