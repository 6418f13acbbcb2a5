// Inspections: a technician's day replayed on the map (GPS track, tag scans, visits, sites), the
// day's exceptions, and plan compliance for the day. Reads /api/v1/inspections/* (managers and
// dispatchers); reason codes are shown in the user's language from /inspections/reasons.
/* global L */
import { $, api, ApiError, boot, dateTime, fill, formatTime, h, language, t } from "./console.js";
import { baseMap } from "./map.js";

const VERDICT_COLORS = { accepted: "#1e8e3e", ok: "#1e8e3e", rejected: "#d93025", replay: "#d93025" };
const state = {
  map: null, layer: null, marker: null, day: null, track: [], times: [], reasons: {}, timer: 0,
  technicians: [],
};
window.crewlineInspections = state; // read by the browser tests

function initMap(cfg) {
  if (state.map) return;
  state.map = baseMap(cfg);
  state.layer = L.layerGroup().addTo(state.map);
}

function reason(code) {
  const r = state.reasons[code];
  return r ? r[language()] || r.en : code;
}

function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

async function loadTechnicians() {
  const crews = await api("GET", "/crews", { query: { limit: 1000 } });
  const seen = new Map();
  for (const c of crews) for (const m of c.members) seen.set(m.user_id, { ...m, crew: c.name });
  state.technicians = [...seen.values()].sort((a, b) => a.username.localeCompare(b.username));
  renderTechnicians();
}

function renderTechnicians() {
  const select = $("#i-tech");
  const current = select.value;
  fill(select, state.technicians.map((m) => h("option", { value: m.user_id },
    `${m.full_name || m.username} (${m.crew})`)));
  if (current) select.value = current;
}

// -- the day ------------------------------------------------------------------------------------
async function showDay() {
  $("#page-error").textContent = "";
  const user = $("#i-tech").value;
  const date = $("#i-date").value;
  if (!user || !date) return;
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    const [day, comp, exceptions] = await Promise.all([
      api("GET", `/inspections/technicians/${user}/day`, { query: { date, tz } }),
      api("GET", "/inspections/compliance", { query: { date_from: date, date_to: date, technician_id: user } }),
      api("GET", "/inspections/exceptions", { query: dayWindow(date, user) }),
    ]);
    state.day = day;
    drawDay(day);
    renderCompliance(comp);
    renderExceptions(exceptions);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $("#page-error").textContent = error.message;
  }
}

function dayWindow(date, user) {
  const since = new Date(`${date}T00:00:00`);
  const until = new Date(since.getTime() + 86400000);
  return { since: since.toISOString(), until: until.toISOString(), technician_id: user };
}

function drawDay(day) {
  state.layer.clearLayers();
  clearInterval(state.timer);
  state.track = [];
  state.times = [];
  const bounds = [];
  let scans = 0;
  let visits = 0;
  let flagged = 0;
  let length = 0;
  for (const f of day.features) {
    const p = f.properties;
    if (p.kind === "track") {
      const coords = f.geometry.type === "LineString" ? f.geometry.coordinates : [f.geometry.coordinates];
      state.track = coords.map(([lon, lat]) => [lat, lon]);
      state.times = p.times;
      length = p.length_m;
      L.polyline(state.track, { color: "#1a73e8", weight: 4, opacity: 0.8 }).addTo(state.layer);
      bounds.push(...state.track);
    } else if (f.geometry) {
      const [lon, lat] = f.geometry.coordinates;
      bounds.push([lat, lon]);
      if (p.kind === "site") {
        L.circleMarker([lat, lon], { radius: 9, color: "#5f6368", weight: 2, fillOpacity: 0 })
          .bindTooltip(p.name).addTo(state.layer);
      } else if (p.kind === "scan") {
        scans += 1;
        L.circleMarker([lat, lon], { radius: 5, color: "#fff", weight: 1, fillOpacity: 1,
          fillColor: VERDICT_COLORS[p.verdict] || "#f9ab00" })
          .bindTooltip(`${formatTime(p.at, { timeStyle: "short" })} · ${reason(p.verdict)}`).addTo(state.layer);
      } else if (p.kind === "visit") {
        visits += 1;
        if (p.evidence === "flagged") flagged += 1;
        L.circleMarker([lat, lon], { radius: 7, color: p.evidence === "flagged" ? "#d93025" : "#1e8e3e",
          weight: 3, fillOpacity: 0.3 })
          .bindTooltip(`${formatTime(p.started_at, { timeStyle: "short" })} · ${reason(p.evidence)}`)
          .addTo(state.layer);
      }
    }
  }
  if (bounds.length) state.map.fitBounds(bounds, { maxZoom: 17, padding: [30, 30] });
  state.marker = state.track.length
    ? L.circleMarker(state.track[0], { radius: 9, color: "#111", weight: 3, fillColor: "#ff9f1c", fillOpacity: 1 })
      .addTo(state.layer) : null;
  const slider = $("#replay-slider");
  slider.max = Math.max(0, state.track.length - 1);
  slider.value = 0;
  slider.disabled = $("#replay-play").disabled = state.track.length < 2;
  fill($("#day-summary"), h("p", { class: "day-facts" },
    t("insp.summary", { km: (length / 1000).toFixed(1), fixes: state.track.length, scans, visits, flagged })));
  moveTo(0);
}

