"""Server settings: the only place that reads the environment."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A well-known value: accepted in development so `make demo` works out of the box, refused in production.
DEVELOPMENT_SECRET = "crewline-development-secret-do-not-use-in-production"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CREWLINE_",
        env_file=("var/stack.env", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: Environment = Environment.development
    database_url: str = "postgresql+psycopg://crewline@127.0.0.1:55432/crewline"
    db_pool_size: int = Field(20, ge=1, le=200)
    mqtt_url: str = "mqtt://127.0.0.1:51883"
    mqtt_auth_dir: str = "var/mqtt"  # the broker's passwd + acl files (+ pid for SIGHUP); server/devices
    attachments_dir: str = "var/attachments"  # photo/signature files uploaded by handsets; server/devices
    sms_provider: str = "log"
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_from: str = ""
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    access_token_minutes: int = Field(12 * 60, ge=1)
    default_region: str = Field("CN", min_length=2, max_length=2)
    duplicate_radius_m: float = Field(100.0, gt=0, le=5000)
    duplicate_window_hours: float = Field(24.0, gt=0, le=24 * 30)
    sla_warning_fraction: float = Field(0.8, gt=0, lt=1)
    # ticket ids each server process takes from the sequence at a time (1: no caching); numbers
    # stay unique but are not in creation order across processes (docs/architecture.md, Data)
    ticket_id_block: int = Field(32, ge=1, le=10_000)
    sla_sweep_cron: str = "*/10 * * * * *"
    # dispatch (docs/dispatch.md)
    dispatch_stale_after_minutes: float = Field(10.0, gt=0, le=24 * 60)
    dispatch_snap_max_m: float = Field(500.0, gt=0, le=10_000)
    dispatch_geofence_m: float = Field(50.0, gt=0, le=5000)
    dispatch_max_speed_kmh: float = Field(250.0, gt=0, le=2000)
    dispatch_knn_candidates: int = Field(64, ge=1, le=1000)
    dispatch_auto_assign: list[str] = ["repair/emergency", "outage_report/emergency"]
    dispatch_auto_assign_cron: str = "*/5 * * * * *"
    log_level: str = "INFO"
    log_json: bool = False
    # -- SMS notifications (server/notifications, docs/notifications.md) --
    public_base_url: str = "http://127.0.0.1:8080"  # as Twilio calls us: webhook URLs, signatures
    twilio_messaging_service_sid: str = ""
    twilio_api_base_url: str = ""  # tests/bench: the local Twilio-compatible server
    sms_timeout_seconds: float = Field(10.0, gt=0, le=120)
    sms_messages_per_second: float = Field(1.0, gt=0, le=1000)
    sms_segment_budget: int = Field(2, ge=1, le=10)
    sms_timezone: str = "Asia/Shanghai"
    sms_quiet_start: str = Field("21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # equal: none
    sms_quiet_end: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    sms_max_attempts: int = Field(8, ge=1, le=100)
    sms_sending_lease_seconds: float = Field(120.0, gt=0)  # > sms_timeout_seconds
    sms_sweep_cron: str = "* * * * * *"
    sms_crash_after_accept: bool = False  # tests only: exit right after the provider accepted
    # -- outages (server/outages, docs/outages.md) --
    outage_planned_notice_hours: float = Field(24.0, ge=0, le=24 * 14)  # notice this far ahead
    outage_planned_cron: str = "*/30 * * * * *"
    outage_street_buffer_m: float = Field(30.0, gt=0, le=1000)  # "selected streets" areas
    outage_infer_cron: str = "*/30 * * * * *"
    outage_infer_window_minutes: float = Field(30.0, gt=0, le=24 * 60)
    outage_infer_eps_m: float = Field(250.0, gt=0, le=10_000)  # ST_ClusterDBSCAN eps
    outage_infer_min_tickets: int = Field(5, ge=2, le=10_000)  # ST_ClusterDBSCAN minpoints
    outage_infer_buffer_m: float = Field(150.0, ge=0, le=10_000)  # around the cluster's hull
    outage_public_decimals: int = Field(3, ge=2, le=6)  # public areas: coordinates rounded
    outage_public_simplify_m: float = Field(50.0, ge=0, le=5000)
    ivr_agent_queue: str = Field("crewline-agents", min_length=1, max_length=64)  # <Enqueue>
    ivr_agent_number: str = ""  # if set, <Dial> this number instead of the queue
    ivr_voice_zh: str = "alice"
    ivr_language_zh: str = "zh-CN"
    ivr_voice_en: str = "alice"
    ivr_language_en: str = "en-US"
    # -- web console (server/console, docs/web.md) --
    # a raster tile server for the map, e.g. https://tiles.example.org/{z}/{x}/{y}.png; empty: the
    # vector basemap of the road graph served by Crewline itself (works offline)
    tile_url: str = Field("", pattern=r"^(https?://[^\s'\"]+\{z\}[^\s'\"]*)?$")
    tile_attribution: str = "Map data © OpenStreetMap contributors, ODbL"
    live_position_interval_s: float = Field(1.0, ge=0.2, le=60)  # crews pushed at most this often
    live_poll_interval_s: float = Field(0.2, ge=0.02, le=5)  # how often each process reads changes
    live_keep_minutes: float = Field(10, ge=1, le=1440)  # change records kept for slow readers
    # -- handset pairing (server/devices/pairing.py, docs/handset.md) --
    # the broker as handsets reach it, mqtt://host:port (no credentials); empty: mqtt_url's host:port
    handset_broker_url: str = Field("", pattern=r"^(mqtts?://[^\s/@]+(:\d+)?)?$")
    pairing_code_minutes: float = Field(10.0, gt=0, le=24 * 60)
    pairing_max_failures: int = Field(5, ge=1, le=1000)  # wrong codes per client address ...
    pairing_lockout_minutes: float = Field(15.0, gt=0, le=24 * 60)  # ... within this window
    pairing_max_failures_total: int = Field(200, ge=1)  # from all addresses, same window
    # -- handset data retention (server/devices/retention.py, docs/operations.md) --
    device_retention_cron: str = "17 * * * *"  # hourly
    # uplink messages: applied and this old, and the device heard from this long after them
    device_message_retention_days: int = Field(30, ge=1, le=3650)
    # downlink: acknowledged by the handset (or its device revoked) and this old
    device_downlink_retention_days: int = Field(30, ge=1, le=3650)
    device_dead_letter_retention_days: int = Field(90, ge=1, le=3650)
    device_retention_batch: int = Field(5000, ge=10, le=100_000)  # rows per delete transaction

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.env is Environment.production:
            secret = self.secret_key.get_secret_value()
            if not secret or secret == DEVELOPMENT_SECRET or len(secret) < 32:
                raise ValueError(
                    "CREWLINE_SECRET_KEY must be set to a random value of at least 32 characters "
                    "in production (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
            if self.sms_provider == "twilio" and not self.twilio_auth_token.get_secret_value():
                raise ValueError("CREWLINE_TWILIO_AUTH_TOKEN must be set when the SMS provider is twilio")
        return self

    # NTAG 424 DNA master keys by key version, 32 hex digits each, as JSON:
    # CREWLINE_TAG_MASTER_KEYS='{"1": "<32 hex>", "2": "<32 hex>"}'. Per-tag keys are diversified
    # from them (rfid.KeyRing); the default is a well-known development key refused in production.
    tag_master_keys: dict[int, SecretStr] = Field(
        default_factory=lambda: {1: SecretStr("637265776c696e652d6465762d746167")})
    tag_key_version: int | None = Field(None, ge=0, description="current version (None: newest)")
    tag_system_identifier: str = Field("crewline", min_length=1, max_length=16)

    # -- inspections (server/inspections, docs/inspections.md) --
    inspection_timezone: str = "Asia/Shanghai"  # default zone of a plan's time window
    inspection_gps_tolerance_m: float = Field(50.0, gt=0, le=10_000)  # fix to site, per site overridable
    inspection_accept_uid_only: bool = False  # True: a plain (UID-only) tag counts as proof
    inspection_scan_max_gap_minutes: float = Field(30.0, gt=0, le=24 * 60)  # scan vs visit time
    inspection_max_speed_kmh: float = Field(80.0, gt=0, le=500)  # straight-line travel fallback
    inspection_travel_fraction: float = Field(0.6, gt=0, le=1)  # below this share of road time: anomaly
    inspection_clone_radius_m: float = Field(30.0, gt=0, le=1000)  # UID-only scans "from one spot"
    inspection_track_tolerance_m: float = Field(10.0, ge=0, le=1000)  # the day's track simplification
    inspection_rounds_cron: str = "* * * * *"  # round generation and missed-checkpoint sweep
    # a round is generated (and sent to the handsets) this long before its window opens
    inspection_rounds_ahead_hours: float = Field(18.0, ge=0, le=7 * 24)
    inspection_chromium: str = "/usr/bin/chromium"  # HTML-to-PDF for round reports
    inspection_attachment_max_bytes: int = Field(2 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)

    @model_validator(mode="after")
    def _usable_tag_keys(self) -> Settings:
        keys = {v: k.get_secret_value() for v, k in self.tag_master_keys.items()}
        if not keys or any(v < 0 for v in keys):
            raise ValueError("CREWLINE_TAG_MASTER_KEYS needs at least one version >= 0")
        for version, key in keys.items():
            try:
                ok = len(bytes.fromhex(key)) == 16
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"CREWLINE_TAG_MASTER_KEYS version {version}: 32 hex digits")
        if self.tag_key_version is not None and self.tag_key_version not in keys:
            raise ValueError(f"CREWLINE_TAG_KEY_VERSION {self.tag_key_version} has no master key")
        if self.env is Environment.production:
            default = type(self).model_fields["tag_master_keys"].default_factory()  # type: ignore[misc]
            weak = {k.get_secret_value().lower() for k in default.values()} | {"0" * 32}
            if any(key.lower() in weak for key in keys.values()):
                raise ValueError("CREWLINE_TAG_MASTER_KEYS must be random keys in production, not "
                                 "the development or factory (all-zero) key")
        return self

    @property
    def libpq_url(self) -> str:
        """The database URL without SQLAlchemy's driver suffix, for psycopg and procrastinate."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)


@lru_cache
def get_settings() -> Settings:
    return Settings()
