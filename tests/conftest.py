"""Shared fixtures. Kept light: nothing here touches the database unless a test asks for a
fixture that does, so the pure packages (tests/risk, tests/enclave, tests/attestation) run
without one. Django and project imports stay inside the fixtures for the same reason."""

from __future__ import annotations

import pytest

STAFF_GROUP = "Equipe CCEE (teste)"


@pytest.fixture
def api_client():
    """An anonymous DRF test client."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def client_for(db):
    """client_for(user) → an APIClient that sends the user's real API token."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def make(user):
        token, _ = Token.objects.get_or_create(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def staff_group(db):
    """CCEE staff: the global view permission on every prudencial model."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    group.permissions.set(
        Permission.objects.filter(
            content_type__app_label="prudencial", codename__startswith="view_"
        )
    )
    return group


@pytest.fixture
def staff_user(staff_group):
    from tests.factories import UserFactory

    user = UserFactory(username="ccee.staff", is_staff=True)
    user.groups.add(staff_group)
    return user


@pytest.fixture
def ccee_staff(db):
    """A staff member of the real "Equipe CCEE" group (setup_roles), not a superuser."""
    from prudencial.management.commands.setup_roles import setup_staff_group
    from tests.factories import UserFactory

    group, _ = setup_staff_group()
    user = UserFactory(username="equipe.ccee", is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def superuser(db):
    from tests.factories import UserFactory

    return UserFactory(username="ccee.admin", is_staff=True, is_superuser=True)


@pytest.fixture
def agent_a(db):
    from tests.factories import AgentFactory

    return AgentFactory(acronym="AGA")


@pytest.fixture
def agent_b(db):
    from tests.factories import AgentFactory

    return AgentFactory(acronym="AGB")


@pytest.fixture
def agent_user(agent_a):
    """A user who controls agent A (and nothing else), in force since 30 days ago."""
    from tests.factories import UserFactory, grant

    user = UserFactory(username="joao.silva")
    grant(user, agent_a)
    return user
