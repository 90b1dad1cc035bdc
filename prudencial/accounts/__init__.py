"""People's access to the platform: CCEE's single sign-on (OpenID Connect), and local accounts
created, reset and confirmed by e-mail when SSO is not configured (docs/accounts.md)."""
