"""One Settings object for the whole service; every field is documented in .env.example."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where alembic/ and data/ live: the checkout, or APP_HOME when the package is installed
# non-editable (the container image sets it).
PROJECT_ROOT = Path(os.environ.get("APP_HOME") or Path(__file__).resolve().parent.parent)
DEV_TWILIO_TOKEN = "dev-twilio-auth-token"
DEV_VAPI_SECRET = "dev-vapi-secret"
DEV_APP_SECRET = "dev-only-secret-change-me"
DEV_AUDIT_SIGNING_KEY = "dev-only-audit-signing-key"
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'data' / 'scheduling.db'}"


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting's value (often a secret) never appears in
    # the error.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    environment: str = "development"
    log_level: str = "INFO"
    log_json: bool = False
    otel_exporter_otlp_endpoint: str = ""
    otel_service_name: str = "scheduling-agent"

    # Database: SQLite file by default, PostgreSQL in production.
    database_url: str = DEFAULT_SQLITE_URL
    database_pool_size: int = 10
    # PostgreSQL: replace connections older than this many seconds. No ping before each
    # use by default (a round trip per request): a webhook turn whose connection turns out
    # dead is run again once on a fresh one (app/webhooks/turns.py), and a dead
    # connection empties the pool of its siblings. DATABASE_PRE_PING=true pings anyway.
    database_pre_ping: bool = False
    database_pool_recycle_seconds: int = 1800
    # psycopg prepares a statement on a connection after this many executions of it
    # (0: at once); the server then skips parsing and planning it. -1: never (for
    # poolers in transaction mode that cannot keep prepared statements).
    database_prepare_threshold: int = 2
    # Webhook and call turns whose Python runs at once in one process; the rest wait
    # their turn without using the CPU (app/webhooks/turns.py). More adds GIL hand-offs,
    # not throughput; a turn waiting on a calendar or a model gives its slot back.
    turn_concurrency: int = Field(default=4, ge=1)

    # Shared rate-limit storage; in-memory when unset.
    redis_url: str | None = None

    # The public URL Twilio and VAPI call; signatures are computed over it, never over
    # what a proxy claims in X-Forwarded-* headers.
    public_base_url: str = "http://127.0.0.1:8000"

    # Twilio
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr = SecretStr(DEV_TWILIO_TOKEN)
    # The shared agent number everyone calls or texts (E.164).
    agent_number: str = "+15005550006"
    default_region: str = "US"
    # What an unregistered caller is told about signing up.
    registration_instructions: str = (
        "Ask the service's operator to add and verify your number, then text again."
    )

    # VAPI credential: a bearer secret in a header, or an HMAC secret.
    # Development default so `python -m app vapi` works out of the box; outside
    # ENVIRONMENT=development the development defaults refuse to start (see below).
    vapi_secret: SecretStr | None = SecretStr(DEV_VAPI_SECRET)
    vapi_secret_header: str = "X-Vapi-Secret"
    vapi_hmac_secret: SecretStr | None = None
    vapi_hmac_tolerance_seconds: int = 300
    # Set when VAPI authenticates with a stored credential (e.g. HMAC): the assistants we
    # hand out then name it (server.credentialId) instead of carrying the bearer secret.
    vapi_credential_id: str | None = None
    # Voice of the assistants handed to VAPI.
    vapi_voice_provider: str = "vapi"
    vapi_voice_id: str = "Elliot"
    # The OpenAI model VAPI runs the assistants we hand out on (VAPI calls it, not us).
    openai_model: str = "gpt-4o-mini"
    # Work on one VAPI request gets this long before it answers with an apology
    # (VAPI gives assistant-request 7.5 s).
    vapi_budget_seconds: float = 5.0

    # Twilio voice: speech recognition model for <Gather> ("" = Twilio's default, which
    # allows speechTimeout="auto"); with a model the end of speech is a fixed pause.
    twilio_speech_model: str = "phone_call"
    twilio_speech_timeout_seconds: int = 2
    # Seconds of silence before a <Gather> gives up and reports an empty result.
    twilio_gather_timeout_seconds: int = 6
    # One voice turn gets this long before the caller hears an apology (Twilio: 15 s).
    voice_turn_budget_seconds: float = 8.0
    # Streamed calls (agents with voice_mode "stream"): Twilio Media Streams with Deepgram
    # speech-to-text and text-to-speech. Without a key every call uses <Gather>.
    deepgram_api_key: SecretStr | None = None
    # Deepgram's REST (speech synthesis) and WebSocket (live transcription) base URLs;
    # tests, the simulator and benchmarks point them at a local fake.
    deepgram_api_url: str = "https://api.deepgram.com"
    deepgram_ws_url: str = "wss://api.deepgram.com"
    deepgram_stt_model: str = "nova-2-phonecall"
    deepgram_tts_model: str = "aura-2-thalia-en"
    # Silence (ms) that ends a phrase, and the gap that ends an utterance (one turn).
    deepgram_endpointing_ms: int = 300
    deepgram_utterance_end_ms: int = 1000
    # Caller audio is sent to Deepgram in chunks of this many ms (Twilio's frames are 20 ms;
    # Deepgram asks for 20-250): each send is a masked WebSocket frame (two system calls
    # and the SDK's and websockets' Python), still the largest share of the event loop's
    # work per frame at 80 ms. 100 ms (5 frames) sends a fifth less often than 80 and
    # delays what Deepgram hears by at most 80 ms (40 on average) more than single frames
    # would: small beside the 300 ms of silence endpointing waits for anyway.
    deepgram_audio_chunk_ms: int = 100
    # Deepgram must answer within this, or the call goes on with <Gather>.
    deepgram_connect_timeout_seconds: float = 3.0
    # How long the signed stream token in the <Stream> parameters stays valid.
    stream_token_seconds: int = 60
    # Seconds without speech after the agent spoke before it asks again.
    stream_silence_seconds: float = 8.0
    # Time for one SMS turn before the texter gets an apology (Twilio waits 15 s).
    sms_turn_budget_seconds: float = 10.0
    # PIN checks for callers whose caller ID is not attested: attempts per call, and a
    # limit per caller number across calls (limits notation).
    pin_max_attempts_per_call: int = 3
    rate_limit_pin: str = "5/hour"

    # Conversation engine behind app/agent/engine.py's Engine interface: "offline" (rules,
    # no network) or "openai" (a model on any OpenAI-compatible endpoint; the offline
    # engine answers any turn the model cannot).
    conversation_engine: str = "offline"
    # OpenAI-compatible endpoint for CONVERSATION_ENGINE=openai (OPENAI_MODEL above names
    # the model). Unset base URL: api.openai.com. A local server may need no key.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_temperature: float = 0.2
    # One model request; the per-turn budgets below cap the whole tool loop.
    openai_timeout_seconds: float = 4.0
    # Model time per turn, under the webhook budgets so the fallback still answers.
    openai_sms_budget_seconds: float = 6.0
    openai_voice_budget_seconds: float = 4.5
    openai_max_tool_rounds: int = 4
    openai_max_output_tokens: int = 300
    # Transcript sent with each turn, newest first, up to about this many tokens.
    openai_history_tokens: int = 1500

    # SMS conversation state older than this starts afresh.
    conversation_idle_minutes: int = 120

    # Rate limits, in the limits library's notation ("30/minute;200/hour").
    rate_limit_webhook: str = "30/minute"
    rate_limit_default: str = "120/minute"
    rate_limit_enabled: bool = True

    # Token vault: comma-separated Fernet keys, newest first.
    token_encryption_keys: SecretStr | None = None

    # Without TOKEN_ENCRYPTION_KEYS, development keeps a generated key in this file
    # (created on first use, mode 0600); any other environment refuses Google connections.
    token_key_file: Path = PROJECT_ROOT / "data" / "token-encryption.key"

    # Without a Twilio account, development writes the texts it could not send here
    # (read with `python -m app outbox`); logs only ever get them with secrets withheld.
    dev_outbox_file: Path = PROJECT_ROOT / "data" / "outbox.txt"

    # Google OAuth client: ID + secret, or the client secrets JSON downloaded from the
    # Google Cloud console (the file wins when both are set).
    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    google_client_secrets_file: Path | None = None
    google_calendar_api_endpoint: str | None = None
    # "all", "externalOnly" or "none": whether Google emails attendees about changes.
    google_send_updates: str = "none"
    # One HTTP call to Google, and all Google time within one request (webhook budgets).
    google_http_timeout_seconds: float = 2.0
    google_request_budget_seconds: float = 4.0
    # Free/busy answers are reused this long within a conversation.
    google_freebusy_cache_seconds: float = 30.0
    # When Google's free/busy does not answer, an answer up to this old stands in.
    google_freebusy_stale_seconds: float = 600.0
    # Microsoft 365 (Entra ID app registration, "Web" platform, delegated permissions).
    # The authority names the tenant: .../organizations (work or school accounts, any
    # tenant), .../common (also personal accounts) or .../<tenant id> (one company).
    microsoft_client_id: str | None = None
    microsoft_client_secret: SecretStr | None = None
    microsoft_authority: str = "https://login.microsoftonline.com/organizations"
    microsoft_graph_base_url: str = "https://graph.microsoft.com/v1.0"
    # A CA bundle to trust for the authority and Graph (a private proxy, the local fake).
    microsoft_ca_bundle: Path | None = None
    # Graph calls share Google's budgets and cache settings above (same promises to
    # callers whichever calendar the owner uses).
    # Two-way sync. With an https PUBLIC_BASE_URL, connected calendars push changes
    # (Google events.watch channels, Graph subscriptions) lasting CALENDAR_WATCH_HOURS
    # and renewed CALENDAR_WATCH_RENEW_HOURS before they expire; polling with sync
    # tokens / delta links every CALENDAR_POLL_SECONDS catches anything a push missed
    # (and is all there is without a public URL).
    calendar_push_enabled: bool = True
    calendar_watch_hours: float = 144.0
    calendar_watch_renew_hours: float = 24.0
    calendar_poll_seconds: float = 60.0
    # Push notifications accepted per channel (a provider retrying in a loop, a flood).
    rate_limit_calendar_push: str = "120/minute"
    # How long a calendar connect link stays valid, and a started consent screen.
    calendar_connect_link_minutes: int = 7 * 24 * 60
    oauth_state_minutes: int = 15
    # Pending calendar writes: swept by the background jobs every N seconds (0: 30 s).
    calendar_sync_interval_seconds: float = 0.0
    calendar_sync_batch: int = 100
    # A booking's write to Google / Microsoft 365 runs after its commit on a small thread
    # pool of the web process, so the caller's answer does not wait for it (False: on
    # the request's own thread, after the commit, as before).
    calendar_writes_in_background: bool = True

    # Background work (confirmations, reminders, owner notifications, calendar sync):
    # "embedded" runs the jobs in-process inside `serve` (SQLite default, no extra
    # service); "procrastinate" runs them on PostgreSQL's job queue in separate
    # `python -m app worker` processes, and `serve` runs none.
    job_engine: str = "embedded"
    # Procrastinate jobs each worker process runs at once (notification drains included).
    worker_concurrency: int = 3
    # Twilio REST API base (a local fake in tests and benchmarks; empty: Twilio's own).
    twilio_api_base_url: str | None = None
    twilio_http_timeout_seconds: float = 5.0
    # Messages per second one sending number may send (a US long code: about 1);
    # 0: no limit. Due bursts start early enough to finish on time.
    sms_sender_mps: float = 1.0
    # How often workers look for due notifications, and how many one claim takes.
    notify_tick_seconds: float = 1.0
    notify_batch: int = 50
    # A notification claimed this long ago and never answered is marked "unknown"
    # (the worker died mid-send); it is never resent blindly.
    notify_send_lease_seconds: int = 120
    # Earliest a notification may go out ahead of its due time to spread a burst
    # (a reminder also at most 1/24 of its lead: 5 minutes for a 2 h reminder).
    notify_max_early_minutes: int = 30
    # What the workers together send per second: the send planner starts a burst early
    # enough at this rate (or at the measured one when the workers fall behind).
    notify_throughput_per_second: float = 50.0
    # How often the send planner looks ahead at the backlog.
    notify_plan_seconds: float = 5.0
    # Sends Twilio refused with 429/503 are retried this many times.
    notify_max_attempts: int = 5

    # Secret used to sign connect links and other short-lived tokens.
    app_secret_key: SecretStr = SecretStr(DEV_APP_SECRET)

    # Audit checkpoints and entries are HMAC-signed with this key. It must live outside
    # the database (a secret store), so whoever can write the database cannot re-sign it.
    audit_signing_key: SecretStr = SecretStr(DEV_AUDIT_SIGNING_KEY)
    # The seal chains new audit entries in order every N seconds (0: off; run
    # `python -m app audit seal --loop` as a worker instead), up to N entries per batch.
    audit_seal_interval_seconds: float = 1.0
    audit_seal_batch: int = 1000

    # Admin API and hardening.
    # Per API key on the admin API (limits notation).
    rate_limit_admin: str = "600/minute"
    # Prefix of every rate-limit key in the shared storage (one per deployment).
    rate_limit_key_prefix: str = "sched"
    # Largest request body accepted, in bytes (413 above it).
    max_body_bytes: int = 1_048_576
    # Comma-separated origins allowed by CORS; empty: no cross-origin access.
    cors_origins: str = ""
    # Comma-separated proxy addresses/networks whose X-Forwarded-For is believed.
    trusted_proxies: str = ""
    # Phone verification codes.
    verification_code_ttl_minutes: int = 10
    verification_max_attempts: int = 5
    # Owner dashboard: texted sign-in link/code lifetime, browser session length, and
    # sign-in requests allowed per phone number and per client address.
    dashboard_sign_in_minutes: int = 10
    dashboard_session_hours: int = 12
    rate_limit_dashboard_sign_in: str = "5/15 minutes"

    # Fill the database with a demo user, agent and phone numbers at start-up.
    demo_data: bool = False

    # Baseline endpoints for the benchmarks under bench/ (/_bench/...); off in production.
    bench_endpoints: bool = False

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _no_development_secrets_elsewhere(self) -> Settings:
        """Development defaults are public; anywhere else they would let anyone in."""
        if self.environment == "development":
            return self
        defaults = {
            "TWILIO_AUTH_TOKEN": (self.twilio_auth_token, DEV_TWILIO_TOKEN),
            "VAPI_SECRET": (self.vapi_secret, DEV_VAPI_SECRET),
            "APP_SECRET_KEY": (self.app_secret_key, DEV_APP_SECRET),
            "AUDIT_SIGNING_KEY": (self.audit_signing_key, DEV_AUDIT_SIGNING_KEY),
        }
        left = [
            name
            for name, (value, dev) in defaults.items()
            if value is not None and value.get_secret_value() == dev
        ]
        if left:
            raise ValueError(
                f"ENVIRONMENT={self.environment} but {', '.join(left)} still have their "
                "development defaults; set real secrets"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
