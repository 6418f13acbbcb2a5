"""Crews: members, skills, shifts, status, capacity and live positions."""
