"""What every Twilio webhook shares: the verified form as a dependency, and TwiML replies."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from app.security.rejections import audit_rejection
from app.security.twilio_signature import SignatureRejected, TwilioVerifier
from app.services import services_of

log = logging.getLogger(__name__)
TWIML_TYPE = "application/xml"


def twiml(document: object) -> Response:
    return Response(content=str(document), media_type=TWIML_TYPE)


async def verified_twilio_form(request: Request) -> FormData:
    # Settings read here rather than as a sub-dependency: one dependency less for FastAPI
    # to solve on every webhook, for a plain attribute read.
    settings = services_of(request).settings
    verifier = TwilioVerifier(
        settings.twilio_auth_token.get_secret_value(), settings.public_base_url
    )
    try:
        return await verifier.verified_form(request)
    except SignatureRejected as exc:
        log.warning("twilio webhook rejected on %s: %s", request.url.path, exc.reason)
        await audit_rejection(request, "twilio", exc.reason)
        raise HTTPException(status_code=exc.status_code, detail=exc.detail) from None


TwilioForm = Annotated[FormData, Depends(verified_twilio_form)]
