"""API routes of the seal app (mounted under /api/v1/ by prudencial.api.urls)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
