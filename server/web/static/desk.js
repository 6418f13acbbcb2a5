// The agent desk: caller lookup → new ticket (with live duplicate hints) → ticket detail and
// the agent's actions. Plain DOM, no framework: the page is one form-heavy screen. The top bar,
// sign-in, language switch and API calls are console.js's, as on every console page.
import { $, api, ApiError, boot, dateTime, fill, h, label, language, session, t } from "./console.js";

const CANCELLABLE = new Set(["new", "assigned", "accepted", "en_route"]);
const FIRST_CONTACT = new Set(["consultation", "query"]);
const OUTCOMES = ["satisfied", "dissatisfied", "unreachable"];

const state = {
  lookup: null, // the last lookup response
  places: new Map(), // <select> value → {customerId, servicePointId, lon, lat}
  created: null, // {ticket, possible_duplicates, linkedTo}
  recent: [],
  detail: null, // the ticket shown in the detail panel (TicketOut)
};

function relative(iso) {
  const minutes = Math.round((new Date(iso) - Date.now()) / 60000);
  return new Intl.RelativeTimeFormat(language(), { numeric: "auto" })
    .format(Math.abs(minutes) >= 120 ? Math.round(minutes / 60) : minutes,
      Math.abs(minutes) >= 120 ? "hour" : "minute");
}

function badge(kind, value) {
  return h("span", { class: `badge ${kind}-${value}` }, label(kind, value));
}

// -- errors shown next to the field the server names --------------------------------------------
function clearErrors(form) {
  for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function errorSlot(form, field) {
  const slots = [...form.querySelectorAll("[data-error-for]")];
  const names = (slot) => slot.dataset.errorFor.split(" ");
  const last = field.split(".").pop();
  return slots.find((s) => field && names(s).includes(field))
    || slots.find((s) => last && names(s).includes(last))
    || slots.find((s) => s.dataset.errorFor === "");
}

function showError(form, error) {
  if (!(error instanceof ApiError)) throw error;
  if (error.status === 401) return; // already back at the login
  const slot = errorSlot(form, error.field);
  if (slot) slot.textContent = error.message;
  const names = slot ? slot.dataset.errorFor.split(" ").filter(Boolean) : [];
  const input = names.map((n) => form.elements.namedItem(n)).find((el) => el && el.focus);
  const target = input instanceof RadioNodeList ? input[0] : input;
  if (target) {
    target.setAttribute("aria-invalid", "true");
    target.focus();
  }
}

async function submitting(form, work) {
  clearErrors(form);
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await work();
  } catch (error) {
    showError(form, error);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// -- caller lookup ------------------------------------------------------------------------------
$("#lookup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, async () => {
    state.lookup = await api("GET", "/customers/lookup", { query: { phone: form.phone.value } });
    renderLookup();
    prefillFromLookup();
    if (state.lookup.matches.length) focusNewTicket();
  });
});

function renderLookup() {
  const box = $("#lookup-results");
  box.replaceChildren();
  const result = state.lookup;
  if (!result) return;
  if (!result.matches.length) {
    box.append(h("p", { class: "muted" }, t("lookup.none", { number: result.normalized })));
    return;
  }
  box.append(h("p", { class: "muted" },
    t("lookup.found", { count: result.matches.length, number: result.normalized })));
  for (const { customer, open_tickets: open } of result.matches) {
    box.append(h("article", { class: "customer", dataset: { customerId: customer.id } },
      h("h3", {}, customer.name, " ", h("span", { class: "muted" },
        `${t("lookup.account")} ${customer.account_no}`)),
      h("p", { class: "phones" }, customer.phones.map(
        (p) => h("span", { class: "phone" }, `${p.e164} (${label("phone", p.kind)})`))),
      h("h4", {}, t("lookup.servicePoints")),
      customer.service_points.length
        ? h("ul", {}, customer.service_points.map((sp) => h("li", {}, sp.address)))
        : h("p", { class: "muted" }, t("lookup.noPoints")),
      h("h4", {}, t("lookup.openTickets")),
      open.length
        ? h("ul", { class: "ticket-list" }, open.map((tk) => h("li", {}, ticketButton(tk),
          " ", label("category", tk.category), " ", badge("status", tk.status), " ",
          h("span", { class: "muted" }, tk.description))))
        : h("p", { class: "muted" }, t("lookup.noOpen"))));
  }
}

