// Outages: draw an area on the map, see who it affects (POST /outages/preview), declare it,
// change its ETR, move it through its states (restore). Live: other dispatchers' changes and
// calls absorbed arrive as "changed: outage" and the list reloads.
/* global L */
import { $, api, ApiError, boot, dateTime, fill, h, label, Live, livePill, t } from "./console.js";
import { baseMap } from "./map.js";

const TYPES = ["water_outage", "low_pressure", "emergency_repair", "planned_maintenance"];
const STATUS_COLORS = { suspected: "#f9ab00", confirmed: "#d93025", restoring: "#1a73e8" };
const state = {
  map: null, areas: null, draft: null, points: [], drawing: false, outages: [], live: null,
  previewTimer: 0, selected: null,
};
window.crewlineOutages = state; // read by the browser tests

function initMap(cfg) {
  if (state.map) return;
  const map = baseMap(cfg, { doubleClickZoom: false }); // a double click ends no drawing
  state.map = map;
  state.areas = L.layerGroup().addTo(map);
  state.draft = L.polygon([], { color: "#111", weight: 2, dashArray: "5 5", fillOpacity: 0.15 }).addTo(map);
  map.on("click", (event) => {
    if (!state.drawing) return;
    state.points.push([event.latlng.lat, event.latlng.lng]);
    redrawDraft();
  });
}

// -- drawing and preview ------------------------------------------------------------------------
function area() {
  if (state.points.length < 3) return null;
  const ring = state.points.map(([lat, lon]) => [lon, lat]);
  ring.push(ring[0]);
  return { kind: "polygon", geometry: { type: "Polygon", coordinates: [ring] } };
}

function redrawDraft() {
  state.draft.setLatLngs(state.points);
  $("#draw-hint").textContent = state.drawing ? t("outages.hint", { n: state.points.length }) : "";
  $("#draw-toggle").textContent = t(state.drawing ? "outages.drawing" : "outages.draw");
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(preview, 300);
}

async function preview() {
  const a = area();
  if (!a) {
    fill($("#preview"), h("p", { class: "muted" }, t("outages.drawFirst")));
    return;
  }
  try {
    const p = await api("POST", "/outages/preview", { json: { area: a } });
    fill($("#preview"), h("p", { class: "preview-count", dataset: { customers: p.customers } },
      t("outages.preview", { points: p.service_points, customers: p.customers, sms: p.reachable_by_sms })));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    fill($("#preview"), h("p", { class: "form-error" }, error.message));
  }
}

$("#draw-toggle").addEventListener("click", () => { state.drawing = !state.drawing; redrawDraft(); });
$("#draw-undo").addEventListener("click", () => { state.points.pop(); redrawDraft(); });
$("#draw-clear").addEventListener("click", () => { state.points = []; redrawDraft(); });

// -- the declare form ---------------------------------------------------------------------------
function renderForm() {
  const type = $("#o-type");
  const status = $("#o-status");
  const [tv, sv] = [type.value, status.value];
  fill(type, TYPES.map((x) => h("option", { value: x }, label("outageType", x))));
  fill(status, ["confirmed", "suspected"].map((x) => h("option", { value: x }, label("outageStatus", x))));
  if (tv) type.value = tv;
  if (sv) status.value = sv;
}

function showFormError(form, error) {
  const slots = [...form.querySelectorAll("[data-error-for]")];
  const slot = slots.find((s) => error.field && s.dataset.errorFor.split(" ").some(
    (f) => error.field === f || error.field.startsWith(`${f}.`))) || slots.find((s) => s.dataset.errorFor === "");
  slot.textContent = error.message;
}

