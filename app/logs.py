"""One logging configuration (stdlib dictConfig) for the app, uvicorn and the access
lines: text by default, one JSON object a line when LOG_JSON is set.

Every line of a request carries its request id and whatever the request has bound so
far (`bind`): the Twilio call or message sid, the agent and the channel. Full phone
numbers never reach a line, whoever logged them and how.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

from opentelemetry import trace

request_id: ContextVar[str] = ContextVar("request_id", default="-")
# One dict per request, filled in place: FastAPI runs sync endpoints and dependencies in
# worker threads with a *copy* of the context, and a copy still holds the same dict.
_bound: ContextVar[dict[str, str] | None] = ContextVar("log_fields", default=None)
BOUND_FIELDS = ("call_sid", "message_sid", "agent_id", "channel")


def bind(**fields: str | None) -> None:
    """Add fields to every later log line of this request (empty values are skipped).

    Outside a request (a job thread, a script) there is nothing to bind to: setting the
    context there would stamp one job's ids on every later line of that thread."""
    current = _bound.get()
    if current is None:
        return
    current.update({k: v for k, v in fields.items() if v and k in BOUND_FIELDS})


def bound() -> dict[str, str]:
    return dict(_bound.get() or {})


@contextmanager
def fields_scope() -> Iterator[dict[str, str]]:
    """A fresh set of bound fields for one request (the access line reads them last)."""
    fields: dict[str, str] = {}
    token = _bound.set(fields)
    try:
        yield fields
    finally:
        _bound.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        fields = _bound.get() or {}
        for name in BOUND_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name))
        record.trace_id = _trace_id()
        return True


def _trace_id() -> str | None:
    """The current OpenTelemetry trace (when tracing is on), to find a line's spans."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class PhoneMaskFilter(logging.Filter):
    """Full phone numbers never reach a log line, whoever logged them and how."""

    def filter(self, record: logging.LogRecord) -> bool:
        from app.security.audit import mask_phones

        message = record.getMessage()
        masked = mask_phones(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL [request id] logger: message call_sid=… agent_id=…`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(
            f"{name}={value}" for name in BOUND_FIELDS if (value := getattr(record, name, None))
        )
        return f"{line} {extra}" if extra else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for name in (*BOUND_FIELDS, "trace_id"):
            value = getattr(record, name, None)
            if value:
                payload[name] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def logging_config(level: str = "INFO", as_json: bool = False) -> dict[str, Any]:
    """The dictConfig: one handler on the root logger; uvicorn's loggers propagate to it.
    uvicorn's own access logger stays quiet: app/access_log.py writes the access lines,
    with secrets in query strings redacted."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": ContextFilter},
            "phones": {"()": PhoneMaskFilter},
        },
        "formatters": {
            "text": {"()": TextFormatter},
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "filters": ["context", "phones"],
                "formatter": "json" if as_json else "text",
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            # Levels stated: an earlier uvicorn.run(log_level=...) in the process set its own.
            "uvicorn": {"handlers": [], "propagate": True, "level": level.upper()},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level.upper()},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            # twilio's REST client logs every request's URL and headers at INFO.
            "twilio.http_client": {"level": "WARNING"},
        },
    }


def configure_logging(
    level: str = "INFO", as_json: bool = False, stream: IO[str] | None = None
) -> None:
    """Apply the configuration (`stream`: where lines go instead of stderr, for tests)."""
    config = logging_config(level, as_json)
    if stream is not None:
        config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    # dictConfig leaves a logger another configuration disabled (alembic's fileConfig
    # disables every logger it does not name) disabled, even when it names it.
    for name in config["loggers"]:
        logging.getLogger(name).disabled = False