function ticketButton(ticket) {
  return h("button", { type: "button", class: "link", onclick: () => openTicket(ticket.id) },
    ticket.number);
}

// -- new ticket ---------------------------------------------------------------------------------
function renderPlaces() {
  const select = $("#t-place");
  const previous = select.value;
  state.places.clear();
  select.replaceChildren();
  const matches = state.lookup?.matches || [];
  const onlyCustomer = matches.length === 1 ? matches[0].customer.id : null;
  for (const { customer } of matches) {
    for (const sp of customer.service_points) {
      const value = `sp:${sp.id}`;
      state.places.set(value, { customerId: customer.id, servicePointId: sp.id,
        lon: sp.location.lon, lat: sp.location.lat });
      select.append(h("option", { value }, `${customer.name} — ${sp.address}`));
    }
  }
  state.places.set("point", { customerId: onlyCustomer, point: true });
  select.append(h("option", { value: "point" }, t("new.placePoint")));
  state.places.set("none", { customerId: onlyCustomer });
  select.append(h("option", { value: "none" }, t("new.placeNone")));
  select.value = state.places.has(previous) ? previous : select.options[0].value;
  placeChanged();
}

function prefillFromLookup() {
  const form = $("#ticket-form");
  const first = state.lookup.matches[0]?.customer;
  form.reporter_name.value = first ? first.name : "";
  form.reporter_phone.value = state.lookup.normalized;
  $("#t-place").value = ""; // forget the earlier caller's place
  renderPlaces();
}

function focusNewTicket() {
  const form = $("#ticket-form");
  (form.querySelector("input[name=category]:checked") || form.category[0]).focus();
}

function placeChanged() {
  const place = state.places.get($("#t-place").value) || {};
  $("#point-fields").hidden = !place.point;
  scheduleDuplicateHint();
}

function selectedPoint() {
  const form = $("#ticket-form");
  const place = state.places.get(form.place.value) || {};
  if (place.servicePointId) return { lon: place.lon, lat: place.lat };
  if (!place.point) return null;
  const lon = Number.parseFloat(form.lon.value);
  const lat = Number.parseFloat(form.lat.value);
  if (!Number.isFinite(lon) || !Number.isFinite(lat) || Math.abs(lon) > 180 || Math.abs(lat) > 90) {
    return null;
  }
  return { lon, lat };
}

let hintTimer = null;
let hintSeq = 0;
function scheduleDuplicateHint() {
  clearTimeout(hintTimer);
  hintTimer = setTimeout(updateDuplicateHint, 250);
}

async function updateDuplicateHint() {
  const box = $("#dup-hint");
  const point = selectedPoint();
  const category = $("#ticket-form").category.value;
  const seq = ++hintSeq;
  if (!point || !session.token) {
    box.hidden = true;
    return;
  }
  let found;
  try {
    found = await api("GET", "/tickets/duplicates", { query: { category, ...point } });
  } catch {
    found = null; // the hint is advisory; the ticket form reports real errors on submit
  }
  if (seq !== hintSeq) return; // a newer question was asked meanwhile
  box.replaceChildren();
  box.hidden = found === null;
  if (!found) return;
  box.classList.toggle("warn", found.length > 0);
  const name = label("category", category);
  if (!found.length) {
    box.append(h("p", {}, t("dup.none", { category: name })));
    return;
  }
  box.append(h("p", {}, t("dup.some", { count: found.length, category: name })),
    h("ul", { class: "ticket-list" }, found.map((tk) => h("li", {}, ticketButton(tk), " ",
      badge("status", tk.status), " ", t("dup.distance", { m: Math.round(tk.distance_m) }), " · ",
      h("span", { class: "muted" }, tk.description)))),
    h("p", { class: "muted" }, t("dup.after")));
}

