"""Crewline mobile_app."""
