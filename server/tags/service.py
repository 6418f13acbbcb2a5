"""Tag registry and scan ingest: the only writer of sites, tags, tag_events and tag_scans.

Services never commit; the caller (HTTP request, MQTT handler, CLI) owns the transaction.
The verdict rules themselves are the pure :func:`rfid.judge_scan`; this module supplies the
registry lookups and makes "counter advanced" atomic with storing the new counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from rfid import (
    EnrolledTag,
    KeyConfigurationError,
    KeyRing,
    ScanJudgement,
    SunFormatError,
    Verdict,
    extract_sun_params,
    judge_scan,
    normalize_uid,
)
from rfid.errors import MalformedResponseError
from server.auth.service import Principal
from server.core.errors import Conflict, CrewlineError, InvalidInput, NotFound
from server.core.schemas import PointOut
from server.models import SRID, Site, Tag, TagEvent, TagScan, User
from server.tags.schemas import (
    MoveIn,
    RevokeIn,
    ScanIn,
    ScanOut,
    SiteIn,
    SiteOut,
    SitePatch,
    TagDetail,
    TagEnrollIn,
    TagEventOut,
    TagOut,
    TagType,
)


class TagKeysUnavailable(CrewlineError):
    """A tag is enrolled with a key version the server has no master key for: a deployment
    error. The scan is not stored, so a handset keeps it and resends after the fix."""

    status_code = 503
    code = "tag_keys_unavailable"


def canonical_uid(uid: str, *, field: str = "uid") -> str:
    """The canonical UID (upper-case hex, no separators) or a 422 naming ``field``."""
    try:
        return normalize_uid(uid)
    except MalformedResponseError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from None


# --- sites -----------------------------------------------------------------------------------

def _site_out(site: Site, active_tags: int) -> SiteOut:
    return SiteOut(id=site.id, name=site.name, kind=site.kind,
                   location=PointOut.from_geom(site.location), address=site.address,
                   active_tags=active_tags, created_at=site.created_at,
                   updated_at=site.updated_at)


def _active_tags(session: Session, site_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Tag).where(
        Tag.site_id == site_id, Tag.status == "active")) or 0


def _site_for_reference(session: Session, site_id: int, field: str) -> Site:
    """A site that a new tag or move will point at; KEY SHARE keeps it from being deleted
    under us (delete_site takes FOR UPDATE first)."""
    site = session.scalars(select(Site).where(Site.id == site_id)
                           .with_for_update(key_share=True)).first()
    if site is None:
        raise InvalidInput(f"site {site_id} does not exist", field=field)
    return site


def create_site(session: Session, data: SiteIn, now: datetime) -> SiteOut:
    site = Site(name=data.name, kind=data.kind.value, location=data.location.to_wkb(),
                address=data.address, created_at=now, updated_at=now)
    session.add(site)
    session.flush()
    return _site_out(site, 0)


def get_site(session: Session, site_id: int) -> SiteOut:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"site {site_id} does not exist", field="site_id")
    return _site_out(site, _active_tags(session, site_id))


def list_sites(session: Session, *, kind: str | None = None, q: str | None = None,
               before_id: int | None = None, limit: int = 100) -> list[SiteOut]:
    active = (select(func.count()).select_from(Tag)
              .where(Tag.site_id == Site.id, Tag.status == "active").scalar_subquery())
    query = select(Site, active).order_by(Site.id.desc()).limit(limit)
    if kind:
        query = query.where(Site.kind == kind)
    if q:
        query = query.where(Site.name.ilike(f"%{_like_escape(q)}%", escape="\\"))
    if before_id:
        query = query.where(Site.id < before_id)
    return [_site_out(site, count) for site, count in session.execute(query)]


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def update_site(session: Session, site_id: int, data: SitePatch, now: datetime) -> SiteOut:
    site = session.scalars(select(Site).where(Site.id == site_id).with_for_update()).first()
    if site is None:
        raise NotFound(f"site {site_id} does not exist", field="site_id")
    sent = data.model_fields_set
    for name in ("name", "kind", "location"):
        if name in sent and getattr(data, name) is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    if not sent:
        raise InvalidInput("send at least one of name, kind, location, address", field="body")
    if "name" in sent:
        site.name = data.name  # type: ignore[assignment]
    if "kind" in sent:
        site.kind = data.kind.value  # type: ignore[union-attr]
    if "location" in sent:
        site.location = data.location.to_wkb()  # type: ignore[union-attr]
    if "address" in sent:
        site.address = data.address
    site.updated_at = now
    session.flush()
    return _site_out(site, _active_tags(session, site_id))


def delete_site(session: Session, site_id: int) -> None:
    """Delete a site nothing refers to; a site with tags, tag history or scans stays."""
    site = session.scalars(select(Site).where(Site.id == site_id).with_for_update()).first()
    if site is None:
        raise NotFound(f"site {site_id} does not exist", field="site_id")
    used = session.scalar(select(
        exists().where(Tag.site_id == site_id)
        | exists().where((TagEvent.from_site_id == site_id) | (TagEvent.to_site_id == site_id))
        | exists().where(TagScan.site_id == site_id)))
    if used:
        raise Conflict(f"site {site_id} has tags or scans; revoke or move its tags instead of "
                       "deleting it", field="site_id", code="site_in_use")
    session.delete(site)
    session.flush()


# --- tags ------------------------------------------------------------------------------------

def _tag_out(tag: Tag) -> TagOut:
    return TagOut(id=tag.id, uid=tag.uid, tag_type=tag.tag_type, sun_enabled=tag.sun_enabled,
                  key_version=tag.key_version, last_counter=tag.last_counter, status=tag.status,
                  site_id=tag.site_id, enrolled_by=tag.enrolled_by, enrolled_at=tag.enrolled_at,
                  revoked_at=tag.revoked_at, revoke_reason=tag.revoke_reason, note=tag.note)


def _event(session: Session, tag_id: int, actor: Principal, kind: str, now: datetime, *,
           from_site: int | None = None, to_site: int | None = None,
           note: str | None = None) -> None:
    session.add(TagEvent(tag_id=tag_id, at=now, actor_id=actor.id, kind=kind,
                         from_site_id=from_site, to_site_id=to_site, note=note))


def _locked_tag(session: Session, tag_id: int) -> Tag:
    tag = session.scalars(select(Tag).where(Tag.id == tag_id).with_for_update()).first()
    if tag is None:
        raise NotFound(f"tag {tag_id} does not exist", field="tag_id")
    return tag


def enroll_tag(session: Session, data: TagEnrollIn, actor: Principal, now: datetime,
               keyring: KeyRing, *, last_counter: int | None = None) -> TagOut:
    """Register a tag at a site. SUN tags get a key version (default: the current one); their
    keys are derived from it, never stored. ``last_counter``: a SUN counter already seen at
    enrolment (so the enrolment read itself cannot be replayed as a visit)."""
    uid = canonical_uid(data.uid)
    key_version = None
    if data.sun_enabled:
        if data.tag_type is not TagType.type4:
            raise InvalidInput("SUN needs an NTAG 424 DNA: tag_type must be type4",
                               field="sun_enabled")
        if len(uid) != 14:
            raise InvalidInput("NTAG 424 DNA UIDs are 7 bytes (14 hex digits)", field="uid")
        key_version = keyring.current_version if data.key_version is None else data.key_version
        if key_version not in keyring.versions:
            raise InvalidInput(f"no master key for key version {key_version} (configured: "
                               f"{', '.join(map(str, sorted(keyring.versions)))})",
                               field="key_version")
    elif data.key_version is not None:
        raise InvalidInput("only SUN tags have a key version", field="key_version")
    _site_for_reference(session, data.site_id, "site_id")
    tag_id = session.scalar(
        pg_insert(Tag).values(
            uid=uid, tag_type=data.tag_type.value, sun_enabled=data.sun_enabled,
            key_version=key_version, last_counter=last_counter if data.sun_enabled else None,
            status="active", site_id=data.site_id, enrolled_by=actor.id, enrolled_at=now,
            note=data.note)
        # the partial unique index arbitrates concurrent enrolments of one UID
        .on_conflict_do_nothing(index_elements=["uid"], index_where=text("status = 'active'"))
        .returning(Tag.id))
    if tag_id is None:
        other = session.execute(select(Tag.id, Tag.site_id).where(
            Tag.uid == uid, Tag.status == "active")).first()
        where = f" (tag {other.id} at site {other.site_id})" if other else ""
        raise Conflict(f"tag {uid} is already enrolled{where}; revoke it first", field="uid",
                       code="tag_already_enrolled")
    _event(session, tag_id, actor, "enrolled", now, to_site=data.site_id, note=data.note)
    session.flush()
    return _tag_out(session.get(Tag, tag_id))  # type: ignore[arg-type]


def revoke_tag(session: Session, tag_id: int, data: RevokeIn, actor: Principal,
               now: datetime) -> TagOut:
    tag = _locked_tag(session, tag_id)
    if tag.status == "revoked":
        raise Conflict(f"tag {tag_id} is already revoked", field="tag_id", code="tag_revoked")
    tag.status, tag.revoked_at, tag.revoked_by = "revoked", now, actor.id
    tag.revoke_reason = data.reason
    _event(session, tag.id, actor, "revoked", now, from_site=tag.site_id, note=data.reason)
    session.flush()
    return _tag_out(tag)


def move_tag(session: Session, tag_id: int, data: MoveIn, actor: Principal,
             now: datetime) -> TagOut:
    tag = _locked_tag(session, tag_id)
    if tag.status == "revoked":
        raise Conflict(f"tag {tag_id} is revoked and cannot be moved", field="tag_id",
                       code="tag_revoked")
    if tag.site_id == data.site_id:
        raise InvalidInput(f"tag {tag_id} is already at site {data.site_id}", field="site_id")
    _site_for_reference(session, data.site_id, "site_id")
    source = tag.site_id
    tag.site_id = data.site_id
    _event(session, tag.id, actor, "moved", now, from_site=source, to_site=data.site_id,
           note=data.note)
    session.flush()
    return _tag_out(tag)


def get_tag(session: Session, tag_id: int) -> TagDetail:
    tag = session.get(Tag, tag_id)
    if tag is None:
        raise NotFound(f"tag {tag_id} does not exist", field="tag_id")
    events = session.execute(
        select(TagEvent, User.username).join(User, User.id == TagEvent.actor_id)
        .where(TagEvent.tag_id == tag_id).order_by(TagEvent.id)).all()
    return TagDetail(**_tag_out(tag).model_dump(), events=[
        TagEventOut(id=e.id, at=e.at, actor=name, kind=e.kind, from_site_id=e.from_site_id,
                    to_site_id=e.to_site_id, note=e.note) for e, name in events])


def find_tag(session: Session, uid: str) -> TagOut:
    """The tag with this UID: the active one, else the most recently revoked one."""
    canonical = canonical_uid(uid)
    tag = session.scalars(select(Tag).where(Tag.uid == canonical)
                          .order_by((Tag.status == "active").desc(), Tag.id.desc())).first()
    if tag is None:
        raise NotFound(f"no tag with UID {canonical} is enrolled", field="uid")
    return _tag_out(tag)


def list_tags(session: Session, *, site_id: int | None = None, status: str | None = None,
              uid: str | None = None, before_id: int | None = None,
              limit: int = 100) -> list[TagOut]:
    query = select(Tag).order_by(Tag.id.desc()).limit(limit)
    if site_id:
        query = query.where(Tag.site_id == site_id)
    if status:
        query = query.where(Tag.status == status)
    if uid:
        query = query.where(Tag.uid == canonical_uid(uid))
    if before_id:
        query = query.where(Tag.id < before_id)
    return [_tag_out(t) for t in session.scalars(query)]


# --- scans -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScanResult:
    """The stored scan; ``duplicate`` when its client_id had been stored before."""

    scan: ScanOut
    duplicate: bool = False

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.scan.verdict.value)


_TAG_COLUMNS = (Tag.id, Tag.site_id, Tag.uid, Tag.sun_enabled, Tag.key_version, Tag.status,
                Tag.last_counter)


def _registry_row(session: Session, uid: str, *, lock: bool) -> Row | None:
    """The tag a scan of ``uid`` is about: the active one, else the newest revoked one."""
    query = (select(*_TAG_COLUMNS).where(Tag.uid == uid)
             .order_by((Tag.status == "active").desc(), Tag.id.desc()).limit(1))
    if lock:
        query = query.with_for_update(of=Tag)
    return session.execute(query).first()


def _judge(session: Session, scan: ScanIn, sun: Any, sun_error: str | None, keyring: KeyRing,
           *, lock: bool) -> tuple[ScanJudgement, Row | None]:
    found: list[Row | None] = [None]

    def lookup(uid: str) -> EnrolledTag | None:
        row = found[0] = _registry_row(session, uid, lock=lock)
        if row is None:
            return None
        return EnrolledTag(uid=row.uid, sun_enabled=row.sun_enabled, key_version=row.key_version,
                           revoked=row.status == "revoked", last_counter=row.last_counter)

    try:
        judgement = judge_scan(uid=scan.uid, sun=sun, lookup=lookup, keyring=keyring,
                               sun_error=sun_error)
    except KeyConfigurationError as exc:
        raise TagKeysUnavailable(f"cannot verify this tag: {exc}; configure its master key "
                                 "(CREWLINE_TAG_MASTER_KEYS)") from None
    return judgement, found[0]


def _advance_counter(session: Session, tag: Row, judgement: ScanJudgement) -> bool:
    """Store the new counter only if it is still above the stored one (and the tag is still
    active with that key version): of two scans with one counter, exactly one gets a row."""
    updated = session.scalar(
        update(Tag)
        .where(Tag.id == tag.id, Tag.status == "active", Tag.key_version == judgement.key_version,
               (Tag.last_counter.is_(None)) | (Tag.last_counter < judgement.counter))
        .values(last_counter=judgement.counter)
        .returning(Tag.id))
    return updated is not None


def _raw(scan: ScanIn) -> dict[str, Any]:
    return scan.model_dump(mode="json", exclude_none=True, exclude={"client_id"})


def ingest_scan(session: Session, scan: ScanIn, actor: Principal, now: datetime,
                keyring: KeyRing, *, source: str = "http") -> ScanResult:
    """Judge one scan, store it with its verdict and, when verified, the tag's new counter.

    Every scan is stored, whatever its verdict. A scan whose ``client_id`` was stored before
    returns the stored verdict (MQTT redelivery, HTTP retry) instead of being judged again,
    which would turn a verified resend into ``replayed``.
    """
    if scan.client_id is not None:
        stored = _stored_by_client_id(session, scan)
        if stored is not None:
            return ScanResult(stored, duplicate=True)
    sun, sun_error = None, None
    if scan.sun_url:
        try:
            sun = extract_sun_params(scan.sun_url)
        except SunFormatError as exc:
            sun_error = str(exc)
    judgement, tag = _judge(session, scan, sun, sun_error, keyring, lock=False)
    if judgement.verdict is Verdict.VERIFIED and not _advance_counter(session, tag, judgement):
        # Another scan moved the counter (or revoked or re-keyed the tag) since we read it:
        # judge again under the row lock, against the committed state.
        judgement, tag = _judge(session, scan, sun, sun_error, keyring, lock=True)
        if judgement.verdict is Verdict.VERIFIED and not _advance_counter(session, tag, judgement):
            raise RuntimeError("counter update failed under the row lock")  # pragma: no cover
    position = (func.ST_SetSRID(func.ST_MakePoint(scan.position.lon, scan.position.lat), SRID)
                if scan.position else None)
    values = dict(
        received_at=now, scanned_at=scan.scanned_at, actor_id=actor.id, source=source,
        client_id=scan.client_id, verdict=judgement.verdict.value, reason=judgement.reason,
        tag_id=tag.id if tag else None, site_id=tag.site_id if tag else None,
        uid=judgement.uid, counter=judgement.counter, key_version=judgement.key_version,
        position=position, accuracy_m=scan.accuracy_m, raw=_raw(scan))
    scan_id = session.scalar(
        pg_insert(TagScan).values(**values)
        .on_conflict_do_nothing(index_elements=["client_id"],
                                index_where=text("client_id IS NOT NULL"))
        .returning(TagScan.id))
    if scan_id is None:  # the same client_id, committed by a concurrent request meanwhile
        stored = _stored_by_client_id(session, scan)
        assert stored is not None
        return ScanResult(stored, duplicate=True)
    return ScanResult(ScanOut(
        id=scan_id, verdict=judgement.verdict.value, accepted=judgement.accepted,
        reason=judgement.reason, tag_id=values["tag_id"], site_id=values["site_id"],
        uid=judgement.uid, counter=judgement.counter, key_version=judgement.key_version,
        received_at=now, scanned_at=scan.scanned_at, actor=actor.username, source=source,
        client_id=scan.client_id,
        position=PointOut(lon=round(scan.position.lon, 7), lat=round(scan.position.lat, 7))
        if scan.position else None, accuracy_m=scan.accuracy_m, raw=values["raw"]))


_ACCEPTED = (Verdict.VERIFIED.value, Verdict.UID_ONLY.value)


def _scan_query():
    return (select(TagScan, User.username,
                   func.ST_X(TagScan.position).label("lon"),
                   func.ST_Y(TagScan.position).label("lat"))
            .join(User, User.id == TagScan.actor_id))


def _scan_out(row: Row, *, duplicate: bool = False) -> ScanOut:
    s: TagScan = row[0]
    position = (PointOut(lon=round(row.lon, 7), lat=round(row.lat, 7))
                if row.lon is not None else None)
    return ScanOut(id=s.id, verdict=s.verdict, accepted=s.verdict in _ACCEPTED, reason=s.reason,
                   tag_id=s.tag_id, site_id=s.site_id, uid=s.uid, counter=s.counter,
                   key_version=s.key_version, received_at=s.received_at,
                   scanned_at=s.scanned_at, actor=row.username, source=s.source,
                   client_id=s.client_id, position=position, accuracy_m=s.accuracy_m,
                   raw=s.raw, duplicate=duplicate)


def _stored_by_client_id(session: Session, scan: ScanIn) -> ScanOut | None:
    row = session.execute(_scan_query().where(TagScan.client_id == scan.client_id)).first()
    if row is None:
        return None
    if row[0].raw != _raw(scan):
        raise Conflict(f"client_id {scan.client_id} was already used for a different scan",
                       field="client_id", code="client_id_reused")
    return _scan_out(row, duplicate=True)


def list_scans(session: Session, *, site_id: int | None = None, tag_uid: str | None = None,
               verdict: str | None = None, before_id: int | None = None,
               limit: int = 100) -> list[ScanOut]:
    """Scan history, newest first (keyset pagination with ``before_id``)."""
    query = _scan_query().order_by(TagScan.id.desc()).limit(limit)
    if site_id:
        query = query.where(TagScan.site_id == site_id)
    if tag_uid:
        query = query.where(TagScan.uid == canonical_uid(tag_uid, field="tag_uid"))
    if verdict:
        query = query.where(TagScan.verdict == verdict)
    if before_id:
        query = query.where(TagScan.id < before_id)
    return [_scan_out(row) for row in session.execute(query)]
