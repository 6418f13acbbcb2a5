"""All ORM models, in one package so Alembic sees every table."""

from server.models.base import SRID, Base
from server.models.crews import Crew, CrewMember, CrewPosition
from server.models.customers import Customer, CustomerPhone, ServicePoint
from server.models.devices import Device, DeviceDeadLetter, DeviceMessage
from server.models.dispatch import Assignment, RoadEdge, RoadVertex
from server.models.notifications import SmsInbound, SmsMessage, SmsOptOut, SmsTemplate
from server.models.tags import Site, Tag, TagEvent, TagScan
from server.models.tickets import SlaClock, SlaPolicy, Ticket, TicketEvent, TicketLink
from server.models.users import Role, User

__all__ = [
    "SRID",
    "Assignment",
    "Base",
    "Crew",
    "CrewMember",
    "CrewPosition",
    "Customer",
    "CustomerPhone",
    "Device",
    "DeviceDeadLetter",
    "DeviceMessage",
    "RoadEdge",
    "RoadVertex",
    "Role",
    "ServicePoint",
    "Site",
    "SlaClock",
    "SlaPolicy",
    "SmsInbound",
    "SmsMessage",
    "SmsOptOut",
    "SmsTemplate",
    "Tag",
    "TagEvent",
    "TagScan",
    "Ticket",
    "TicketEvent",
    "TicketLink",
    "User",
]
