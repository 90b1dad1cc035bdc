"""The claims the development provider gives: CPF (under ``DEVIDP_CPF_CLAIM``), e-mail (verified),
names and login, as CCEE's provider would."""

from django.conf import settings
from oauth2_provider.oauth2_validators import OAuth2Validator


class CpfClaimsValidator(OAuth2Validator):
    oidc_claim_scope = None  # every claim below, whatever the scopes

    def get_additional_claims(self, request):
        person = settings.DEVIDP_PEOPLE.get(request.user.username, {})
        claims = {
            "preferred_username": request.user.username,
            "email": person.get("email", request.user.email),
            "email_verified": bool(person.get("email_verified", True)),
            "given_name": person.get("given_name", request.user.first_name),
            "family_name": person.get("family_name", request.user.last_name),
        }
        if person.get("cpf") is not None:
            claims[settings.DEVIDP_CPF_CLAIM] = person["cpf"]
        return claims

    # prompt=none (the platform's silent session refresh). The authorization view signs the
    # person in first (LoginRequiredMixin), and the one client skips the consent screen, so a
    # silent request that reaches these checks has both. (A real provider answers
    # login_required to a prompt=none request without a session; this one shows its login form.)
    def validate_silent_login(self, request):
        return True

    def validate_silent_authorization(self, request):
        return True
