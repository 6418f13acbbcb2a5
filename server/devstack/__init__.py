"""Private local services for the demo and the test suite.

Crewline's demo and tests run against real PostgreSQL/PostGIS/pgRouting and Mosquitto, started as
private instances under a directory of the project (``./var``) or a temporary directory, on
non-standard ports, so they never touch a system-wide service.
"""

from server.devstack.base import DevstackError, free_port
from server.devstack.mosquitto import MosquittoBroker
from server.devstack.postgres import PostgresCluster, find_pg_bindir

__all__ = ["DevstackError", "MosquittoBroker", "PostgresCluster", "find_pg_bindir", "free_port"]
