"""JSON Schemas of the handset link protocol v1 (package data)."""
