// Handsets: technicians with their handsets (GET /api/v1/devices/technicians), pairing a new one
// with a one-time code shown large with its QR code (POST /devices/pairing-codes, the SVG from
// POST /devices/pairing-codes/qr), followed until used or expired (GET /devices/pairing-codes/{id}),
// and revoking one after a confirmation (DELETE /devices/{id}). Dispatchers, managers and admins
// (the API decides). Managers and admins also see the dead letters: uplink payloads the bridge
// refused (GET /devices/dead-letters, filtered and paged; GET /devices/dead-letters/{id} for one
// whole). DOM is built with textContent only: payloads are hostile input, never parsed as HTML.
import { DL_REASONS } from "./devices-i18n.js";
import { $, api, ApiError, boot, clock, dateTime, fill, formatTime, h, language, session, t } from "./console.js";

const POLL_MS = 2000;
const LIST_MS = 15000;
const state = { techs: [], pairing: null, revoke: null, listTimer: null, forbidden: false, notice: null };
const DL_PAGE = 50;
const DL_ROLES = ["manager", "admin"];
const dl = { on: false, letters: [], more: false, loading: false, gen: 0, filters: {}, open: null };

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
  renderDeviceChoices();
}

function presence(d) {
  if (!d.presence) return h("span", { class: "badge presence-none" }, t("dev.never"));
  return h("span", { class: `badge presence-${d.presence}` },
    t(d.presence === "online" ? "dev.online" : "dev.offline", { time: dateTime(d.presence_at) }));
}

// the server saw a resync it can never satisfy (downlink already pruned): only a new pairing helps
function repair(d) {
  if (d.link_state !== "needs_repair") return null;
  const tip = t("dev.needsRepair.tip", { time: dateTime(d.needs_repair_since) });
  return h("span", { class: "badge needs-repair", title: tip, "aria-label": `${t("dev.needsRepair")}: ${tip}` },
    t("dev.needsRepair"));
}

