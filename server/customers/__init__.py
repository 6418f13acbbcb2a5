"""Customers, their phone numbers and service points; caller-ID lookup; CSV import."""