function moveTo(i) {
  if (!state.marker) { $("#replay-time").textContent = t("insp.noTrack"); return; }
  state.marker.setLatLng(state.track[i]);
  $("#replay-slider").value = i;
  $("#replay-time").textContent = formatTime(state.times[i], { timeStyle: "medium" });
}

$("#replay-slider").addEventListener("input", (e) => { clearInterval(state.timer); moveTo(Number(e.target.value)); });
$("#replay-play").addEventListener("click", () => {
  clearInterval(state.timer);
  let i = Number($("#replay-slider").value);
  if (i >= state.track.length - 1) i = 0;
  state.timer = setInterval(() => {
    moveTo(i);
    i += 1;
    if (i >= state.track.length) clearInterval(state.timer);
  }, 150);
});

// -- compliance and exceptions ------------------------------------------------------------------
function renderCompliance(c) {
  const rows = c.rounds.map((r) => h("tr", { dataset: { round: r.round_id } },
    h("td", {}, r.plan_name), h("td", {}, String(r.checkpoints)), h("td", {}, String(r.done)),
    h("td", {}, String(r.late)), h("td", {}, String(r.missed)), h("td", {}, String(r.pending)),
    h("td", {}, String(r.verified))));
  const plans = c.plans.map((p) => h("p", {}, h("strong", {}, p.plan_name), " · ",
    p.on_time_rate === null ? t("insp.noRate") : t("insp.onTime", { pct: Math.round(p.on_time_rate * 100) })));
  fill($("#compliance"), c.rounds.length
    ? [h("table", { class: "sug-table" }, h("thead", {}, h("tr", {},
      ["insp.plan", "insp.checkpoints", "insp.done", "insp.late", "insp.missed", "insp.pending", "insp.verified"]
        .map((k) => h("th", {}, t(k))))), h("tbody", {}, rows)), plans]
    : h("p", { class: "muted" }, t("insp.noRounds")));
}

function renderExceptions(items) {
  fill($("#exceptions"), items.length
    ? items.map((x) => h("li", { dataset: { kind: x.kind } }, h("strong", {}, reason(x.kind)), " · ",
      dateTime(x.at)))
    : h("li", { class: "muted" }, t("insp.noExceptions")));
}

$("#day-form").addEventListener("submit", (e) => { e.preventDefault(); showDay(); });

boot({
  titleKey: "insp.title",
  async start() {
    initMap(await api("GET", "/console/config"));
    if (!$("#i-date").value) $("#i-date").value = today();
    try {
      state.reasons = await api("GET", "/inspections/reasons");
      await loadTechnicians();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) throw error;
      $("#page-error").textContent = error.message;
    }
    setTimeout(() => state.map.invalidateSize(), 0);
  },
  rerender() {
    renderTechnicians();
    if (state.day) showDay();
  },
});
