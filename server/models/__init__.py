"""All ORM models, in one package so Alembic sees every table."""

from server.models.base import SRID, Base
from server.models.customers import Customer, CustomerPhone, ServicePoint
from server.models.tickets import SlaClock, SlaPolicy, Ticket, TicketEvent, TicketLink
from server.models.users import Role, User

__all__ = ["SRID", "Base", "Customer", "CustomerPhone", "ServicePoint", "SlaClock", "SlaPolicy",
           "Ticket", "TicketEvent", "TicketLink", "Role", "User"]
