"""Public pages of the seal (no login), mounted at /selo/ by config.urls."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
