"""Django admin of the prudential monitoring platform, for CCEE staff only (agents' users are
refused: the admin site admits active staff accounts and nothing else)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from prudencial.admin import agents, history, representations, users, weeks

admin.site.site_header = _("Plataforma de Monitoramento Prudencial — CCEE")
admin.site.site_title = _("Monitoramento Prudencial")
admin.site.index_title = _("Administração da CCEE")

__all__ = ["agents", "history", "representations", "users", "weeks"]
