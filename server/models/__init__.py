"""All ORM models, in one package so Alembic sees every table."""

from server.models.base import SRID, Base
from server.models.customers import Customer, CustomerPhone, ServicePoint
from server.models.tags import Site, Tag, TagEvent, TagScan
from server.models.tickets import SlaClock, SlaPolicy, Ticket, TicketEvent, TicketLink
from server.models.users import Role, User
from server.models.crews import Crew, CrewMember, CrewPosition  # noqa: E402
from server.models.dispatch import Assignment, RoadEdge, RoadVertex  # noqa: E402
from server.models.notifications import SmsInbound, SmsMessage, SmsOptOut, SmsTemplate  # noqa: E402,F401

__all__ = ["SRID", "Base", "Customer", "CustomerPhone", "ServicePoint", "SlaClock", "SlaPolicy",
           "Ticket", "TicketEvent", "TicketLink", "Role", "User",
           "Site", "Tag", "TagEvent", "TagScan"]
