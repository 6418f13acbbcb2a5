from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.deps import STAFF_DESK, get_session, require
from server.auth.service import Principal
from server.core.errors import NotFound
from server.models import Role, SlaPolicy
from server.tickets.lifecycle import Category, Priority

router = APIRouter(prefix="/api/v1/sla/policies", tags=["sla"])


class PolicyOut(BaseModel):
    category: Category
    priority: Priority
    assign_minutes: int | None
    arrive_minutes: int | None
    resolve_minutes: int | None


class PolicyIn(BaseModel):
    assign_minutes: int | None = Field(None, ge=1, le=60 * 24 * 90)
    arrive_minutes: int | None = Field(None, ge=1, le=60 * 24 * 90)
    resolve_minutes: int | None = Field(None, ge=1, le=60 * 24 * 90)

    @model_validator(mode="after")
    def _ordered(self) -> PolicyIn:
        values = [v for v in (self.assign_minutes, self.arrive_minutes, self.resolve_minutes) if v]
        if values != sorted(values):
            raise ValueError("assign_minutes <= arrive_minutes <= resolve_minutes")
        return self


def _out(p: SlaPolicy) -> PolicyOut:
    return PolicyOut(category=p.category, priority=p.priority, assign_minutes=p.assign_minutes,
                     arrive_minutes=p.arrive_minutes, resolve_minutes=p.resolve_minutes)


@router.get("", response_model=list[PolicyOut])
def list_policies(_: Principal = Depends(require(*STAFF_DESK)),
                  session: Session = Depends(get_session)) -> list[PolicyOut]:
    return [_out(p) for p in session.scalars(
        select(SlaPolicy).order_by(SlaPolicy.category, SlaPolicy.priority))]


@router.put("/{category}/{priority}", response_model=PolicyOut)
def put_policy(category: Category, priority: Priority, body: PolicyIn,
               _: Principal = Depends(require(Role.manager)),
               session: Session = Depends(get_session)) -> PolicyOut:
    """Applies to tickets created from now on; running clocks keep the due times they had."""
    p = session.scalar(select(SlaPolicy).where(SlaPolicy.category == category.value,
                                               SlaPolicy.priority == priority.value)
                       .with_for_update())
    if p is None:
        raise NotFound(f"no policy for {category.value}/{priority.value}", field="category")
    p.assign_minutes, p.arrive_minutes, p.resolve_minutes = (
        body.assign_minutes, body.arrive_minutes, body.resolve_minutes)
    session.commit()
    return _out(p)
