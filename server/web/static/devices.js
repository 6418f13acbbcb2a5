// Handsets: technicians with their handsets (GET /api/v1/devices/technicians), pairing a new one
// with a one-time code shown large with its QR code (POST /devices/pairing-codes, the SVG from
// POST /devices/pairing-codes/qr), followed until used or expired (GET /devices/pairing-codes/{id}),
// and revoking one after a confirmation (DELETE /devices/{id}). Dispatchers, managers and admins
// (the API decides). DOM is built with textContent only.
import "./devices-i18n.js";
import { $, api, ApiError, boot, clock, dateTime, fill, h, session, t } from "./console.js";

const POLL_MS = 2000;
const LIST_MS = 15000;
const state = { techs: [], pairing: null, revoke: null, listTimer: null, forbidden: false, notice: null };

const nameOf = (tech) => tech.full_name || tech.username;

function showError(error) {
  if (!(error instanceof ApiError)) throw error;
  state.forbidden = error.status === 403;
  $("#page-error").textContent = state.forbidden ? t("dev.forbidden") : error.message;
}

async function load() {
  try {
    state.techs = await api("GET", "/devices/technicians",
      { query: { include_revoked: $("#dev-revoked").checked } });
    state.forbidden = false;
    $("#page-error").textContent = "";
  } catch (error) {
    state.techs = [];
    showError(error);
  }
  render();
}

function presence(d) {
  if (!d.presence) return h("span", { class: "badge presence-none" }, t("dev.never"));
  return h("span", { class: `badge presence-${d.presence}` },
    t(d.presence === "online" ? "dev.online" : "dev.offline", { time: dateTime(d.presence_at) }));
}

function deviceRow(tech, d) {
  const fresh = state.pairing?.device_id === d.id;
  return h("tr", { class: `device${d.revoked_at ? " revoked" : ""}${fresh ? " fresh" : ""}`,
    dataset: { device: d.id } },
  h("td", {}, d.name),
  h("td", {}, h("code", {}, d.id)),
  h("td", {}, d.revoked_at ? "" : presence(d)),
  h("td", {}, dateTime(d.created_at)),
  h("td", {}, d.revoked_at ? dateTime(d.revoked_at) : ""),
  h("td", { class: "actions" }, d.revoked_at ? "" : h("button", {
    type: "button", class: "secondary danger-text", "aria-label": t("dev.revoke.aria", { device: d.name, name: nameOf(tech) }),
    onclick: () => askRevoke(tech, d),
  }, t("dev.revoke"))));
}

function render() {
  if (state.forbidden) $("#page-error").textContent = t("dev.forbidden");
  $("#dev-notice").textContent = state.notice ? t(...state.notice) : "";
  const needle = $("#dev-filter").value.trim().toLowerCase();
  const match = (tech) => !needle || [tech.full_name, tech.username, ...tech.devices.flatMap((d) => [d.name, d.id])]
    .some((s) => (s || "").toLowerCase().includes(needle));
  const techs = state.techs.filter(match);
  const table = $(".dev-table");
  for (const body of table.querySelectorAll("tbody")) body.remove();
  if (!techs.length) {
    table.append(h("tbody", {}, h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("dev.noTechs")))));
    return;
  }
  for (const tech of techs) {
    const active = tech.devices.filter((d) => !d.revoked_at).length;
    const head = h("tr", { class: "tech" },
      h("th", { colspan: 5, scope: "rowgroup" },
        h("span", { class: "tech-name" }, nameOf(tech)), " ",
        tech.full_name ? h("span", { class: "muted small" }, tech.username) : "", " ",
        tech.is_active ? h("span", { class: "muted small" }, t("dev.handsets", { n: active }))
          : h("span", { class: "badge" }, t("dev.inactive"))),
      h("td", { class: "actions" }, h("button", {
        type: "button", class: "primary", disabled: !tech.is_active,
        "aria-label": t("dev.pairFor", { name: nameOf(tech) }), dataset: { pair: tech.id },
        onclick: () => startPairing(tech),
      }, t("dev.pair"))));
    const rows = tech.devices.length ? tech.devices.map((d) => deviceRow(tech, d))
      : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("dev.none")))];
    table.append(h("tbody", { dataset: { tech: tech.id } }, head, rows));
  }
}

// -- pairing ---------------------------------------------------------------------------------------
async function qrDataUrl(payload) {
  // the SVG needs the JWT, which an <img src> cannot send; a data: URL is what the CSP allows
  const response = await fetch("/api/v1/devices/pairing-codes/qr", {
    method: "POST", body: JSON.stringify({ payload }),
    headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" },
  });
  if (!response.ok) throw new ApiError(response.status, "qr", response.statusText);
  const blob = await response.blob();
  return new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.readAsDataURL(blob);
  });
}

function stopTimers() {
  const p = state.pairing;
  if (!p) return;
  clearInterval(p.tick);
  clearInterval(p.poll);
  p.tick = p.poll = null;
}

