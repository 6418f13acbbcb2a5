// The dispatcher's map console: the ticket queue by SLA countdown, the map (tickets by status and
// SLA level, crews live with heading and status, suggested routes), ticket detail with suggested
// crews and one-click assignment. Live over /api/v1/live.
/* global L */
import {
  $, api, ApiError, boot, clock, dateTime, distance, fill, formatTime, h, label, Live, livePill,
  minutes, t,
} from "./console.js";
import { baseMap, CREW_COLORS, CrewLayer } from "./map.js";

const STATUS_COLORS = {
  new: "#d93025", assigned: "#e37400", accepted: "#f9ab00", en_route: "#1a73e8", on_site: "#1e8e3e",
};
const SLA_RING = { 0: ["#ffffff", 1.5], 1: ["#f9ab00", 4], 2: ["#7f0000", 5] };

const state = {
  config: null,
  map: null,
  tickets: new Map(), // id → console ticket row
  markers: new Map(), // id → L.circleMarker
  crews: null, // CrewLayer
  crewNames: new Map(),
  selected: null, // ticket id
  detail: null, // {ticket, suggestions, assignment}
  routes: null, // L.LayerGroup
  outages: null, // L.LayerGroup of open outage areas
  live: null,
  queueFrame: 0,
  filter: "",
  stats: { messages: 0, crewItems: 0, ticketItems: 0, latencies: [], record: false, handlerMs: [], drawMs: [] },
};
window.crewlineLive = state.stats; // read by the console benchmark
window.crewlineConsole = state; // read by the browser tests

// -- map ------------------------------------------------------------------------------------------
function initMap() {
  if (state.map) return;
  const map = baseMap(state.config);
  state.map = map;
  state.outages = L.layerGroup().addTo(map);
  state.routes = L.layerGroup().addTo(map);
  state.crews = new CrewLayer({
    onDraw: (_, ms) => { if (state.stats.record && state.stats.drawMs.length < 100000) state.stats.drawMs.push(ms); },
    onCrewClick: (crew, latlng) => {
      L.popup().setLatLng(latlng).setContent(crewPopup(crew)).openOn(map);
    },
  }).addTo(map);
}

function crewPopup(c) {
  return h("div", { class: "crew-popup" },
    h("strong", {}, c.name), " · ", label("crewStatus", c.status), " · ", label("shift", c.shift),
    c.speed !== null ? ` · ${Math.round(c.speed * 3.6)} km/h` : "",
    c.stale ? h("div", { class: "muted" }, t("map.stale")) : null,
    c.at ? h("div", { class: "muted" }, formatTime(c.at, { timeStyle: "medium" })) : null);
}

function slaLevel(tk, now = Date.now()) {
  if (tk.due_at && Date.parse(tk.due_at) <= now) return 2;
  if (tk.warn_at && Date.parse(tk.warn_at) <= now) return Math.max(1, tk.sla_level);
  return tk.sla_level;
}

function markerStyle(tk) {
  const [ring, weight] = SLA_RING[Math.min(slaLevel(tk), 2)];
  const selected = tk.id === state.selected;
  return {
    radius: selected ? 11 : 8, color: selected ? "#111111" : ring, weight: selected ? 4 : weight,
    fillColor: STATUS_COLORS[tk.status] || "#5f6368", fillOpacity: 0.95, opacity: 1,
  };
}

function upsertMarker(tk) {
  let marker = state.markers.get(tk.id);
  if (!tk.open || tk.lon === null) {
    if (marker) { marker.remove(); state.markers.delete(tk.id); }
    return;
  }
  if (!marker) {
    marker = L.circleMarker([tk.lat, tk.lon], markerStyle(tk)).addTo(state.map);
    marker.on("click", () => select(tk.id));
    state.markers.set(tk.id, marker);
  } else {
    marker.setLatLng([tk.lat, tk.lon]);
    marker.setStyle(markerStyle(tk));
  }
  marker.unbindTooltip();
  marker.bindTooltip(`${tk.number} · ${label("category", tk.category)} · ${label("status", tk.status)}`);
}

