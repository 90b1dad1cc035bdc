"""Access control for people: expiring API tokens, the admin's second factor (TOTP), the list of
who holds staff access, and the hash-chained, append-only access audit (docs/access.md)."""