function ticketBody(form) {
  const place = state.places.get(form.place.value) || {};
  const body = {
    category: form.category.value,
    priority: form.priority.value,
    channel: form.channel.value,
    description: form.description.value.trim(),
    reporter_name: form.reporter_name.value.trim() || null,
    reporter_phone: form.reporter_phone.value.trim() || null,
  };
  if (place.customerId) body.customer_id = place.customerId;
  if (place.servicePointId) body.service_point_id = place.servicePointId;
  if (place.point) {
    // sent as typed: the server validates and names the field that is wrong
    body.location = { lon: form.lon.value.trim(), lat: form.lat.value.trim() };
    if (form.address.value.trim()) body.address = form.address.value.trim();
  }
  return body;
}

$("#ticket-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, async () => {
    const created = await api("POST", "/tickets", { json: ticketBody(form) });
    state.created = { ...created, linkedTo: null };
    form.description.value = "";
    renderCreated();
    showDetail(created.ticket);
    $("#created").focus();
    refreshAfterChange();
  });
});

$("#ticket-form").addEventListener("change", (event) => {
  if (event.target.name === "place") placeChanged();
  if (event.target.name === "category") scheduleDuplicateHint();
});
$("#ticket-form").addEventListener("input", (event) => {
  if (event.target.name === "lon" || event.target.name === "lat") scheduleDuplicateHint();
});

// Enter logs the ticket from the description too; Shift+Enter is a new line. Never while an
// input method is composing (Chinese pinyin input confirms a word with Enter).
$("#t-description").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    event.currentTarget.form.requestSubmit();
  }
});

$("#ticket-clear").addEventListener("click", () => {
  const form = $("#ticket-form");
  form.reset();
  clearErrors(form);
  state.lookup = null;
  state.created = null;
  $("#lookup-form").reset();
  renderLookup();
  renderCreated();
  renderPlaces();
  $("#lookup-phone").focus();
});

function slaTable(clocks) {
  if (!clocks.length) return null;
  return h("table", { class: "sla" },
    h("thead", {}, h("tr", {}, h("th", {}, t("sla.clock")), h("th", {}, t("sla.due")),
      h("th", {}, t("sla.state")))),
    h("tbody", {}, clocks.map((c) => h("tr", {},
      h("td", {}, label("clock", c.clock)),
      h("td", {}, h("time", { datetime: c.due_at }, dateTime(c.due_at)),
        c.stopped_at ? "" : h("span", { class: "muted" }, ` (${relative(c.due_at)})`)),
      h("td", {}, badge("clockState", c.state))))));
}

function renderCreated() {
  const box = $("#created");
  box.replaceChildren();
  box.hidden = !state.created;
  if (!state.created) return;
  const { ticket, possible_duplicates: duplicates, linkedTo } = state.created;
  fill(box, h("h3", {}, t("created.title", { number: ticket.number }), " ",
    badge("status", ticket.status)), slaTable(ticket.sla));
  if (linkedTo) {
    box.append(h("p", { class: "ok" }, t("created.linked",
      { number: ticket.number, original: linkedTo.number })));
  } else if (duplicates.length) {
    box.append(h("h4", {}, t("created.duplicates")), h("ul", { class: "ticket-list" },
      duplicates.map((dup) => h("li", {},
        h("button", { type: "button", class: "secondary", onclick: () => linkDuplicate(dup) },
          t("created.link", { number: dup.number })), " ",
        t("dup.distance", { m: Math.round(dup.distance_m) }), " · ",
        h("span", { class: "muted" }, dup.description)))));
  }
  box.append(h("div", { class: "form-error", role: "alert", dataset: { errorFor: "" } }));
  box.append(h("button", { type: "button", class: "secondary",
    onclick: () => openTicket(ticket.id) }, t("created.open")));
}

async function linkDuplicate(original) {
  const box = $("#created");
  const { ticket } = state.created;
  try {
    const updated = await api("POST", `/tickets/${ticket.id}/links`,
      { json: { duplicate_of: original.id } });
    state.created = { ...state.created, ticket: updated, linkedTo: original };
    renderCreated();
    showDetail(updated);
    $("#created").focus();
    refreshAfterChange();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    box.querySelector(".form-error").textContent = error.message;
  }
}

// -- recent tickets -----------------------------------------------------------------------------
/** After the agent changed a ticket: the list and the duplicate hint may show it. */
function refreshAfterChange() {
  loadRecent();
  scheduleDuplicateHint();
  refreshLookup();
}

