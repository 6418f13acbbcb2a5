"""Crewline server."""
