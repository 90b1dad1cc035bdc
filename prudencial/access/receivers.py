"""What the access audit listens to: Django's sign-in signals (every door: the admin, the web
pages, the OIDC sign-in, the token endpoint's failures), django-axes' lockouts, the e-mail links
(``prudencial.access.signals.email_link_used``) and the admin's log of actions on records.

Token creation and revocation are recorded by their services (``prudencial.access.tokens``).
"""

from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry, LogEntryManager
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import post_save

from prudencial.access import audit
from prudencial.access.models import AuditKind
from prudencial.access.signals import email_link_used

ADMIN_ACTIONS = {ADDITION: "addition", CHANGE: "change", DELETION: "deletion"}


def _address(request) -> str:
    if request is None:
        return ""
    from prudencial.api.addresses import client_address

    return client_address(request) or ""


def _path(request) -> str:
    return getattr(request, "path", "") if request is not None else ""


def on_logged_in(sender, request, user, **kwargs):
    audit.record(
        AuditKind.LOGIN,
        actor=user,
        username=user.get_username(),
        ip_address=_address(request),
        detail={"path": _path(request), "backend": getattr(user, "backend", "") or ""},
    )


def on_logged_out(sender, request, user, **kwargs):
    if user is None:
        return
    audit.record(
        AuditKind.LOGOUT, actor=user, username=user.get_username(), ip_address=_address(request)
    )


def on_login_failed(sender, credentials, request=None, **kwargs):
    from django.conf import settings

    reason = kwargs.get("reason") or (
        "locked_out" if getattr(request, "axes_locked_out", False) else "credentials"
    )
    audit.record(
        AuditKind.LOGIN_FAILED,
        username=str(credentials.get(settings.AXES_USERNAME_FORM_FIELD) or ""),
        ip_address=_address(request),
        detail={"path": _path(request), "reason": reason},
    )


def on_locked_out(sender, request, username, ip_address, **kwargs):
    from django.conf import settings

    audit.record(
        AuditKind.LOCKOUT,
        username=str(username or ""),
        ip_address=str(ip_address or ""),
        detail={
            "path": _path(request),
            "failures": getattr(request, "axes_failures_since_start", None),
            "cool_off_seconds": int(settings.AXES_COOLOFF_TIME.total_seconds()),
        },
    )


def on_email_link_used(sender, user, purpose, ok, request=None, **kwargs):
    audit.record(
        AuditKind.EMAIL_LINK,
        actor=user,
        username=user.get_username() if user is not None else "",
        ip_address=_address(request),
        message=str(purpose),
        detail={"purpose": str(purpose), "ok": bool(ok)},
    )


def admin_action_event(entry: LogEntry, user=None) -> dict:
    content_type = (
        ContentType.objects.get_for_id(entry.content_type_id) if entry.content_type_id else None
    )
    return audit.event(
        AuditKind.ADMIN_ACTION,
        actor=user or entry.user,
        object_type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
        object_id=entry.object_id or "",
        object_repr=entry.object_repr,
        message=entry.get_change_message(),
        detail={"action": ADMIN_ACTIONS.get(entry.action_flag, str(entry.action_flag))},
        occurred_at=entry.action_time,
    )


def on_log_entry_saved(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        audit.append([admin_action_event(instance)])


class AuditedLogEntryManager(LogEntryManager):
    """The admin logs actions on several objects at once (bulk delete, an import) with
    bulk_create, which sends no post_save: record those here. One object goes through save()."""

    def log_actions(
        self, user_id, queryset, action_flag, change_message="", *, single_object=False
    ):
        result = super().log_actions(
            user_id, queryset, action_flag, change_message, single_object=single_object
        )
        entries = result if isinstance(result, list) else []
        if len(entries) > 1:
            user = get_user_model().objects.filter(pk=user_id).first()
            audit.append([admin_action_event(entry, user) for entry in entries])
        return result


def connect() -> None:
    user_logged_in.connect(on_logged_in, dispatch_uid="access_audit_login")
    user_logged_out.connect(on_logged_out, dispatch_uid="access_audit_logout")
    user_login_failed.connect(on_login_failed, dispatch_uid="access_audit_login_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="access_audit_lockout")
    email_link_used.connect(on_email_link_used, dispatch_uid="access_audit_email_link")
    post_save.connect(on_log_entry_saved, sender=LogEntry, dispatch_uid="access_audit_admin")
    # Same state, one more method: bulk-logged admin actions reach the audit too.
    LogEntry.objects.__class__ = AuditedLogEntryManager