/** The caller's open tickets, asked again for the same number (nothing else is touched). */
async function refreshLookup() {
  if (!state.lookup) return;
  const asked = state.lookup;
  try {
    const fresh = await api("GET", "/customers/lookup", { query: { phone: asked.query } });
    if (state.lookup === asked) {
      state.lookup = fresh;
      renderLookup();
    }
  } catch {
    // advisory: the last answer stays on screen
  }
}

async function loadRecent() {
  const errorBox = $("#recent-error");
  try {
    state.recent = await api("GET", "/tickets", { query: { limit: 20 } });
    errorBox.textContent = "";
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status !== 401) errorBox.textContent = error.message;
    return;
  }
  renderRecent();
}

function renderRecent() {
  const body = $("#recent-table tbody");
  body.replaceChildren();
  if (!state.recent.length) {
    body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("recent.empty"))));
    return;
  }
  for (const tk of state.recent) {
    body.append(h("tr", { dataset: { ticketId: tk.id }, class: tk.sla_level > 0 ? "late" : null },
      h("td", {}, ticketButton(tk)),
      h("td", {}, label("category", tk.category)),
      h("td", {}, badge("priority", tk.priority)),
      h("td", {}, badge("status", tk.status)),
      h("td", { class: "when" }, dateTime(tk.created_at)),
      h("td", { class: "address" }, tk.address || "")));
  }
}

$("#recent-refresh").addEventListener("click", loadRecent);

// -- ticket detail and the agent's actions ------------------------------------------------------
async function openTicket(id) {
  try {
    showDetail(await api("GET", `/tickets/${id}`));
    $("#detail-panel").focus();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $("#detail").replaceChildren(h("p", { class: "form-error" }, error.message));
  }
}

function showDetail(ticket) {
  state.detail = ticket;
  renderDetail();
}

function field(name, value) {
  if (value === null || value === undefined || value === "") return [];
  return [h("dt", {}, t(name)), h("dd", {}, value)];
}

function renderDetail() {
  const box = $("#detail");
  const tk = state.detail;
  if (!tk) {
    box.replaceChildren(h("p", { class: "muted" }, t("detail.empty")));
    return;
  }
  const reporter = [tk.reporter_name, tk.reporter_phone].filter(Boolean).join(" · ");
  const resolution = [tk.resolution_code, tk.resolution_note].filter(Boolean).join(" — ");
  const callback = tk.callback_outcome
    ? `${label("outcome", tk.callback_outcome)} · ${dateTime(tk.callback_at)}` : null;
  fill(box,
    h("h3", { class: "detail-head" }, tk.number, " ", label("category", tk.category), " ",
      badge("status", tk.status), " ", badge("priority", tk.priority)),
    h("p", { class: "description" }, tk.description),
    h("dl", { class: "facts" },
      field("detail.channel", label("channel", tk.channel)),
      field("detail.reporter", reporter),
      field("detail.address", tk.address),
      field("detail.created", dateTime(tk.created_at)),
      field("detail.updated", dateTime(tk.updated_at)),
      field("detail.resolution", resolution),
      field("detail.callback", callback),
      field("detail.closeReason", tk.close_reason)),
    tk.sla.length ? h("h4", {}, t("detail.sla")) : null,
    slaTable(tk.sla),
    tk.links.length ? h("h4", {}, t("detail.links")) : null,
    tk.links.length ? h("ul", {}, tk.links.map((link) => h("li", {},
      t("link.duplicate_of", { a: numberOf(link.ticket_id), b: numberOf(link.linked_ticket_id) }),
      " · ", dateTime(link.created_at)))) : null,
    h("h4", {}, t("detail.actions")),
    actions(tk),
    h("h4", {}, t("detail.trail")),
    h("table", { class: "trail" },
      h("thead", {}, h("tr", {}, ["trail.at", "trail.who", "trail.what", "trail.note"]
        .map((k) => h("th", {}, t(k))))),
      h("tbody", {}, tk.events.map((e) => h("tr", {},
        h("td", { class: "when" }, dateTime(e.at)),
        h("td", {}, e.actor || t("trail.system")),
        h("td", {}, label("event", e.kind),
          e.from_status || e.to_status
            ? h("span", { class: "muted" }, ` ${e.from_status ? label("status", e.from_status) : ""}`
              + ` → ${e.to_status ? label("status", e.to_status) : ""}`) : null,
          e.data?.outcome ? ` (${label("outcome", e.data.outcome)})` : null),
        h("td", {}, e.note || ""))))));
}