function renderLegend() {
  const dot = (color) => h("span", { class: "dot", dataset: { c: color } });
  const rows = [
    h("strong", {}, t("map.tickets")),
    ...Object.keys(STATUS_COLORS).map((s) => h("div", {}, dot(STATUS_COLORS[s]), label("status", s))),
    h("div", {}, h("span", { class: "ring warn" }), t("map.slaWarn")),
    h("div", {}, h("span", { class: "ring breach" }), t("map.slaBreach")),
    h("strong", {}, t("map.crews")),
    ...Object.keys(CREW_COLORS).map((s) => h("div", {}, h("span", { class: "arrow", dataset: { c: CREW_COLORS[s] } }), label("crewStatus", s))),
  ];
  fill($("#legend"), h("div", { class: "legend-title" }, t("map.legend")), rows);
  // colours through CSSOM (the page's CSP allows no inline style attributes)
  for (const el of $("#legend").querySelectorAll("[data-c]")) {
    if (el.classList.contains("arrow")) el.style.borderBottomColor = el.dataset.c;
    else el.style.background = el.dataset.c;
  }
}

// -- queue ----------------------------------------------------------------------------------------
function sortedTickets() {
  const f = state.filter;
  return [...state.tickets.values()]
    .filter((tk) => tk.open)
    .filter((tk) => !f || [tk.number, tk.address, tk.summary, label("category", tk.category)]
      .some((v) => v && v.toLowerCase().includes(f)))
    .sort((a, b) => (a.due_at ? Date.parse(a.due_at) : Infinity) - (b.due_at ? Date.parse(b.due_at) : Infinity)
      || a.id - b.id);
}

function countdownText(tk, now) {
  if (!tk.due_at) return [t("queue.noClock"), "none"];
  const left = (Date.parse(tk.due_at) - now) / 1000;
  const what = label("clock", tk.due_clock);
  if (left <= 0) return [`${what} · ${t("queue.overdue", { time: clock(left) })}`, "over"];
  const warn = tk.warn_at && Date.parse(tk.warn_at) <= now;
  return [`${what} · ${t("queue.left", { time: clock(left) })}`, warn ? "warn" : "ok"];
}

function scheduleQueue() {
  if (state.queueFrame) return;
  state.queueFrame = requestAnimationFrame(() => { state.queueFrame = 0; renderQueue(); });
}

function renderQueue() {
  const list = $("#queue");
  const focusedId = document.activeElement?.closest?.("#queue li")?.dataset.id;
  const now = Date.now();
  const items = sortedTickets();
  $("#queue-count").textContent = t("queue.count", { count: items.length });
  if (!items.length) {
    fill(list, h("li", { class: "muted empty" }, t("queue.empty")));
    return;
  }
  fill(list, items.map((tk) => {
    const [text, cls] = countdownText(tk, now);
    return h("li", { dataset: { id: tk.id }, class: tk.id === state.selected ? "selected" : null },
      h("button", {
        type: "button", class: `queue-item sla-${cls}`, "aria-current": tk.id === state.selected ? "true" : null,
        onclick: () => select(tk.id),
      },
      h("span", { class: "q-top" },
        h("span", { class: "q-number" }, tk.number),
        h("span", { class: `badge status-${tk.status}` }, label("status", tk.status)),
        h("span", { class: `badge priority-${tk.priority}` }, label("priority", tk.priority))),
      h("span", { class: "q-mid" }, label("category", tk.category), tk.address ? ` · ${tk.address}` : ""),
      h("span", { class: `countdown ${cls}`, dataset: { id: tk.id } }, text)));
  }));
  if (focusedId) list.querySelector(`li[data-id="${focusedId}"] button`)?.focus();
}

/** Once a second: the countdowns (text only) and the map rings of tickets crossing a threshold. */
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("#queue .countdown")) {
    const tk = state.tickets.get(Number(el.dataset.id));
    if (!tk) continue;
    const [text, cls] = countdownText(tk, now);
    if (el.textContent !== text) el.textContent = text;
    if (!el.classList.contains(cls)) {
      el.className = `countdown ${cls}`;
      el.parentElement.className = `queue-item sla-${cls}`;
      const marker = state.markers.get(tk.id);
      if (marker) marker.setStyle(markerStyle(tk));
    }
  }
  const due = $("#detail .countdown");
  if (due && state.selected && state.tickets.has(state.selected)) {
    const [text, cls] = countdownText(state.tickets.get(state.selected), now);
    due.textContent = text;
    due.className = `countdown ${cls}`;
  }
}

