from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Suggestion(BaseModel):
    rank: int
    crew_id: int
    crew: str
    status: str
    active_jobs: int
    capacity: int
    position_at: datetime
    straight_distance_m: float
    road_distance_m: float | None
    eta_s: float
    eta_source: str = Field(description="road, or straight_line when estimated")
    fallback_reason: str | None = Field(
        None, description="why a straight-line estimate was used: ticket_off_road, crew_off_road, "
                          "no_road_route, road_routing_off")
    route: dict[str, Any] | None = Field(None, description="GeoJSON LineString, crew to ticket")


class Suggestions(BaseModel):
    ticket_id: int
    skill: str | None
    ticket_snapped: bool
    ticket_snap_distance_m: float | None
    fallback: str | None = Field(None, description="set when every ETA is a straight-line estimate")
    stale_after_s: float
    candidates_considered: int
    suggestions: list[Suggestion]


class AssignIn(BaseModel):
    crew_id: int = Field(ge=1)
    note: str | None = Field(None, max_length=2000)


class AssignmentOut(BaseModel):
    id: int
    ticket_id: int
    ticket_status: str
    crew_id: int
    crew: str
    mode: str
    rank: int | None
    skill: str | None
    eta_s: float | None
    eta_source: str | None
    road_distance_m: float | None
    assigned_by: str | None
    assigned_at: datetime
    current_eta_s: float | None
    eta_updated_at: datetime | None
    arrived_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    route: dict[str, Any] | None = None


class RoadImportOut(BaseModel):
    ways: int
    vertices: int
    edges: int
    one_way_edges: int
    components: int
