from __future__ import annotations

from pydantic import BaseModel, Field

from server.core.schemas import PointIn, PointOut
from server.models import Customer


class ServicePointOut(BaseModel):
    id: int
    address: str
    location: PointOut


class PhoneOut(BaseModel):
    e164: str
    kind: str


class CustomerOut(BaseModel):
    id: int
    account_no: str
    name: str
    preferred_language: str
    sms_consent: bool
    phones: list[PhoneOut]
    service_points: list[ServicePointOut]

    @classmethod
    def of(cls, c: Customer) -> CustomerOut:
        return cls(
            id=c.id, account_no=c.account_no, name=c.name, preferred_language=c.preferred_language,
            sms_consent=c.sms_consent,
            phones=[PhoneOut(e164=p.e164, kind=p.kind) for p in c.phones],
            service_points=[ServicePointOut(id=s.id, address=s.address,
                                            location=PointOut.from_geom(s.geom))
                            for s in c.service_points],
        )


class ServicePointIn(BaseModel):
    address: str = Field(min_length=1, max_length=300)
    location: PointIn


class CustomerIn(BaseModel):
    account_no: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9\-_/]+$")
    name: str = Field(min_length=1, max_length=200)
    phones: list[str] = Field(default_factory=list, max_length=10)
    preferred_language: str = Field("zh-CN", pattern=r"^(zh-CN|en)$")
    sms_consent: bool = True
    service_points: list[ServicePointIn] = Field(default_factory=list, max_length=50)


class RowErrorOut(BaseModel):
    row: int
    field: str | None
    reason: str


class ImportReportOut(BaseModel):
    mode: str
    rows: int
    inserted: int
    updated: int
    skipped: int
    committed: bool
    errors: list[RowErrorOut]
