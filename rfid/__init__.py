"""Crewline rfid."""
