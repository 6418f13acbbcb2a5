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
    sla_sweep_cron: str = "*/10 * * * * *"
    log_level: str = "INFO"
    log_json: bool = False

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> "Settings":
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

    @property
    def libpq_url(self) -> str:
        """The database URL without SQLAlchemy's driver suffix, for psycopg and procrastinate."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)


@lru_cache
def get_settings() -> Settings:
    return Settings()
