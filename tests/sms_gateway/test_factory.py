from __future__ import annotations

import subprocess
import sys

import pytest

from sms_gateway import LogProvider, SmsConfigurationError, SmsGatewayConfig, build_provider


def test_default_is_log_provider() -> None:
    provider = build_provider(SmsGatewayConfig())
    assert isinstance(provider, LogProvider)
    assert provider.capacity == 500


def test_from_mapping() -> None:
    provider = build_provider({"provider": "log", "log_capacity": 7, "sender": "Grid"})
    assert isinstance(provider, LogProvider)
    assert provider.capacity == 7


def test_unknown_setting_rejected() -> None:
    with pytest.raises(SmsConfigurationError, match="auth_tokn"):
        build_provider({"provider": "twilio", "auth_tokn": "x"})


def test_unknown_provider_rejected() -> None:
    with pytest.raises(SmsConfigurationError, match="aliyun"):
        build_provider({"provider": "aliyun"})


def test_auth_token_not_in_repr() -> None:
    assert "s3cret" not in repr(SmsGatewayConfig(provider="twilio", auth_token="s3cret"))


def test_importing_the_library_does_not_load_twilio() -> None:
    code = "import sys, sms_gateway; sms_gateway.build_provider({}); print('twilio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
