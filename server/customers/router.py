from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import BaseModel
from sqlalchemy.orm import Session

from server.auth.deps import STAFF_DESK, get_session, require
from server.auth.service import Principal
from server.core.errors import InvalidInput
from server.customers import importer, phones, service
from server.customers.schemas import CustomerIn, CustomerOut, ImportReportOut, RowErrorOut
from server.models import Role
from server.outages.absorb import lookup_hints  # [outages]
from server.outages.schemas import OutageHint  # [outages]
from server.tickets.schemas import TicketSummary

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])
MAX_UPLOAD = 200 * 1024 * 1024


class LookupMatch(BaseModel):
    customer: CustomerOut
    open_tickets: list[TicketSummary]
    outages: list[OutageHint] = []  # [outages] active outages covering the customer's places


class LookupOut(BaseModel):
    query: str
    normalized: str
    matches: list[LookupMatch]


@router.get("/lookup", response_model=LookupOut)
def lookup(request: Request, phone: str = Query(..., max_length=40, description="caller's number"),
           _: Principal = Depends(require(*STAFF_DESK)),
           session: Session = Depends(get_session)) -> LookupOut:
    """Caller-ID: who is calling, where they are served, and what is already open for them."""
    e164 = phones.normalize(phone, request.app.state.settings.default_region, field="phone")
    matches = []
    for row in service.lookup(session, e164):
        open_tickets = [TicketSummary(number=f"CL-{t['id']:07d}", **t)
                        for t in row.pop("open_tickets")]
        outages = lookup_hints(row.pop("outages"), request.app.state.settings.sms_timezone)
        matches.append(LookupMatch(customer=CustomerOut(**row), open_tickets=open_tickets,
                                   outages=outages))
    return LookupOut(query=phone, normalized=e164, matches=matches)


@router.get("", response_model=list[CustomerOut])
def search(account_no: str | None = Query(None, max_length=32),
           name: str | None = Query(None, min_length=1, max_length=200),
           limit: int = Query(50, ge=1, le=500),
           _: Principal = Depends(require(*STAFF_DESK)),
           session: Session = Depends(get_session)) -> list[CustomerOut]:
    return [CustomerOut.of(c) for c in service.search(session, account_no=account_no, name=name,
                                                      limit=limit)]


@router.get("/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: int, _: Principal = Depends(require(*STAFF_DESK)),
                 session: Session = Depends(get_session)) -> CustomerOut:
    return CustomerOut.of(service.get(session, customer_id))


@router.post("", response_model=CustomerOut, status_code=201)
def create_customer(body: CustomerIn, request: Request,
                    _: Principal = Depends(require(Role.agent, Role.manager)),
                    session: Session = Depends(get_session)) -> CustomerOut:
    customer = service.create(session, body, request.app.state.settings.default_region)
    session.commit()
    return CustomerOut.of(service.get(session, customer.id))


@router.post("/import", response_model=ImportReportOut)
def import_csv(request: Request, file: UploadFile = File(...),
               mode: importer.ImportMode = Query(importer.ImportMode.all_or_nothing),
               _: Principal = Depends(require(Role.manager)),
               session: Session = Depends(get_session)) -> ImportReportOut:
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise InvalidInput(f"the file is larger than {MAX_UPLOAD // 2**20} MiB", field="file")
    report = importer.import_customers(session, data, mode=mode,
                                       region=request.app.state.settings.default_region)
    if report.committed:
        session.commit()
    else:
        session.rollback()
    return ImportReportOut(
        mode=report.mode.value, rows=report.rows, inserted=report.inserted,
        updated=report.updated, skipped=report.skipped, committed=report.committed,
        errors=[RowErrorOut(row=e.row, field=e.field, reason=e.reason) for e in report.errors])
