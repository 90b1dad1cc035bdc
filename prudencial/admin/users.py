"""Users (CCEE staff and agents' people), identified by CPF; Django's UserAdmin plus the CPF.

Staff who are not superusers manage agents' users but cannot raise anyone's privileges: the
staff/superuser flags, groups and permissions are read-only for them, and the accounts of
superusers and of other staff members (password included) are out of their reach.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from prudencial.admin.common import LargeTableMixin, MaskedCPFField
from prudencial.models import Representation, User
from prudencial.templatetags.prudencial_format import short_date
from prudencial.validators import normalize_cpf

_PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")


class UserChangeFormWithCPF(UserChangeForm):
    cpf = MaskedCPFField(label=_("CPF"), required=False, help_text=_("Com ou sem máscara."))

    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.cpf:
            self.initial["cpf"] = self.instance.cpf_display


class UserCreationFormWithCPF(AdminUserCreationForm):
    cpf = MaskedCPFField(label=_("CPF"), required=False, help_text=_("Com ou sem máscara."))

    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "cpf", "first_name", "last_name", "email")


class BoundedInlineFormSet(BaseInlineFormSet):
    """Shows the first `limit` rows only: a representative firm's user may hold thousands of
    representations, which belong on the filtered list, not on the change page."""

    limit = 20

    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_bounded_queryset"):
            self._bounded_queryset = super().get_queryset()[: self.limit]
        return self._bounded_queryset


class RepresentationReadOnlyInline(admin.TabularInline):
    """The agents this user acts for (the latest BoundedInlineFormSet.limit; the rest on the
    representation list filtered by the user, linked from the page); granted and ended on the
    representation pages."""

    model = Representation
    fk_name = "user"
    formset = BoundedInlineFormSet
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("agent", "role", "period")
    readonly_fields = fields
    verbose_name = _("representação")
    verbose_name_plural = _("agentes que controla ou representa (as 20 mais recentes)")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Representation]:
        # The row's text (str(rep)) reads user and agent: both joined, not one query per row.
        return (
            super()
            .get_queryset(request)
            .select_related("agent", "user")
            .order_by("-valid_from", "-pk")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("vigência"))
    def period(self, rep: Representation) -> str:
        return f"{short_date(rep.valid_from)} – {short_date(rep.valid_until) if rep.valid_until else _('sem término')}"


@admin.register(User)
class UserAdmin(LargeTableMixin, DjangoUserAdmin):
    form = UserChangeFormWithCPF
    add_form = UserCreationFormWithCPF
    list_display = (
        "username",
        "cpf_masked",
        "first_name",
        "last_name",
        "email",
        "is_staff",
        "is_active",
    )
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("username", "first_name", "last_name", "email", "cpf")
    inlines = [RepresentationReadOnlyInline]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Dados pessoais"), {"fields": ("first_name", "last_name", "cpf", "email")}),
        (_("Representações"), {"fields": ("representations_link",)}),
        (_("Permissões"), {"fields": ("is_active", *_PRIVILEGE_FIELDS)}),
        (_("Datas importantes"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "username",
                    "cpf",
                    "first_name",
                    "last_name",
                    "email",
                    "usable_password",
                    "password1",
                    "password2",
                ),
            },
        ),
    )

    @admin.display(description=_("CPF"), ordering="cpf")
    def cpf_masked(self, user: User) -> str:
        return user.cpf_display or "—"

    @admin.display(description=_("representações"))
    def representations_link(self, user: User) -> str:
        """How many representations the user holds (one COUNT), linked to the list filtered
        by the user, where they are searched, ended and exported."""
        if user.pk is None:
            return "—"
        count = user.representations.count()
        url = reverse("admin:prudencial_representation_changelist") + f"?user__id__exact={user.pk}"
        return format_html(
            '<a href="{}">{}</a>', url, _("%(n)s representações: ver a lista") % {"n": count}
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        readonly = ("representations_link", *super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += _PRIVILEGE_FIELDS
        return readonly

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """A CPF typed with its mask still finds the user."""
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        digits = normalize_cpf(search_term.strip())
        if digits.isdigit() and len(digits) >= 3 and digits != search_term.strip():
            queryset |= self.model.objects.filter(Q(cpf__startswith=digits))
        return queryset, may_have_duplicates

    @staticmethod
    def _out_of_reach(request: HttpRequest, obj: Any) -> bool:
        """Staff who are not superusers manage agents' users only: superusers and other staff
        members (their data, password included) are out of reach; their own account is not."""
        if obj is None or request.user.is_superuser:
            return False
        return obj.is_superuser or (obj.is_staff and obj.pk != request.user.pk)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Also guards the password form (UserAdmin.user_change_password asks this).
        if self._out_of_reach(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._out_of_reach(request, obj):
            return False
        return super().has_delete_permission(request, obj)
