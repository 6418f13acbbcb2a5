"""Test doubles for the outside world SMS talks to (a local Twilio-compatible server).

Not imported by :mod:`sms_gateway`; tests and ``crewline bench sms`` import it explicitly.
"""
