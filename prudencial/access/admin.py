"""Admin pages of access control: the audit (read-only, filtered by person and by record), who
holds staff access (and whether they have a second factor), API tokens (revoke)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from prudencial.access import enrolment, tokens
from prudencial.access.models import AccessToken, AuditEvent, StaffAccess
from prudencial.admin.common import LargeTableMixin
from prudencial.templatetags.prudencial_format import short_datetime


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PersonFilter(admin.SimpleListFilter):
    """By person: the account that acted, or the login typed in a failed attempt (?pessoa=)."""

    title = _("pessoa")
    parameter_name = "pessoa"

    def lookups(self, request, model_admin):
        return ()  # free text through the URL and the search box; no drop-down of every user

    def has_output(self) -> bool:
        return True

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": _("Todas"),
        }
        if self.value():
            yield {"selected": True, "query_string": "", "display": self.value()}

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        from django.db.models import Q

        return queryset.filter(Q(actor_username=value) | Q(username=value))


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, LargeTableMixin, admin.ModelAdmin):
    """Filter by person with ?pessoa=<login> (or ?actor__id__exact=<id>), by record with
    ?object_type=<app.model>&object_id=<id>; the search box finds logins, addresses and records."""

    list_display = ("seq", "when", "kind", "person", "ip_address", "record", "message_short")
    list_filter = ("kind", PersonFilter, "object_type", ("occurred_at", admin.DateFieldListFilter))
    search_fields = ("=actor_username", "=username", "=ip_address", "=object_id", "object_repr")
    list_select_related = ()
    ordering = ("-seq",)
    fields = (
        "seq",
        "occurred_at",
        "kind",
        "actor_id",
        "actor_username",
        "username",
        "ip_address",
        "object_type",
        "object_id",
        "object_repr",
        "message",
        "detail",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    @admin.display(description=_("quando"), ordering="occurred_at")
    def when(self, event: AuditEvent) -> str:
        return short_datetime(event.occurred_at)

    @admin.display(description=_("pessoa"), ordering="actor_username")
    def person(self, event: AuditEvent) -> str:
        if event.actor_username:
            url = reverse("admin:access_auditevent_changelist") + f"?pessoa={event.actor_username}"
            return format_html('<a href="{}">{}</a>', url, event.actor_username)
        return event.username or "—"

    @admin.display(description=_("registro"))
    def record(self, event: AuditEvent) -> str:
        if not event.object_type:
            return "—"
        url = (
            reverse("admin:access_auditevent_changelist")
            + f"?object_type={event.object_type}&object_id={event.object_id}"
        )
        return format_html(
            '<a href="{}">{} {}</a>', url, event.object_type, event.object_repr or event.object_id
        )

    @admin.display(description=_("descrição"))
    def message_short(self, event: AuditEvent) -> str:
        return (event.message or "")[:120]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        queryset = super().get_queryset(request)
        # ?object_id= comes with ?object_type= from the "registro" link.
        object_id = request.GET.get("object_id")
        if object_id:
            queryset = queryset.filter(object_id=object_id)
        return queryset

    def lookup_allowed(self, lookup: str, value: str, request=None) -> bool:
        if lookup in {"object_id", "actor__id__exact"}:
            return True
        return super().lookup_allowed(lookup, value, request)


@admin.register(StaffAccess)
class StaffAccessAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Everyone with access to this admin, superusers first: keep the list short."""

    list_display = (
        "username",
        "full_name",
        "is_superuser",
        "is_active",
        "second_factor",
        "groups_list",
        "last_login",
        "user_link",
    )
    list_filter = ("is_superuser", "is_active")
    search_fields = ("username", "first_name", "last_name", "email")
    ordering = ("-is_superuser", "username")
    actions = ["send_second_factor_enrolment"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[StaffAccess]:
        confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return (
            super()
            .get_queryset(request)
            .filter(is_staff=True)
            .annotate(has_device=Exists(confirmed))
            .prefetch_related("groups")
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        people = StaffAccess.objects.filter(is_staff=True, is_active=True)
        extra_context = {
            **(extra_context or {}),
            "title": _("Quem tem acesso de equipe: %(staff)s ativos, %(superusers)s superusuários")
            % {"staff": people.count(), "superusers": people.filter(is_superuser=True).count()},
        }
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("nome"))
    def full_name(self, user: StaffAccess) -> str:
        return user.get_full_name() or "—"

    @admin.display(description=_("segundo fator"), boolean=True, ordering="has_device")
    def second_factor(self, user: StaffAccess) -> bool:
        return user.has_device

    @admin.display(description=_("grupos"))
    def groups_list(self, user: StaffAccess) -> str:
        return ", ".join(sorted(g.name for g in user.groups.all())) or "—"

    @admin.display(description=_("conta"))
    def user_link(self, user: StaffAccess) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:prudencial_user_change", args=[user.pk]),
            _("abrir"),
        )

    @admin.action(description=_("Enviar por e-mail o cadastro do segundo fator"))
    def send_second_factor_enrolment(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not request.user.is_superuser:
            self.message_user(request, _("Só superusuários enviam cadastros."), messages.ERROR)
            return
        base_url = request.build_absolute_uri("/")
        for user in queryset:
            try:
                enrolment.enrolment_invite(user=user, by=request.user, base_url=base_url)
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request,
                    _("Cadastro do segundo fator enviado a %(email)s.") % {"email": user.email},
                )


@admin.register(AccessToken)
class AccessTokenAdmin(ReadOnlyMixin, LargeTableMixin, admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "expires_at", "status")
    list_filter = ("revoked_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("=user__username", "=prefix", "name")
    fields = list_display[:-1] + ("revoked_at", "revoked_by")
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description=_("situação"))
    def status(self, token: AccessToken) -> str:
        return {"active": _("em vigor"), "expired": _("expirado"), "revoked": _("revogado")}[
            token.status
        ]

    @admin.action(description=_("Revogar os tokens selecionados"), permissions=["view"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not request.user.is_superuser:
            self.message_user(
                request, _("Só superusuários revogam tokens de outros."), messages.ERROR
            )
            return
        for token in queryset:
            tokens.token_revoke(token=token, by=request.user)
        self.message_user(request, _("Tokens revogados."))