function numberOf(id) {
  return `CL-${String(id).padStart(7, "0")}`;
}

function actionForm(name, submitLabel, fields, buildRequest) {
  const form = h("form", { class: "action", dataset: { action: name }, novalidate: true },
    fields, h("div", { class: "form-error", role: "alert", dataset: { errorFor: "" } }),
    h("button", { type: "submit", class: "primary" }, submitLabel));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async () => {
      const [path, json] = buildRequest(form);
      showDetail(await api("POST", `/tickets/${state.detail.id}/${path}`, { json }));
      $("#detail-panel").focus();
      refreshAfterChange();
    });
  });
  return form;
}

function textField(name, labelKey, { value = "", errorFor = name } = {}) {
  const id = `act-${name}-${Math.random().toString(36).slice(2, 8)}`;
  return h("div", { class: "field" },
    h("label", { for: id }, t(labelKey)),
    h("input", { id, name, value, maxlength: 2000, autocomplete: "off" }),
    h("small", { class: "field-error", dataset: { errorFor } }));
}

function actions(tk) {
  const forms = [];
  const note = (form) => form.note.value.trim() || null;
  if (tk.status === "new" && FIRST_CONTACT.has(tk.category)) {
    forms.push(actionForm("resolve", t("act.resolve"),
      [textField("resolution_code", "act.resolveCode", { value: "answered" }),
        textField("note", "act.note")],
      (form) => ["transitions", { to: "resolved", resolution_code: form.resolution_code.value.trim(),
        note: note(form) }]));
  }
  if (tk.status === "resolved") {
    forms.push(actionForm("callback", t("act.callback"),
      [h("fieldset", { class: "choices" }, h("legend", {}, t("act.callbackOutcome")),
        OUTCOMES.map((o, i) => h("label", {}, h("input", { type: "radio", name: "outcome", value: o,
          checked: i === 0 }), " ", label("outcome", o)))),
      h("small", { class: "field-error", dataset: { errorFor: "outcome" } }),
      textField("note", "act.note")],
      (form) => ["callback", { outcome: form.outcome.value, note: note(form) }]));
    forms.push(actionForm("close", t("act.close"),
      [textField("reason", "act.reason")],
      (form) => ["transitions", { to: "closed", reason: form.reason.value.trim() || null }]));
  }
  if (CANCELLABLE.has(tk.status)) {
    forms.push(actionForm("cancel", t("act.cancel"), [textField("note", "act.note")],
      (form) => ["transitions", { to: "cancelled", note: note(form) }]));
  }
  return forms.length ? h("div", { class: "actions" }, forms)
    : h("p", { class: "muted" }, t("detail.noActions"));
}

// -- keyboard and start --------------------------------------------------------------------------
/** Everything built from data, again in the new language. */
function rerender() {
  renderLookup();
  renderPlaces();
  renderCreated();
  renderRecent();
  renderDetail();
  scheduleDuplicateHint(); // asks again: the hint is built from the server's answer
}

boot({
  titleKey: "app.title",
  start: async () => {
    // the user's language may differ from the page's, and a desk signed out and in again still
    // shows the last lookup; the recent tickets are rendered once loaded
    renderLookup();
    renderPlaces();
    renderCreated();
    renderDetail();
    $("#lookup-phone").focus();
    await loadRecent();
  },
  rerender,
  shortcuts: {
    KeyL: () => { $("#lookup-phone").focus(); $("#lookup-phone").select(); },
    KeyN: focusNewTicket,
    KeyT: () => ($("#recent-table tbody button") || $("#recent-refresh")).focus(),
    KeyD: () => $("#detail-panel").focus(),
  },
});
// Other agents log tickets too; refresh the list while the page is visible.
setInterval(() => {
  if (session.token && document.visibilityState === "visible") refreshAfterChange();
}, 30000);
