"""Signals other apps send so that the access audit records what they did.

``email_link_used(sender, user, purpose, ok)``: a link sent by e-mail was opened and acted on
(account creation or reset, forgotten login, second-factor enrolment). ``user`` is the account the
link is for (None when the link names no valid account), ``purpose`` a short code such as
"create_access", "reset_password", "forgot_login", "totp_enrolment", and ``ok`` False when the
link was refused (used, expired or tampered with). Send it with ``request=`` too when there is
one, so the audit keeps the client address. The receiver is ``prudencial.access.receivers``.
"""

from django.dispatch import Signal

email_link_used = Signal()