$("#queue").addEventListener("keydown", (event) => {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const buttons = [...$("#queue").querySelectorAll("button")];
  const i = buttons.indexOf(document.activeElement);
  const next = buttons[Math.max(0, Math.min(buttons.length - 1, i + (event.key === "ArrowDown" ? 1 : -1)))];
  if (next) { event.preventDefault(); next.focus(); }
});

$("#queue-filter").addEventListener("input", (event) => {
  state.filter = event.target.value.trim().toLowerCase();
  renderQueue();
});

// -- ticket detail, suggestions, assignment -------------------------------------------------------
async function select(id) {
  state.selected = id;
  for (const tk of state.tickets.values()) {
    const m = state.markers.get(tk.id);
    if (m) m.setStyle(markerStyle(tk));
  }
  renderQueue();
  const tk = state.tickets.get(id);
  if (tk && tk.lon !== null) state.map.panTo([tk.lat, tk.lon]);
  await loadDetail(id);
}

async function loadDetail(id) {
  $("#page-error").textContent = "";
  try {
    const ticket = await api("GET", `/tickets/${id}`);
    let suggestions = null;
    let assignment = null;
    if (ticket.status === "new") suggestions = await api("GET", `/tickets/${id}/suggestions`, { query: { limit: 5 } });
    else assignment = await api("GET", `/tickets/${id}/assignment`);
    if (state.selected !== id) return;
    state.detail = { ticket, suggestions, assignment };
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (state.selected === id) $("#page-error").textContent = error.message;
    state.detail = null;
  }
  renderDetail();
}

function drawRoutes() {
  state.routes.clearLayers();
  const d = state.detail;
  const highlight = [];
  if (d?.suggestions) {
    d.suggestions.suggestions.forEach((s, i) => {
      highlight.push(s.crew_id);
      if (!s.route) return;
      L.geoJSON(s.route, {
        style: { color: i === 0 ? "#1a73e8" : "#5f6368", weight: i === 0 ? 6 : 4, opacity: i === 0 ? 0.9 : 0.55,
          dashArray: s.eta_source === "road" ? null : "6 6" },
      }).addTo(state.routes).on("click", () => focusSuggestion(s.crew_id));
    });
  }
  if (d?.assignment) {
    highlight.push(d.assignment.crew_id);
    if (d.assignment.route) {
      L.geoJSON(d.assignment.route, { style: { color: "#1a73e8", weight: 6, opacity: 0.9 } }).addTo(state.routes);
    }
  }
  state.crews.setHighlight(highlight);
}

function previewRoute(crewId) {
  state.routes.eachLayer((layer) => layer.remove());
  state.routes.clearLayers();
  const s = state.detail?.suggestions?.suggestions.find((x) => x.crew_id === crewId);
  if (!s?.route) return;
  const line = L.geoJSON(s.route, { style: { color: "#1a73e8", weight: 7, opacity: 0.95 } }).addTo(state.routes);
  // move the map only when the route leaves the view (hovering down the list must not jump)
  if (!state.map.getBounds().contains(line.getBounds())) state.map.fitBounds(line.getBounds().pad(0.3), { maxZoom: 17 });
  state.crews.setHighlight([crewId]);
}

function focusSuggestion(crewId) {
  $(`#detail button[data-crew="${crewId}"]`)?.focus();
}

function fact(name, value) {
  return value === null || value === undefined || value === "" ? null : [h("dt", {}, name), h("dd", {}, value)];
}

