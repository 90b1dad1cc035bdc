"""Domain errors that the API and the admin turn into clear messages."""

from django.core.exceptions import ValidationError


class TransitionError(ValidationError):
    """A week status change that the lifecycle does not allow (HTTP 409 in the API)."""
