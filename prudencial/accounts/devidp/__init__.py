"""A development OpenID provider: django-oauth-toolkit's OIDC provider in a small Django project
of its own, run as a separate process (``python -m prudencial.accounts.devidp``) by ``make demo``
(``run_demo``), ``manage.py run_devidp`` and the tests. It stands in for CCEE's identity
provider: authorization code with PKCE required, RS256 ID tokens with the CPF claim, userinfo,
refresh tokens and RP-initiated logout. Never part of a deployment. See docs/accounts.md."""
