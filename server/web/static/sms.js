// The SMS log: the outbox newest first (GET /api/v1/sms/messages), filtered by status or ticket,
// numbers masked by the server. Agents and managers (the API decides).
import { $, api, ApiError, boot, fill, formatTime, h, label, t } from "./console.js";

const STATUSES = ["pending", "sending", "sent", "delivered", "undelivered", "failed", "suppressed"];
const PAGE = 50;
const state = { rows: [], done: false };

function query(beforeId) {
  const q = { limit: PAGE };
  const status = $("#sms-status").value;
  const ticket = $("#sms-ticket").value.trim();
  if (status) q.status = status;
  if (ticket) q.ticket_id = ticket;
  if (beforeId) q.before_id = beforeId;
  return q;
}

async function load(more = false) {
  $("#page-error").textContent = "";
  try {
    const before = more && state.rows.length ? state.rows[state.rows.length - 1].id : null;
    const rows = await api("GET", "/sms/messages", { query: query(before) });
    state.rows = more ? state.rows.concat(rows) : rows;
    state.done = rows.length < PAGE;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $("#page-error").textContent = error.status === 403 ? t("sms.forbidden") : error.message;
    state.rows = [];
    state.done = true;
  }
  render();
}

function render() {
  const select = $("#sms-status");
  const current = select.value;
  fill(select, h("option", { value: "" }, t("sms.all")),
    STATUSES.map((s) => h("option", { value: s }, label("smsStatus", s))));
  select.value = current;
  const body = $("#sms-rows");
  if (!state.rows.length) {
    fill(body, h("tr", {}, h("td", { colspan: 8, class: "muted" }, t("sms.empty"))));
  } else {
    fill(body, state.rows.map((m) => h("tr", { dataset: { id: m.id } },
      h("td", {}, formatTime(m.created_at, { dateStyle: "short", timeStyle: "medium" })),
      h("td", {}, h("span", { class: `badge sms-${m.status}` }, label("smsStatus", m.status))),
      h("td", {}, m.to),
      h("td", {}, m.ticket_id ? `CL-${String(m.ticket_id).padStart(7, "0")}` : ""),
      h("td", {}, m.template),
      h("td", { class: "body", lang: m.language }, m.body),
      h("td", {}, String(m.attempts)),
      h("td", {}, m.error_code || ""))));
  }
  $("#sms-more").hidden = state.done;
}

$("#sms-status").addEventListener("change", () => load());
$("#sms-ticket").addEventListener("change", () => load());
$("#sms-refresh").addEventListener("click", () => load());
$("#sms-more").addEventListener("click", () => load(true));

boot({ titleKey: "sms.title", start: () => load(), rerender: render });
