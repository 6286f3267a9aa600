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


def test_every_setting_is_documented_in_env_example():
    import re

    from app.config import PROJECT_ROOT

    example = (PROJECT_ROOT / ".env.example").read_text()
    missing = [
        name.upper()
        for name in Settings.model_fields
        if not re.search(rf"^#?\s*{name.upper()}=", example, re.MULTILINE)
    ]
    assert missing == []


def test_development_audit_key_refused_outside_development():
    with pytest.raises(ValidationError, match="AUDIT_SIGNING_KEY"):
        Settings(
            _env_file=None,
            environment="production",
            twilio_auth_token="a-real-token",
            vapi_secret="a-real-vapi-secret",
            app_secret_key="a-long-random-app-secret",
        )
