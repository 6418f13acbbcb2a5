"""All ORM models, in one package so Alembic sees every table."""

from server.models.base import SRID, Base
from server.models.crews import Crew, CrewMember, CrewPosition
from server.models.customers import Customer, CustomerPhone, ServicePoint
from server.models.devices import (
    Device,
    DeviceAttachment,
    DeviceDeadLetter,
    DeviceDownlink,
    DeviceMessage,
    DeviceUplinkSeen,
)
from server.models.dispatch import Assignment, RoadEdge, RoadVertex
from server.models.inspections import (
    ChainHead,
    ChecklistTemplate,
    InspectionAlert,
    InspectionAttachment,
    InspectionPlan,
    InspectionRecord,
    InspectionRound,
    PlanSite,
    RoundSite,
    SiteProfile,
    SiteType,
)
from server.models.notifications import SmsInbound, SmsMessage, SmsOptOut, SmsTemplate
from server.models.outages import Outage, OutageEvent, OutageSubscription, OutageTicket
from server.models.pairing import PairingCode, PairingFailure
from server.models.tags import Site, Tag, TagEvent, TagScan
from server.models.tickets import SlaClock, SlaPolicy, Ticket, TicketEvent, TicketLink
from server.models.users import Role, User

__all__ = [
    "SRID",
    "Assignment",
    "Base",
    "ChainHead",
    "ChecklistTemplate",
    "Crew",
    "CrewMember",
    "CrewPosition",
    "Customer",
    "CustomerPhone",
    "Device",
    "DeviceAttachment",
    "DeviceDeadLetter",
    "DeviceDownlink",
    "DeviceMessage",
    "DeviceUplinkSeen",
    "InspectionAlert",
    "InspectionAttachment",
    "InspectionPlan",
    "InspectionRecord",
    "InspectionRound",
    "Outage",
    "OutageEvent",
    "OutageSubscription",
    "OutageTicket",
    "PairingCode",
    "PairingFailure",
    "PlanSite",
    "RoadEdge",
    "RoadVertex",
    "Role",
    "RoundSite",
    "ServicePoint",
    "Site",
    "SiteProfile",
    "SiteType",
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
