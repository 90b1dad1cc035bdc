"""Services write: every change to the registry goes through these functions (HackSoft style)."""
