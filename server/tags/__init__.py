"""Tags: inspection sites, the tag registry, and scan verdicts (issue 5 items 3-4).

See docs/rfid.md. The verdict rules and SUN cryptography are in the pure ``rfid`` library;
this domain owns the registry tables and makes each verdict durable.
"""