function deviceRow(tech, d) {
  const fresh = state.pairing?.device_id === d.id;
  return h("tr", { class: `device${d.revoked_at ? " revoked" : ""}${fresh ? " fresh" : ""}`,
    dataset: { device: d.id } },
  h("td", {}, d.name),
  h("td", {}, h("code", {}, d.id)),
  h("td", {}, d.revoked_at ? "" : [presence(d), " ", repair(d)]),
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

// -- dead letters (managers and admins) -------------------------------------------------------------
const reasonName = (reason) => (DL_REASONS.includes(reason) ? t(`dl.r.${reason}`) : reason);
const receivedAt = (iso) => formatTime(iso, { dateStyle: "short", timeStyle: "medium" });

function size(bytes) {
  const number = (n, digits) => new Intl.NumberFormat(language(), { maximumFractionDigits: digits }).format(n);
  if (bytes < 1024) return t("dl.bytes", { n: number(bytes, 0) });
  if (bytes < 1024 * 1024) return t("dl.kib", { n: number(bytes / 1024, 1) });
  return t("dl.mib", { n: number(bytes / 1024 / 1024, 1) });
}

function renderReasonChoices() {
  const select = $("#dl-reason");
  const chosen = select.value;
  fill(select, h("option", { value: "" }, t("dl.anyReason")),
    DL_REASONS.map((r) => h("option", { value: r }, `${t(`dl.r.${r}`)} (${r})`)));
  select.value = chosen;
}

function renderDeviceChoices() {
  if (!dl.on) return;
  const ids = [...new Set(state.techs.flatMap((tech) => tech.devices.map((d) => d.id)))].sort();
  fill($("#dl-devices"), ids.map((id) => h("option", { value: id })));
}

function readFilters() {
  const filters = {};
  const device = $("#dl-device").value.trim();
  if (device) filters.device_id = device;
  if ($("#dl-reason").value) filters.reason = $("#dl-reason").value;
  const since = $("#dl-since").value; // local wall time, "2026-01-05T08:00"
  if (since) {
    const at = new Date(since);
    if (Number.isNaN(at.getTime())) return null;
    filters.since = at.toISOString(); // UTC with its offset ("Z"), as the API wants
  }
  return filters;
}

function dlForbidden() {
  // the API decides: a role that may not read them does not see the section at all
  dl.on = false;
  dl.letters = [];
  $("#dl-section").hidden = true;
  if ($("#dl-dialog").open) $("#dl-dialog").close();
}

async function loadLetters(more = false) {
  if (!dl.on) return;
  if (!more) {
    const filters = readFilters();
    if (!filters) {
      $("#dl-error").textContent = t("dl.badSince");
      return;
    }
    dl.filters = filters;
    dl.letters = [];
    dl.more = false;
  }
  const gen = ++dl.gen;
  const query = { ...dl.filters, limit: DL_PAGE };
  if (more && dl.letters.length) query.before_id = dl.letters[dl.letters.length - 1].id;
  dl.loading = true;
  $("#dl-error").textContent = "";
  renderLetters();
  try {
    const page = await api("GET", "/devices/dead-letters", { query });
    if (gen !== dl.gen) return; // the filters changed meanwhile
    dl.letters = dl.letters.concat(page);
    dl.more = page.length === DL_PAGE;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (gen !== dl.gen) return;
    if (error.status === 403) {
      dlForbidden();
      return;
    }
    $("#dl-error").textContent = error.message;
  } finally {
    if (gen === dl.gen) dl.loading = false;
  }
  renderLetters();
}

function letterRow(letter) {
  return h("tr", { dataset: { letter: letter.id } },
    h("td", { class: "nowrap" }, h("time", { datetime: letter.received_at }, receivedAt(letter.received_at))),
    h("td", {}, letter.device_id ? h("code", {}, letter.device_id) : h("span", { class: "muted" }, t("dl.noDevice"))),
    h("td", { title: letter.detail }, reasonName(letter.reason)),
    h("td", { class: "num nowrap" }, size(letter.payload_bytes)),
    h("td", { class: "dl-cell-preview" }, h("span", { class: "dl-snippet" }, letter.preview)),
    h("td", { class: "actions" }, h("button", {
      type: "button", class: "secondary", "aria-label": t("dl.open.aria", { id: letter.id }),
      onclick: () => openLetter(letter.id),
    }, t("dl.open"))));
}

function renderLetters() {
  if (!dl.on) return;
  const filtered = Object.keys(dl.filters).length > 0;
  const rows = dl.letters.map(letterRow);
  if (!rows.length && !dl.loading) {
    rows.push(h("tr", { class: "empty" }, h("td", { colspan: 6, class: "muted" },
      t(filtered ? "dl.noneMatch" : "dl.none"))));
  }
  fill($("#dl-rows"), rows);
  $("#dl-more").hidden = !dl.more;
  $("#dl-more").disabled = dl.loading;
  $("#dl-status").textContent = dl.loading ? t("dl.loading")
    : dl.letters.length ? t("dl.shown", { n: dl.letters.length }) : "";
}

function renderLetter() {
  const letter = dl.open?.letter;
  $("#dl-detail-title").textContent = t("dl.detailTitle", { id: dl.open?.id ?? "" });
  if (!letter) {
    fill($("#dl-detail"));
    $("#dl-preview").textContent = "";
    $("#dl-preview-note").textContent = "";
    $("#dl-base64").value = "";
    $("#dl-copy").disabled = true;
    return;
  }
  const item = (key, ...value) => [h("dt", {}, t(key)), h("dd", {}, ...value)];
  const known = DL_REASONS.includes(letter.reason);
  fill($("#dl-detail"),
    item("dl.received", h("time", { datetime: letter.received_at }, receivedAt(letter.received_at))),
    item("dl.device", letter.device_id ? h("code", {}, letter.device_id) : t("dl.noDevice")),
    item("dl.topic", h("code", {}, letter.topic)),
    item("dl.reason", h("strong", {}, reasonName(letter.reason)), " ", h("code", {}, letter.reason)),
    item("dl.why", h("span", { id: "dl-why" }, known ? t(`dl.why.${letter.reason}`) : t("dl.why.unknown"))),
    item("dl.detail", h("span", { class: "dl-server-detail" }, letter.detail)),
    item("dl.size", size(letter.payload_bytes), " ",
      h("span", { class: "muted small" }, t(letter.valid_utf8 ? "dl.utf8" : "dl.notUtf8"))));
  $("#dl-preview").textContent = letter.preview;
  $("#dl-preview-note").textContent = letter.preview_truncated ? t("dl.previewCut") : "";
  $("#dl-base64").value = letter.payload_base64;
  $("#dl-copy").disabled = false;
}

async function openLetter(id) {
  dl.open = { id, letter: null };
  $("#dl-detail-error").textContent = "";
  $("#dl-copy-status").textContent = "";
  renderLetter();
  $("#dl-dialog").showModal();
  $("#dl-close").focus();
  try {
    const letter = await api("GET", `/devices/dead-letters/${encodeURIComponent(id)}`);
    if (dl.open?.id !== id) return;
    dl.open.letter = letter;
    renderLetter();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 403) {
      dlForbidden();
      return;
    }
    if (dl.open?.id === id) $("#dl-detail-error").textContent = error.message;
  }
}

async function copyBase64() {
  const box = $("#dl-base64");
  let copied = false;
  try {
    await navigator.clipboard.writeText(box.value);
    copied = true;
  } catch {
    box.focus();
    box.select();
    try { copied = document.execCommand("copy"); } catch { copied = false; }
  }
  $("#dl-copy-status").textContent = t(copied ? "dl.copied" : "dl.copyByHand");
}

function startLetters(me) {
  dl.on = DL_ROLES.includes(me?.role);
  $("#dl-section").hidden = !dl.on;
  if (!dl.on) return;
  renderReasonChoices();
  renderDeviceChoices();
  loadLetters();
}

function stopLetters() {
  dl.gen++;
  dl.on = false;
  dl.letters = [];
  dl.filters = {};
  dl.open = null;
  $("#dl-section").hidden = true;
  fill($("#dl-rows"));
  if ($("#dl-dialog").open) $("#dl-dialog").close();
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
$("#dl-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadLetters();
});
$("#dl-more").addEventListener("click", () => loadLetters(true));
$("#dl-copy").addEventListener("click", copyBase64);
$("#dl-dialog").addEventListener("close", () => {
  const id = dl.open?.id;
  dl.open = null;
  // back to the letter's button (the rows may have been drawn again meanwhile, e.g. in the other language)
  if (id !== undefined) $(`#dl-rows tr[data-letter="${id}"] button`)?.focus();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("#revoke-dialog").open && !$("#dl-dialog").open && state.pairing) {
    event.preventDefault();
    closePairing();
  }
});

boot({
  titleKey: "dev.title",
  start: async (me) => {
    startLetters(me);
    await load();
    clearInterval(state.listTimer);
    state.listTimer = setInterval(() => { if (!document.hidden) load(); }, LIST_MS);
  },
  rerender: () => {
    render();
    renderPairing();
    if (dl.on) {
      renderReasonChoices();
      renderLetters();
      renderLetter();
    }
  },
  stop: () => { clearInterval(state.listTimer); closePairing(false); stopLetters(); },
  shortcuts: { KeyF: () => $("#dev-filter").focus() },
});
