"""HTTP for sites, the tag registry and scans. Thin: parse, authorize, call the service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from rfid import KeyRing
from server.auth.deps import get_clock, get_session, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.models import Role
from server.tags import service
from server.tags.keys import get_keyring
from server.tags.schemas import (
    MoveIn,
    RevokeIn,
    ScanIn,
    ScanOut,
    SiteIn,
    SiteKind,
    SiteOut,
    SitePatch,
    TagDetail,
    TagEnrollIn,
    TagOut,
    TagStatus,
    VerdictName,
)

router = APIRouter(prefix="/api/v1", tags=["tags"])
REGISTRY = require(Role.manager)  # admin is always allowed
SCANNERS = require(Role.technician, Role.dispatcher, Role.manager)


# --- sites -----------------------------------------------------------------------------------

@router.post("/sites", response_model=SiteOut, status_code=201)
def create_site(body: SiteIn, _: Principal = Depends(REGISTRY),
                session: Session = Depends(get_session),
                clock: Clock = Depends(get_clock)) -> SiteOut:
    site = service.create_site(session, body, clock.now())
    session.commit()
    return site


@router.get("/sites", response_model=list[SiteOut])
def list_sites(kind: SiteKind | None = None, q: str | None = Query(None, max_length=200),
               before_id: int | None = Query(None, ge=1), limit: int = Query(100, ge=1, le=500),
               _: Principal = Depends(REGISTRY),
               session: Session = Depends(get_session)) -> list[SiteOut]:
    return service.list_sites(session, kind=kind.value if kind else None, q=q,
                              before_id=before_id, limit=limit)


@router.get("/sites/{site_id}", response_model=SiteOut)
def get_site(site_id: int, _: Principal = Depends(REGISTRY),
             session: Session = Depends(get_session)) -> SiteOut:
    return service.get_site(session, site_id)


@router.patch("/sites/{site_id}", response_model=SiteOut)
def update_site(site_id: int, body: SitePatch, _: Principal = Depends(REGISTRY),
                session: Session = Depends(get_session),
                clock: Clock = Depends(get_clock)) -> SiteOut:
    site = service.update_site(session, site_id, body, clock.now())
    session.commit()
    return site


@router.delete("/sites/{site_id}", status_code=204)
def delete_site(site_id: int, _: Principal = Depends(REGISTRY),
                session: Session = Depends(get_session)) -> Response:
    service.delete_site(session, site_id)
    session.commit()
    return Response(status_code=204)


# --- scans (before /tags/{tag_id}, whose path would swallow "scans") ---------------------------

@router.post("/tags/scans", response_model=ScanOut, status_code=201,
             responses={200: {"description": "a resend: the verdict stored for its client_id"}})
def ingest_scan(body: ScanIn, response: Response, principal: Principal = Depends(SCANNERS),
                session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
                keyring: KeyRing = Depends(get_keyring)) -> ScanOut:
    """Judge and store one scan. Every verdict is a stored scan (201), not an HTTP error."""
    result = service.ingest_scan(session, body, principal, clock.now(), keyring)
    session.commit()
    if result.duplicate:
        response.status_code = 200
    return result.scan


@router.get("/tags/scans", response_model=list[ScanOut])
def list_scans(site_id: int | None = Query(None, ge=1),
               tag_uid: str | None = Query(None, max_length=64),
               verdict: VerdictName | None = None, before_id: int | None = Query(None, ge=1),
               limit: int = Query(100, ge=1, le=1000), _: Principal = Depends(REGISTRY),
               session: Session = Depends(get_session)) -> list[ScanOut]:
    return service.list_scans(session, site_id=site_id, tag_uid=tag_uid,
                              verdict=verdict.value if verdict else None, before_id=before_id,
                              limit=limit)


# --- tags ------------------------------------------------------------------------------------

@router.post("/tags", response_model=TagOut, status_code=201)
def enroll_tag(body: TagEnrollIn, principal: Principal = Depends(REGISTRY),
               session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
               keyring: KeyRing = Depends(get_keyring)) -> TagOut:
    tag = service.enroll_tag(session, body, principal, clock.now(), keyring)
    session.commit()
    return tag


@router.get("/tags", response_model=list[TagOut])
def list_tags(site_id: int | None = Query(None, ge=1), status: TagStatus | None = None,
              uid: str | None = Query(None, max_length=64),
              before_id: int | None = Query(None, ge=1), limit: int = Query(100, ge=1, le=500),
              _: Principal = Depends(REGISTRY),
              session: Session = Depends(get_session)) -> list[TagOut]:
    return service.list_tags(session, site_id=site_id, status=status.value if status else None,
                             uid=uid, before_id=before_id, limit=limit)


@router.get("/tags/lookup", response_model=TagOut)
def lookup_tag(uid: str = Query(min_length=1, max_length=64), _: Principal = Depends(REGISTRY),
               session: Session = Depends(get_session)) -> TagOut:
    """The tag with this UID (any rendering with separators): active, else last revoked."""
    return service.find_tag(session, uid)


@router.get("/tags/{tag_id}", response_model=TagDetail)
def get_tag(tag_id: int, _: Principal = Depends(REGISTRY),
            session: Session = Depends(get_session)) -> TagDetail:
    return service.get_tag(session, tag_id)


@router.post("/tags/{tag_id}/revoke", response_model=TagOut)
def revoke_tag(tag_id: int, body: RevokeIn, principal: Principal = Depends(REGISTRY),
               session: Session = Depends(get_session),
               clock: Clock = Depends(get_clock)) -> TagOut:
    tag = service.revoke_tag(session, tag_id, body, principal, clock.now())
    session.commit()
    return tag


@router.post("/tags/{tag_id}/move", response_model=TagOut)
def move_tag(tag_id: int, body: MoveIn, principal: Principal = Depends(REGISTRY),
             session: Session = Depends(get_session),
             clock: Clock = Depends(get_clock)) -> TagOut:
    tag = service.move_tag(session, tag_id, body, principal, clock.now())
    session.commit()
    return tag
