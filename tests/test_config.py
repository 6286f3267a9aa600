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
    )
    assert ready.environment == "production"


def test_every_setting_is_documented_in_env_example():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in documented]
    assert missing == []
