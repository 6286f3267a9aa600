"""Fixtures shared by the webhook tests: the VAPI client lives with the VAPI tests."""

from tests.webhooks.test_vapi import vapi, vapi_client

__all__ = ["vapi", "vapi_client"]