$("#declare-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  for (const s of form.querySelectorAll("[data-error-for]")) s.textContent = "";
  $("#declare-message").textContent = "";
  const etr = form.etr.value ? new Date(form.etr.value).toISOString() : null;
  const body = { type: form.type.value, area_name: form.area_name.value.trim(),
    description: form.description.value.trim() || null, status: form.status.value, etr, area: area() };
  try {
    const o = await api("POST", "/outages", { json: body });
    $("#declare-message").textContent = t("outages.declared", { ref: o.ref, customers: o.affected_customers });
    form.reset();
    renderForm();
    state.points = [];
    state.drawing = false;
    redrawDraft();
    await loadOutages();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    showFormError(form, error);
  }
});

// -- the list -----------------------------------------------------------------------------------
function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function renderList() {
  const list = $("#outages");
  $("#outage-count").textContent = t("outages.count", { count: state.outages.length });
  state.areas.clearLayers();
  for (const o of state.outages) {
    L.geoJSON(o.area, { style: { color: STATUS_COLORS[o.status] || "#555", weight: o.id === state.selected ? 4 : 2,
      fillOpacity: 0.18 } }).addTo(state.areas).on("click", () => { state.selected = o.id; renderList(); });
  }
  if (!state.outages.length) {
    fill(list, h("li", { class: "muted empty" }, t("outages.none")));
    return;
  }
  fill(list, state.outages.map((o) => {
    const etrInput = h("input", { type: "datetime-local", value: localInput(o.etr), "aria-label": t("outages.etr") });
    const message = h("div", { class: "ok small", role: "status" });
    const error = h("div", { class: "form-error small", role: "alert" });
    const act = async (fn) => {
      error.textContent = "";
      try { await fn(); message.textContent = t("outages.saved"); await loadOutages(); } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        error.textContent = e.message;
      }
    };
    return h("li", { dataset: { id: o.id }, class: o.id === state.selected ? "selected" : null },
      h("div", { class: "outage-item" },
        h("div", { class: "q-top" }, h("span", { class: "q-number" }, o.ref),
          h("span", { class: `badge outage-${o.status}` }, label("outageStatus", o.status)),
          h("span", { class: "badge" }, label("outageType", o.type))),
        h("div", {}, o.area_name),
        h("div", { class: "muted small" }, o.etr ? t("outages.etrAt", { time: dateTime(o.etr) })
          : t("outages.noEtr"), " · ", t("outages.affected", { n: o.affected_customers }), " · ",
        t("outages.linked", { n: o.linked_tickets })),
        h("div", { class: "row" }, etrInput, h("button", {
          type: "button", class: "secondary etr-save",
          onclick: () => act(() => api("PATCH", `/outages/${o.id}`, {
            json: { etr: etrInput.value ? new Date(etrInput.value).toISOString() : null } })),
        }, t("outages.changeEtr"))),
        h("div", { class: "row" }, o.allowed_transitions.map((to) => h("button", {
          type: "button", class: to === "restored" ? "primary" : "secondary", dataset: { to },
          onclick: () => act(() => api("POST", `/outages/${o.id}/transitions`, { json: { to } })),
        }, label("outageTo", to)))),
        error, message));
  }));
}

async function loadOutages() {
  try {
    state.outages = await api("GET", "/outages", { query: { active: true, limit: 200 } });
    $("#page-error").textContent = "";
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    $("#page-error").textContent = error.message;
    state.outages = [];
  }
  renderList();
}

let reloadTimer = 0;
function onLive(msg) {
  if (msg.type === "changed" && msg.kind === "outage" && !reloadTimer) {
    reloadTimer = setTimeout(() => { reloadTimer = 0; loadOutages(); }, 300);
  }
}

boot({
  titleKey: "outages.title",
  async start() {
    initMap(await api("GET", "/console/config"));
    renderForm();
    redrawDraft();
    state.live = state.live || new Live({ onMessage: onLive, onResync: loadOutages, onState: livePill });
    state.live.start();
    await loadOutages();
    setTimeout(() => state.map.invalidateSize(), 0);
  },
  rerender() {
    renderForm();
    redrawDraft();
    renderList();
    livePill($("#live-state").dataset.state || "off");
  },
  stop() { if (state.live) state.live.stop(); },
});
