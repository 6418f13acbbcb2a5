"""Inspection checklists: templates, answers checked as they are typed, and the record they make.

A template is a list of items, each ``{"id", "kind", "label": {"en", "zh-CN"}, "required"?, ...}``:

* ``number`` with ``min``/``max`` (inclusive) and an optional ``unit``;
* ``choice`` with ``options``: ``[{"value", "label": {...}}]``;
* ``yes_no``; ``text`` with ``max_length``;
* ``photo`` (a file taken through the camera facade) and ``signature`` (strokes drawn on screen,
  saved as a PNG by the widget): their answers are ``{"file", "sha256"}``.

A work order may carry its own template (``checklist``: ``{"id", "items"}``); otherwise the
built-in template for the job's category is used (:data:`TEMPLATES`). The site types' templates of
the inspections issue arrive with the rounds (``round`` downlink) in the same shape.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_app.i18n import tr


def _l(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh-CN": zh}


SERVICE_RECORD = {
    "id": "service_record.v1",
    "items": [
        {"id": "pressure_bar", "kind": "number", "label": _l("Pressure after repair", "修复后压力"),
         "unit": "bar", "min": 0, "max": 16, "required": True},
        {"id": "meter_reading", "kind": "number", "label": _l("Meter reading", "水表读数"),
         "unit": "m³", "min": 0, "max": 999999, "required": False},
        {"id": "pipe_material", "kind": "choice", "label": _l("Pipe material", "管道材质"),
         "required": True, "options": [
             {"value": "copper", "label": _l("Copper", "铜")},
             {"value": "pe", "label": _l("PE plastic", "PE 塑料")},
             {"value": "cast_iron", "label": _l("Cast iron", "铸铁")},
             {"value": "steel", "label": _l("Steel", "钢")}]},
        {"id": "leak_stopped", "kind": "yes_no", "label": _l("Leak stopped", "漏水已止住"),
         "required": True},
        {"id": "remarks", "kind": "text", "label": _l("Remarks", "备注"), "max_length": 500,
         "required": False},
        {"id": "photo", "kind": "photo", "label": _l("Photo of the work", "施工照片"),
         "required": True},
        {"id": "signature", "kind": "signature", "label": _l("Customer signature", "客户签名"),
         "required": True},
    ],
}
TEMPLATES = {"repair": SERVICE_RECORD, "outage_report": SERVICE_RECORD,
             "help_request": SERVICE_RECORD}


def template_for(job_body: dict[str, Any]) -> dict[str, Any]:
    own = job_body.get("checklist")
    if isinstance(own, dict) and own.get("items"):
        return own
    return TEMPLATES.get(job_body.get("category") or "", SERVICE_RECORD)


def from_round_template(template: dict[str, Any]) -> dict[str, Any]:
    """A site type's checklist as the ``round`` downlink carries it, in this module's shape."""
    items = []
    for it in template["items"]:
        label = {"en": it["label"], "zh-CN": it.get("label_zh") or it["label"]}
        item: dict[str, Any] = {"id": it["key"], "kind": it["kind"], "label": label,
                                "required": bool(it.get("required"))}
        for k in ("unit", "min", "max"):
            if it.get(k) is not None:
                item[k] = it[k]
        if it["kind"] == "choice":
            item["options"] = [{"value": o, "label": {"en": o, "zh-CN": o}}
                               for o in it.get("options") or []]
        items.append(item)
    return {"id": f"site_type.{template['site_type_id']}.v{template['version']}",
            "version": template["version"], "items": items}


def item_label(item: dict[str, Any], lang: str) -> str:
    text = item["label"].get(lang) or item["label"].get("en") or item["id"]
    return f"{text} ({item['unit']})" if item.get("unit") else text


def file_answer(path: str | Path) -> dict[str, str]:
    data = Path(path).read_bytes()
    return {"file": str(path), "sha256": hashlib.sha256(data).hexdigest()}


@dataclass
class Checklist:
    template: dict[str, Any]
    lang: str = "en"
    answers: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.template["items"]

    def item(self, item_id: str) -> dict[str, Any]:
        for it in self.items:
            if it["id"] == item_id:
                return it
        raise KeyError(item_id)

    def set(self, item_id: str, raw: Any) -> str | None:
        """Check and keep an answer; returns the error text (also in ``errors``) or None.
        An empty answer clears the item."""
        item = self.item(item_id)
        self.errors.pop(item_id, None)
        if raw is None or raw == "":
            self.answers.pop(item_id, None)
            return None
        try:
            self.answers[item_id] = self._parse(item, raw)
        except ValueError as exc:
            self.answers.pop(item_id, None)
            self.errors[item_id] = str(exc)
            return str(exc)
        return None

    def _parse(self, item: dict[str, Any], raw: Any) -> Any:
        kind, lang = item["kind"], self.lang
        if kind == "number":
            try:
                value = float(str(raw).strip().replace(",", "."))
            except ValueError:
                raise ValueError(tr("checklist.err.number", lang)) from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(tr("checklist.err.number", lang))
            lo, hi = item.get("min"), item.get("max")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(tr("checklist.err.range", lang, min=lo, max=hi))
            return int(value) if value.is_integer() else value
        if kind == "choice":
            if raw not in [o["value"] for o in item["options"]]:
                raise ValueError(tr("checklist.err.choice", lang))
            return raw
        if kind == "yes_no":
            if not isinstance(raw, bool):
                raise ValueError(tr("checklist.err.choice", lang))
            return raw
        if kind == "text":
            text = str(raw).strip()
            limit = item.get("max_length", 2000)
            if len(text) > limit:
                raise ValueError(tr("checklist.err.too_long", lang, n=limit))
            return text
        if kind in ("photo", "signature"):
            if not (isinstance(raw, dict) and raw.get("file") and raw.get("sha256")):
                raise ValueError(tr("checklist.err.required", lang))
            return raw
        raise ValueError(f"unknown item kind {kind!r}")

    def missing(self) -> list[str]:
        return [it["id"] for it in self.items if it.get("required") and it["id"] not in self.answers]

    @property
    def complete(self) -> bool:
        return not self.missing() and not self.errors

    def display(self, item: dict[str, Any]) -> str:
        value = self.answers.get(item["id"])
        if value is None:
            return ""
        kind = item["kind"]
        if kind == "yes_no":
            return tr("checklist.yes" if value else "checklist.no", self.lang)
        if kind == "choice":
            option = next(o for o in item["options"] if o["value"] == value)
            return option["label"].get(self.lang) or value
        if kind == "photo":
            return tr("checklist.photo_taken", self.lang)
        if kind == "signature":
            return tr("checklist.signed", self.lang)
        return str(value)

    def summary(self, limit: int = 1500) -> str:
        """One line for the service record (the resolve note), in the technician's language."""
        parts = [f"{item_label(it, self.lang)}: {self.display(it)}" for it in self.items
                 if it["id"] in self.answers]
        text = f"{tr('checklist.summary', self.lang)} [{self.template['id']}] " + "; ".join(parts)
        return text if len(text) <= limit else text[: limit - 1] + "…"