function renderDetail() {
  const box = $("#detail");
  const d = state.detail;
  if (!d) {
    fill(box, h("p", { class: "muted" }, t("detail.pick")));
    if (state.routes) { state.routes.clearLayers(); state.crews.setHighlight([]); }
    return;
  }
  const tk = d.ticket;
  const row = state.tickets.get(tk.id);
  const [countText, countCls] = row ? countdownText(row, Date.now()) : ["", "none"];
  const parts = [
    h("h3", {}, tk.number, " ", h("span", { class: `badge status-${tk.status}` }, label("status", tk.status)),
      " ", h("span", { class: `badge priority-${tk.priority}` }, label("priority", tk.priority))),
    row ? h("p", { class: `countdown ${countCls}` }, countText) : null,
    h("dl", { class: "facts" },
      fact(t("new.category"), label("category", tk.category)),
      fact(t("detail.address"), tk.address),
      fact(t("new.description"), tk.description),
      fact(t("detail.channel"), label("channel", tk.channel)),
      fact(t("detail.created"), dateTime(tk.created_at))),
  ];
  if (d.suggestions) parts.push(renderSuggestions(d.suggestions, tk));
  if (d.assignment) parts.push(renderAssignment(d.assignment, tk));
  parts.push(h("div", { id: "detail-message", class: "ok", role: "status" }));
  fill(box, parts);
  drawRoutes();
}

function renderSuggestions(s, tk) {
  const rows = s.suggestions.map((x) => h("tr", { dataset: { crew: x.crew_id } },
    h("td", {}, String(x.rank)),
    h("td", {}, h("strong", {}, x.crew), h("div", { class: "muted small" }, label("crewStatus", x.status), " · ",
      t("sug.jobs", { jobs: x.active_jobs, capacity: x.capacity }))),
    h("td", {}, minutes(x.eta_s), x.eta_source !== "road" ? h("div", { class: "muted small" }, t("sug.estimate")) : null),
    h("td", {}, distance(x.road_distance_m ?? x.straight_distance_m)),
    h("td", {}, h("button", {
      type: "button", class: "primary assign", dataset: { crew: x.crew_id },
      "aria-label": t("sug.assignTo", { crew: x.crew }),
      onclick: () => assign(tk, x),
      onfocus: () => previewRoute(x.crew_id), onmouseenter: () => previewRoute(x.crew_id),
    }, t("sug.assign")))));
  return h("section", { class: "suggestions", "aria-labelledby": "sug-title" },
    h("h4", { id: "sug-title" }, t("sug.title"), " ", h("kbd", {}, "Alt+A")),
    h("p", { class: "muted small" }, s.skill ? t("sug.skill", { skill: label("skill", s.skill) }) : t("sug.anySkill")),
    s.suggestions.length
      ? h("table", { class: "sug-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, t("sug.crew")), h("th", {}, t("sug.eta")),
          h("th", {}, t("sug.distance")), h("th", {}, ""))),
        h("tbody", {}, rows))
      : h("p", { class: "muted" }, t("sug.none")));
}

function renderAssignment(a, tk) {
  const eta = a.current_eta_s ?? a.eta_s;
  return h("section", { class: "assignment" },
    h("h4", {}, t("assign.current", { crew: a.crew })),
    h("dl", { class: "facts" },
      fact(t("detail.eta"), a.arrived_at ? t("detail.arrived", { time: formatTime(a.arrived_at, { timeStyle: "medium" }) })
        : eta !== null ? minutes(eta) : null),
      fact(t("sug.distance"), distance(a.road_distance_m))),
    ["assigned", "accepted", "en_route"].includes(tk.status)
      ? h("button", { type: "button", class: "secondary", onclick: () => unassign(tk) }, t("assign.unassign")) : null);
}

async function assign(tk, suggestion) {
  $("#page-error").textContent = "";
  try {
    await api("POST", `/tickets/${tk.id}/assignment`, { json: { crew_id: suggestion.crew_id } });
    await loadDetail(tk.id);
    const msg = $("#detail-message");
    if (msg) msg.textContent = t("sug.assigned", { number: tk.number, crew: suggestion.crew });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    await loadDetail(tk.id); // the suggestions as they are now
    $("#page-error").textContent = error.message;
  }
}

async function unassign(tk) {
  $("#page-error").textContent = "";
  try {
    await api("DELETE", `/tickets/${tk.id}/assignment`);
    await loadDetail(tk.id);
    const msg = $("#detail-message");
    if (msg) msg.textContent = t("assign.done");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $("#page-error").textContent = error.message;
  }
}

