"""Benchmarks behind `crewline bench …`: each returns one JSON-able dict with its floor."""