async function startPairing(tech) {
  await closePairing(false);
  $("#page-error").textContent = "";
  state.notice = null;
  render();
  let code;
  try {
    code = await api("POST", "/devices/pairing-codes", { json: { user_id: tech.id } });
  } catch (error) {
    showError(error);
    return;
  }
  state.pairing = { ...code, tech, status: "pending", device_id: null, device_name: "" };
  renderPairing();
  $("#pair-panel").hidden = false;
  $("#pair-title").focus();
  const p = state.pairing;
  p.tick = setInterval(renderPairing, 1000);
  p.poll = setInterval(() => pollPairing(p), POLL_MS);
  try {
    const url = await qrDataUrl(code.qr_payload);
    if (state.pairing === p && p.status === "pending") {
      $("#pair-qr").src = url;
      $("#pair-qr").hidden = false;
    }
  } catch (error) {
    showError(error);
  }
}

async function pollPairing(p) {
  let s;
  try {
    s = await api("GET", `/devices/pairing-codes/${p.id}`);
  } catch (error) {
    if (error instanceof ApiError && error.status) showError(error);
    return; // network: try again at the next tick
  }
  if (state.pairing !== p || s.state === "pending") return;
  p.status = s.state;
  p.device_id = s.device_id;
  stopTimers();
  if (s.state === "used") await load();
  const device = state.techs.flatMap((tech) => tech.devices).find((d) => d.id === s.device_id);
  p.device_name = device ? device.name : "";
  renderPairing();
}

function renderPairing() {
  const p = state.pairing;
  if (!p) return;
  $("#pair-title").textContent = t("dev.pairFor", { name: nameOf(p.tech) });
  const left = (new Date(p.expires_at).getTime() - Date.now()) / 1000;
  if (p.status === "pending" && left <= 0) {
    p.status = "expired";
    stopTimers();
  }
  const pending = p.status === "pending";
  $("#pair-code").textContent = pending ? p.code : "";
  $("#pair-code").hidden = !pending;
  $("#pair-qr").hidden = !pending || !$("#pair-qr").src;
  if (!pending) $("#pair-qr").removeAttribute("src");
  $("#pair-qr").alt = t("dev.qrAlt", { name: nameOf(p.tech) });
  $("#pair-countdown").textContent = pending ? t("dev.expiresIn", { time: clock(left) }) : "";
  $("#pair-countdown").classList.toggle("soon", pending && left < 60);
  const status = $("#pair-status");
  status.className = `pair-status ${p.status}`;
  status.textContent = p.status === "used" ? t("dev.paired", { device: p.device_name || "", id: p.device_id })
    : p.status === "expired" ? t("dev.expired") : "";
  $("#pair-again").hidden = p.status !== "expired";
}

async function closePairing(refocus = true) {
  const p = state.pairing;
  if (!p) return;
  stopTimers();
  state.pairing = null;
  $("#pair-panel").hidden = true;
  $("#pair-qr").removeAttribute("src");
  $("#pair-code").textContent = "";
  if (p.status === "pending") {
    // void the code: nobody should pair with a code nobody is looking at any more
    await api("DELETE", `/devices/pairing-codes/${p.id}`).catch(() => {});
  }
  if (refocus) $(`button[data-pair="${p.tech.id}"]`)?.focus();
}

// -- revoking ------------------------------------------------------------------------------------
function askRevoke(tech, device) {
  state.revoke = { tech, device };
  $("#revoke-text").textContent = t("dev.revokeText", { device: device.name, id: device.id, name: nameOf(tech) });
  $("#revoke-error").textContent = "";
  $("#revoke-dialog").showModal();
  $("#revoke-cancel").focus();
}

async function confirmRevoke() {
  const { device, tech } = state.revoke;
  const button = $("#revoke-confirm");
  button.disabled = true;
  try {
    await api("DELETE", `/devices/${encodeURIComponent(device.id)}`);
    $("#revoke-dialog").close("revoked");
    state.notice = ["dev.revokedDone", { device: device.name }];
    await load();
    $(`button[data-pair="${tech.id}"]`)?.focus();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $("#revoke-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

$("#revoke-confirm").addEventListener("click", confirmRevoke);
$("#revoke-dialog").addEventListener("close", () => { state.revoke = null; });
$("#pair-close").addEventListener("click", () => closePairing());
$("#pair-again").addEventListener("click", () => state.pairing && startPairing(state.pairing.tech));
$("#dev-filter").addEventListener("input", render);
$("#dev-revoked").addEventListener("change", load);
$("#dev-refresh").addEventListener("click", load);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("#revoke-dialog").open && state.pairing) {
    event.preventDefault();
    closePairing();
  }
});

boot({
  titleKey: "dev.title",
  start: async () => {
    await load();
    clearInterval(state.listTimer);
    state.listTimer = setInterval(() => { if (!document.hidden) load(); }, LIST_MS);
  },
  rerender: () => { render(); renderPairing(); },
  stop: () => { clearInterval(state.listTimer); closePairing(false); },
  shortcuts: { KeyF: () => $("#dev-filter").focus() },
});