// -- data and live updates ------------------------------------------------------------------------
function applyTickets(items) {
  let selectedChanged = false;
  for (const tk of items) {
    if (tk.open) state.tickets.set(tk.id, tk);
    else state.tickets.delete(tk.id);
    upsertMarker(tk);
    if (tk.id === state.selected) selectedChanged = true;
  }
  scheduleQueue();
  if (selectedChanged) scheduleDetailRefresh();
}

let detailTimer = 0;
function scheduleDetailRefresh() {
  // an ETA refresh comes with every position of the assigned crew: at most one reload a second
  if (detailTimer) return;
  detailTimer = setTimeout(() => { detailTimer = 0; if (state.selected) loadDetail(state.selected); }, 1000);
}

async function loadAll() {
  const [tickets, crews] = await Promise.all([api("GET", "/console/tickets"), api("GET", "/console/crews")]);
  for (const m of state.markers.values()) m.remove();
  state.markers.clear();
  state.tickets.clear();
  applyTickets(tickets);
  state.crews.crews.clear();
  state.crews.set(crews);
}

const OUTAGE_COLORS = { suspected: "#f9ab00", confirmed: "#d93025", restoring: "#1a73e8" };

async function loadOutages() {
  let areas;
  try {
    areas = await api("GET", "/outages/geojson");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    return; // no outages on this server (or not for this role): the map shows the rest
  }
  state.outages.clearLayers();
  L.geoJSON(areas, {
    style: (f) => ({ color: OUTAGE_COLORS[f.properties.status] || "#5f6368", weight: 2, fillOpacity: 0.12,
      dashArray: f.properties.status === "suspected" ? "6 4" : null }),
    onEachFeature: (f, layer) => layer.bindTooltip(
      `${f.properties.ref || ""} · ${label("outageType", f.properties.type)} · ${label("outageStatus", f.properties.status)}`),
  }).addTo(state.outages);
}

let outageTimer = 0;
function onLive(msg) {
  if (msg.type === "changed" && msg.kind === "outage" && !outageTimer) {
    outageTimer = setTimeout(() => { outageTimer = 0; loadOutages().catch(() => {}); }, 300);
  }
  state.stats.messages += 1;
  if (msg.type === "tickets") {
    state.stats.ticketItems += msg.items.length;
    applyTickets(msg.items);
  } else if (msg.type === "crews") {
    const started = performance.now();
    state.stats.crewItems += msg.items.length;
    if (state.stats.record) { // the benchmark's: receive time − fix time, per crew
      const lat = state.stats.latencies;
      for (const c of msg.items) if (c.at && lat.length < 500000) lat.push(msg.received_at - Date.parse(c.at));
    }
    state.crews.set(msg.items);
    if (state.stats.record) state.stats.handlerMs.push(performance.now() - started + msg.parse_ms);
  }
}

boot({
  titleKey: "dispatch.title",
  async start() {
    state.config = await api("GET", "/console/config");
    initMap();
    renderLegend();
    state.live = state.live || new Live({
      onMessage: onLive,
      onResync: () => Promise.all([loadAll(), loadOutages()]).catch(() => {}),
      onState: livePill,
    });
    state.live.start();
    try {
      await Promise.all([loadAll(), loadOutages()]);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) throw error;
      $("#page-error").textContent = error.message; // e.g. an agent: the map is not theirs
    }
    setTimeout(() => state.map.invalidateSize(), 0);
    $("#queue button")?.focus();
  },
  rerender() {
    renderLegend();
    renderQueue();
    renderDetail();
    livePill($("#live-state").dataset.state || "off");
    for (const tk of state.tickets.values()) upsertMarker(tk);
  },
  stop() {
    if (state.live) state.live.stop();
    state.selected = null;
    state.detail = null;
  },
  shortcuts: {
    KeyQ: () => ($("#queue li.selected button") || $("#queue button") || $("#queue-filter")).focus(),
    KeyA: () => $("#detail button.assign")?.focus(),
    KeyD: () => $("#detail-panel").focus(),
  },
});
setInterval(tick, 1000);
