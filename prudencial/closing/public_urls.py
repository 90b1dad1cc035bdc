"""Public pages (no login) and the agents' web pages of the closing, mounted at / by config.urls."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
