// The wall screen: open tickets by category and status, SLA, crews, today's figures, SMS,
// inspections and outages. Refreshed every 15 s and a moment after any live ticket change;
// charts are SVG drawn here (no chart library).
import { $, api, ApiError, boot, fill, formatTime, h, label, Live, livePill, t } from "./console.js";

const REFRESH_MS = 15000;
const SVG = "http://www.w3.org/2000/svg";
const STATUS_COLORS = {
  new: "#ef5350", assigned: "#ffa726", accepted: "#ffd54f", en_route: "#42a5f5", on_site: "#66bb6a",
};
const CREW_COLORS = {
  available: "#66bb6a", assigned: "#ffa726", en_route: "#42a5f5", on_site: "#ab47bc", offline: "#90a4ae",
};
const state = { summary: null, timer: 0, live: null, soon: 0 };
window.crewlineWall = state; // read by the browser tests

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Horizontal stacked bars: rows of {label, parts: [{key, value, color, name}]}. */
function stackedBars(rows, { width = 760, labelWidth = 150, bar = 26, gap = 12 } = {}) {
  const max = Math.max(1, ...rows.map((r) => r.parts.reduce((s, p) => s + p.value, 0)));
  const height = rows.length * (bar + gap) + 4;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
  const span = width - labelWidth - 60;
  rows.forEach((row, i) => {
    const y = i * (bar + gap);
    chart.append(svg("text", { x: 0, y: y + bar * 0.7, "font-size": 17 }, row.label));
    let x = labelWidth;
    let total = 0;
    for (const p of row.parts) {
      if (!p.value) continue;
      const w = (p.value / max) * span;
      chart.append(svg("rect", { x, y, width: Math.max(w, 2), height: bar, fill: p.color, rx: 3 },
        svg("title", {}, `${p.name}: ${p.value}`)));
      if (w > 22) {
        chart.append(svg("text", { x: x + w / 2, y: y + bar * 0.7, "font-size": 14, "text-anchor": "middle",
          class: "on-bar" }, String(p.value)));
      }
      x += w;
      total += p.value;
    }
    chart.append(svg("text", { x: x + 8, y: y + bar * 0.7, "font-size": 17, "font-weight": 700 }, String(total)));
  });
  return chart;
}

function legend(entries) {
  return h("div", { class: "chart-legend" }, entries.map(([color, name]) => {
    const sw = h("span", { class: "swatch" });
    sw.style.background = color; // CSSOM, allowed by the page's CSP
    return h("span", {}, sw, name);
  }));
}

function kpi(value, name, cls = "") {
  return h("div", { class: "kpi" }, h("div", { class: `big ${cls}`, dataset: { kpi: name } }, String(value)),
    h("div", { class: "label" }, name));
}

function render() {
  const s = state.summary;
  if (!s) return;
  const cats = Object.keys(s.tickets.open_by_category_status).sort();
  fill($("#open-tickets"),
    h("div", { class: "kpis" }, kpi(s.tickets.open, t("wall.open"))),
    cats.length
      ? [stackedBars(cats.map((c) => ({
        label: label("category", c),
        parts: Object.keys(STATUS_COLORS).map((st) => ({
          key: st, value: s.tickets.open_by_category_status[c][st] || 0, color: STATUS_COLORS[st],
          name: label("status", st),
        })),
      }))), legend(Object.entries(STATUS_COLORS).map(([st, c]) => [c, label("status", st)]))]
      : h("p", { class: "muted" }, t("wall.none")));
  fill($("#sla"), h("div", { class: "kpis" },
    kpi(s.sla.breached_open, t("wall.breached"), s.sla.breached_open ? "bad" : ""),
    kpi(s.sla.warning_open, t("wall.warning"), s.sla.warning_open ? "warn" : ""),
    kpi(s.sla.missed_today, t("wall.missedToday"))));
  const crewRows = Object.keys(CREW_COLORS).map((st) => ({
    label: label("crewStatus", st),
    parts: [{ key: st, value: s.crews.by_status[st] || 0, color: CREW_COLORS[st], name: label("crewStatus", st) }],
  }));
  fill($("#crews"), stackedBars(crewRows, { width: 420, labelWidth: 110, bar: 22, gap: 8 }),
    s.crews.stale_on_shift ? h("p", { class: "muted" }, t("wall.staleCrews", { n: s.crews.stale_on_shift })) : null);
  fill($("#today"), h("div", { class: "kpis" },
    kpi(s.tickets.created_today, t("wall.created")), kpi(s.tickets.resolved_today, t("wall.resolved"))));
  const sent = s.sms.sent;
  const delivered = s.sms.delivered;
  const ratio = sent ? Math.round((delivered / sent) * 100) : 0;
  const ring = svg("svg", { viewBox: "0 0 120 120", width: 120, height: 120, role: "img" },
    svg("circle", { cx: 60, cy: 60, r: 48, fill: "none", stroke: "#2c4460", "stroke-width": 16 }),
    svg("circle", { cx: 60, cy: 60, r: 48, fill: "none", stroke: "#66bb6a", "stroke-width": 16,
      "stroke-dasharray": `${(ratio / 100) * 301.6} 301.6`, transform: "rotate(-90 60 60)" }),
    svg("text", { x: 60, y: 67, "text-anchor": "middle", "font-size": 22, "font-weight": 700 }, `${ratio}%`));
  fill($("#sms"), h("div", { class: "kpis" }, ring,
    kpi(sent, t("wall.smsSent")), kpi(delivered, t("wall.smsDelivered")),
    kpi(s.sms.failed, t("wall.smsFailed"), s.sms.failed ? "bad" : "")));
  const i = s.inspections;
  fill($("#inspections"), i
    ? h("div", { class: "kpis" }, kpi(`${i.complete}/${i.rounds}`, t("wall.roundsComplete")),
      kpi(i.visits, t("wall.visits")), kpi(i.flagged, t("wall.flagged"), i.flagged ? "warn" : ""))
    : h("p", { class: "muted" }, t("wall.notYet")));
  const o = s.outages;
  fill($("#outages"), o
    ? h("div", { class: "kpis" }, kpi(o.open, t("wall.outagesOpen"), o.open ? "warn" : ""),
      kpi(o.calls_absorbed_today, t("wall.absorbed")), kpi(o.restored_today, t("wall.restored")))
    : h("p", { class: "muted" }, t("wall.notYet")));
  $("#updated").textContent = t("wall.updated", { time: formatTime(s.at, { timeStyle: "medium" }) });
}

async function refresh() {
  try {
    state.summary = await api("GET", "/console/summary");
    $("#page-error").textContent = "";
    render();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $("#page-error").textContent = error.message;
  }
}

function refreshSoon() {
  // a burst of ticket changes costs one summary query
  if (state.soon) return;
  state.soon = setTimeout(() => { state.soon = 0; refresh(); }, 1000);
}

boot({
  titleKey: "wall.title",
  async start() {
    await refresh();
    clearInterval(state.timer);
    state.timer = setInterval(refresh, REFRESH_MS);
    state.live = state.live || new Live({ onMessage: refreshSoon, onResync: refreshSoon, onState: livePill });
    state.live.start();
  },
  rerender() {
    render();
    livePill($("#live-state").dataset.state || "off");
  },
  stop() {
    clearInterval(state.timer);
    if (state.live) state.live.stop();
  },
});
