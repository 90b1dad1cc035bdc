"""Signals of the access flows, for the access audit (prudencial/access) and anyone else.

Sign-ins, failures and sign-outs are Django's own ``user_logged_in``, ``user_login_failed`` and
``user_logged_out`` (sent by ``authenticate()``/``login()``/``logout()`` for the local form and
for the SSO callback alike). The e-mail links have these; every one is sent with
``sender=AccountState`` and ``request=`` the HTTP request (or None):

``access_requested(email, users)``
    Someone asked for a create/reset link for ``email``; ``users`` are the accounts a link was
    sent to (empty when the address is unknown: the page said the same thing).
``login_reminder_requested(email, users)``
    "Esqueceu o login de acesso?": ``users`` are the accounts whose logins were sent (only
    accounts whose confirmed e-mail is ``email``).
``link_sent(user, purpose)``
    An e-mail with a link went to ``user.email``; ``purpose`` is ``"access"`` (create or reset
    the password) or ``"confirmation"`` (confirm the address).
``link_used(user, purpose)``
    The link worked: the password was set (``"access"``), or the address confirmed.
``link_refused(user, purpose, reason)``
    A link was opened and refused; ``reason`` is ``"expired"`` or ``"invalid"`` (used already,
    superseded, or altered); ``user`` is None when the link names no account.
``email_confirmed(user, email, source)``
    ``email`` is now the account's confirmed address; ``source`` is ``"link"`` or ``"sso"``.
"""

from django.dispatch import Signal

access_requested = Signal()
login_reminder_requested = Signal()
link_sent = Signal()
link_used = Signal()
link_refused = Signal()
email_confirmed = Signal()
