"""Public pages of the seal (no login), mounted at /selo/ by config.urls."""

from django.urls import path

from seal import views

app_name = "seal"

urlpatterns = [path("", views.levels, name="levels")]
