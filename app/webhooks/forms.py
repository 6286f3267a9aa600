"""The form fields Twilio posts to each webhook, for the OpenAPI document.

The handlers read the signed FormData itself (every field is part of the signature), so
FastAPI cannot see these fields; `document_forms` publishes them as each operation's
request body. Only fields the handlers read are listed; Twilio sends more (kept: extra).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

FORM = "application/x-www-form-urlencoded"


class TwilioFormBase(BaseModel):
    model_config = ConfigDict(extra="allow")
    AccountSid: str = Field(description="Our Twilio account (AC...)")


class InboundSms(TwilioFormBase):
    MessageSid: str = Field(description="SM...; a retried webhook repeats it")
    From: str = Field(description="the sender, E.164")
    To: str = Field(description="our number, E.164")
    Body: str = Field(description="the text")
    OptOutType: str | None = Field(None, description="STOP, START or HELP when Twilio saw one")


class MessageStatus(TwilioFormBase):
    MessageSid: str
    MessageStatus: str = Field(description="queued, sent, delivered, undelivered, failed, ...")
    ErrorCode: str | None = Field(None, description="Twilio's error code when it failed")


class InboundCall(TwilioFormBase):
    CallSid: str = Field(description="CA...; a retried webhook repeats it")
    From: str = Field(description="the caller, E.164")
    To: str = Field(description="the number dialled, E.164")
    CallStatus: str = Field(description="ringing for a new call")
    StirVerstat: str | None = Field(
        None, description="STIR/SHAKEN verdict, e.g. TN-Validation-Passed-A; absent if none"
    )


class GatherResult(TwilioFormBase):
    CallSid: str
    SpeechResult: str | None = Field(None, description="what the caller said")
    Confidence: str | None = Field(None, description="0..1 speech recognition confidence")
    Digits: str | None = Field(None, description="keypresses (a PIN) instead of speech")


class CallStatus(TwilioFormBase):
    CallSid: str
    CallStatus: str = Field(description="completed, busy, no-answer, failed, canceled")
    CallDuration: str | None = Field(None, description="seconds")
    Timestamp: str | None = None
    SequenceNumber: str | None = None


class NotificationStatus(TwilioFormBase):
    MessageSid: str | None = Field(None, description="for a text")
    CallSid: str | None = Field(None, description="for a reminder call")
    MessageStatus: str | None = None
    CallStatus: str | None = None
    ErrorCode: str | None = None


class ReminderKey(TwilioFormBase):
    CallSid: str
    Digits: str | None = Field(None, description="1 confirms, 2 cancels, ...")


class CallFallback(TwilioFormBase):
    CallSid: str | None = None
    ErrorCode: str | None = Field(None, description="why Twilio gave up on our webhook")
    ErrorUrl: str | None = None


FORMS: dict[str, type[BaseModel]] = {
    "/webhooks/twilio/sms/inbound": InboundSms,
    "/webhooks/twilio/sms/status": MessageStatus,
    "/webhooks/twilio/voice/inbound": InboundCall,
    "/webhooks/twilio/voice/gather": GatherResult,
    "/webhooks/twilio/voice/status": CallStatus,
    "/webhooks/twilio/voice/fallback": CallFallback,
    "/webhooks/twilio/notifications/status": NotificationStatus,
    "/webhooks/twilio/notifications/call/{notification_id}/gather": ReminderKey,
}


def form_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {FORM: {"schema": schema}}}}


def document_forms(*routers: APIRouter) -> None:
    """Publish each Twilio webhook's form fields as its OpenAPI request body (on the
    routers themselves: an app's routes are included-router wrappers in FastAPI 0.165)."""
    for route in (r for router in routers for r in router.routes):
        if isinstance(route, APIRoute) and route.path in FORMS:
            route.openapi_extra = {**(route.openapi_extra or {}), **form_body(FORMS[route.path])}
