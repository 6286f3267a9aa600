from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings


def test_development_defaults_run_out_of_the_box():
    settings = Settings(_env_file=None)
    assert settings.is_sqlite
    assert settings.vapi_secret is not None


def test_development_secrets_refused_outside_development():
    with pytest.raises(ValidationError, match="TWILIO_AUTH_TOKEN, VAPI_SECRET, APP_SECRET_KEY"):
        Settings(_env_file=None, environment="production")
    ready = Settings(
        _env_file=None,
        environment="production",
        twilio_auth_token="a-real-token",
        vapi_secret="a-real-vapi-secret",
        app_secret_key="a-long-random-app-secret",
        audit_signing_key="a-long-random-audit-key",
    )
    assert ready.environment == "production"
