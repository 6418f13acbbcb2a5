"""Handsets over MQTT: registration with broker credentials, and the uplink bridge (issue 4)."""
