"""CSV import of customers with per-row validation.

Two modes, chosen by the caller:

* ``all_or_nothing`` (default): every row is validated first; if any row is bad nothing is written
  and every bad row is reported.
* ``skip_invalid``: bad rows are reported and skipped, good rows are written.

Either way the writes happen in the caller's single transaction, so a database failure part-way
leaves nothing behind. Row numbers are CSV line numbers (the header is line 1).

Columns: ``account_no, name, phones, language, sms_consent, address, lon, lat``. ``phones`` holds
one or more numbers separated by ``;``. An existing account is updated: name, language, consent
and phones are replaced, the service point at the same address is moved or added.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import func, literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from server.core.errors import InvalidInput
from server.customers import phones
from server.models import SRID, Customer, CustomerPhone, ServicePoint

REQUIRED = ("account_no", "name", "phones", "address", "lon", "lat")
OPTIONAL = ("language", "sms_consent")
MAX_ROWS = 2_000_000
BATCH = 1000
_TRUE = {"1", "true", "yes", "y", "是", "t"}
_FALSE = {"0", "false", "no", "n", "否", "f"}
_ACCOUNT = re.compile(r"^[A-Za-z0-9\-_/]{1,32}$")


class ImportMode(StrEnum):
    all_or_nothing = "all_or_nothing"
    skip_invalid = "skip_invalid"


@dataclass
class RowError:
    row: int
    field: str | None
    reason: str


@dataclass
class ValidRow:
    row: int
    account_no: str
    name: str
    phones: list[str]
    language: str
    sms_consent: bool
    address: str
    lon: float
    lat: float


@dataclass
class ImportReport:
    mode: ImportMode
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    committed: bool = False
    errors: list[RowError] = field(default_factory=list)


def _validate(row_no: int, raw: dict[str, str | None], region: str) -> ValidRow:
    def get(name: str) -> str:
        value = raw.get(name)
        return value.strip() if isinstance(value, str) else ""

    account = get("account_no")
    if not _ACCOUNT.match(account):
        raise InvalidInput("account_no must be 1-32 letters, digits, - _ /", field="account_no")
    name = get("name")
    if not name or len(name) > 200:
        raise InvalidInput("name is required (at most 200 characters)", field="name")
    numbers: list[str] = []
    for part in filter(None, (p.strip() for p in re.split(r"[;|]", get("phones")))):
        e164 = phones.normalize(part, region, field="phones")
        if e164 not in numbers:
            numbers.append(e164)
    if not numbers:
        raise InvalidInput("at least one phone number is required", field="phones")
    language = get("language") or "zh-CN"
    if language.lower() in ("zh", "zh-cn", "zh_cn", "中文"):
        language = "zh-CN"
    elif language.lower() in ("en", "en-us", "en-gb", "english"):
        language = "en"
    else:
        raise InvalidInput(f"language {language!r} must be zh-CN or en", field="language")
    consent_raw = get("sms_consent").lower()
    if consent_raw in _TRUE or consent_raw == "":
        consent = True
    elif consent_raw in _FALSE:
        consent = False
    else:
        raise InvalidInput(f"sms_consent {consent_raw!r} must be yes or no", field="sms_consent")
    address = get("address")
    if not address or len(address) > 300:
        raise InvalidInput("address is required (at most 300 characters)", field="address")
    coords = {}
    for axis, limit in (("lon", 180.0), ("lat", 90.0)):
        try:
            value = float(get(axis))
        except ValueError:
            raise InvalidInput(f"{axis} {get(axis)!r} is not a number", field=axis) from None
        if not math.isfinite(value) or not -limit <= value <= limit:
            raise InvalidInput(f"{axis} {value} is out of range ±{limit:g}", field=axis)
        coords[axis] = value
    return ValidRow(row_no, account, name, numbers, language, consent, address,
                    coords["lon"], coords["lat"])


def read_csv(data: bytes | str) -> tuple[list[str], Iterable[tuple[int, dict[str, str | None]]]]:
    """Parse CSV text (UTF-8, BOM tolerated); yield (line number, row)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"the file is not UTF-8 text (byte {exc.start})", field="file") from None
    reader = csv.DictReader(io.StringIO(data))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidInput(f"missing column(s): {', '.join(missing)}; expected "
                           f"{', '.join(REQUIRED + OPTIONAL)}", field="file")

    def rows():
        for row in reader:
            yield reader.line_num, row

    return header, rows()


def import_customers(session: Session, data: bytes | str, *, mode: ImportMode, region: str,
                     progress: Callable[[int], None] | None = None) -> ImportReport:
    """Validate and write; the caller commits only if ``report.committed`` is meant to be."""
    report = ImportReport(mode=mode)
    _, rows = read_csv(data)
    valid: list[ValidRow] = []
    seen: dict[str, int] = {}
    for line, raw in rows:
        report.rows += 1
        if report.rows > MAX_ROWS:
            raise InvalidInput(f"more than {MAX_ROWS} rows; split the file", field="file")
        if None in raw:  # more cells than header columns
            report.errors.append(RowError(line, None, "more cells than header columns"))
            continue
        try:
            row = _validate(line, raw, region)
        except InvalidInput as exc:
            report.errors.append(RowError(line, exc.field, exc.message))
            continue
        if row.account_no in seen:
            report.errors.append(RowError(
                line, "account_no",
                f"account {row.account_no} appears again (first at line {seen[row.account_no]})"))
            continue
        seen[row.account_no] = line
        valid.append(row)
    report.skipped = len(report.errors)
    if report.errors and mode is ImportMode.all_or_nothing:
        report.skipped = report.rows
        return report
    for start in range(0, len(valid), BATCH):
        ins, upd = _write_batch(session, valid[start:start + BATCH])
        report.inserted += ins
        report.updated += upd
        if progress:
            progress(min(start + BATCH, len(valid)))
    report.committed = True
    return report


def _write_batch(session: Session, batch: list[ValidRow]) -> tuple[int, int]:
    stmt = insert(Customer).values([
        {"account_no": r.account_no, "name": r.name, "preferred_language": r.language,
         "sms_consent": r.sms_consent} for r in batch])
    stmt = stmt.on_conflict_do_update(
        index_elements=[Customer.account_no],
        set_={"name": stmt.excluded.name, "preferred_language": stmt.excluded.preferred_language,
              "sms_consent": stmt.excluded.sms_consent, "updated_at": func.now()},
    ).returning(Customer.id, Customer.account_no, literal_column("(xmax = 0)").label("inserted"))
    result = session.execute(stmt).all()
    ids = {r.account_no: r.id for r in result}
    inserted = sum(1 for r in result if r.inserted)
    session.execute(CustomerPhone.__table__.delete().where(
        CustomerPhone.customer_id.in_(list(ids.values()))))
    session.execute(insert(CustomerPhone).values([
        {"customer_id": ids[r.account_no], "e164": n, "kind": phones.kind(n)}
        for r in batch for n in r.phones]))
    sp = insert(ServicePoint).values([
        {"customer_id": ids[r.account_no], "address": r.address,
         "geom": func.ST_SetSRID(func.ST_MakePoint(r.lon, r.lat), SRID)} for r in batch])
    session.execute(sp.on_conflict_do_update(
        index_elements=[ServicePoint.customer_id, ServicePoint.address],
        set_={"geom": sp.excluded.geom}))
    return inserted, len(result) - inserted


__all__ = ["ImportMode", "ImportReport", "RowError", "import_customers", "read_csv"]
