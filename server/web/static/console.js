// Shared by every console page (agent desk, dispatch map, wall screen, outages, inspections, SMS
// log, handsets): the top bar with the navigation and the sign-in form (rendered here, once, into
// each page's empty <header class="topbar"> and <section id="login-view">), API calls with the
// JWT kept in sessionStorage (one sign-in for every page), the language switch and the live
// WebSocket. DOM is built with textContent only.
import "./console-i18n.js";
import { initialLanguage, label, language, setLanguage, t, translatePage } from "./i18n.js";

export { label, language, t };

const API = "/api/v1";
const TOKEN_KEY = "crewline.token";
const LANG_KEY = "crewline.lang";

export const session = { token: sessionStorage.getItem(TOKEN_KEY), me: null };

export const $ = (selector, root = document) => root.querySelector(selector);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function fill(box, ...children) {
  box.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function formatTime(iso, style = { timeStyle: "short" }) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(language(), style).format(new Date(iso));
}

/** Date and time, short: "2026/11/27 17:32" / "11/27/26, 5:32 PM". */
export const dateTime = (iso) => formatTime(iso, { dateStyle: "short", timeStyle: "short" });

/** "12:34" / "1:02:03" for a number of seconds (absolute value). */
export function clock(seconds) {
  const s = Math.floor(Math.abs(seconds));
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(hh ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function minutes(seconds) {
  return t("minutes", { m: Math.max(1, Math.round(seconds / 60)) });
}

export function distance(metres) {
  if (metres === null || metres === undefined) return "";
  return metres >= 1000 ? t("km", { km: (metres / 1000).toFixed(1) }) : t("m", { m: Math.round(metres) });
}

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || "";
  }
}

let onSignedOut = () => {};

export async function api(method, path, { json, form, query } = {}) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = new URLSearchParams(form);
  }
  const url = API + path + (query ? `?${new URLSearchParams(query)}` : "");
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch {
    throw new ApiError(0, "network", t("net.down"));
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error || { code: `http_${response.status}`, message: response.statusText };
    if (response.status === 401 && session.token) signOut(t("login.expired"));
    throw new ApiError(response.status, error.code, error.message, error.field);
  }
  return data;
}

// -- top bar and sign-in form, the same on every page -------------------------------------------
/** The console's pages, in the navigation's order: path and the i18n key of its name. */
export const PAGES = [["/", "console.desk"], ["/dispatch", "console.dispatch"], ["/wall", "console.wall"],
  ["/outages", "console.outages"], ["/inspections", "console.inspections"], ["/sms", "console.sms"],
  ["/devices", "console.devices"]];

const i18n = (key) => ({ i18n: key }); // texts are filled in by translatePage()

/**
 * Fill the page's empty `<header class="topbar" data-subtitle="…" [data-live]>` and
 * `<section id="login-view">`: brand and subtitle, the navigation (the current page marked by its
 * path), the live pill where the page has live updates, who is signed in, the language switch,
 * "Log out" and the sign-in form. Runs when this module loads, before the page's own script.
 */
function renderChrome() {
  const bar = $("header.topbar");
  fill(bar,
    h("div", { class: "brand" }, "Crewline ",
      h("span", { class: "subtitle", dataset: i18n(bar.dataset.subtitle) })),
    h("nav", { class: "pages", dataset: { i18nAria: "console.nav" } },
      PAGES.map(([href, key]) => h("a", { href, dataset: i18n(key),
        "aria-current": href === location.pathname ? "page" : null }))),
    h("div", { class: "topbar-right" },
      "live" in bar.dataset ? h("span", { id: "live-state", class: "live-pill",
        dataset: { state: "off" }, "aria-live": "polite" }) : null,
      h("span", { id: "whoami", hidden: true }),
      h("button", { id: "lang-toggle", type: "button", class: "secondary",
        dataset: { i18n: "lang.switch", i18nAria: "lang.switchLabel" } }),
      h("button", { id: "logout", type: "button", class: "secondary", dataset: i18n("logout"),
        hidden: true })));
  fill($("#login-view"), h("form", { id: "login-form", class: "card", novalidate: true },
    h("h1", { dataset: i18n("login.title") }),
    h("div", { id: "login-error", class: "form-error", role: "alert" }),
    h("label", { for: "login-username", dataset: i18n("login.username") }),
    h("input", { id: "login-username", name: "username", autocomplete: "username", required: true }),
    h("label", { for: "login-password", dataset: i18n("login.password") }),
    h("input", { id: "login-password", name: "password", type: "password",
      autocomplete: "current-password", required: true }),
    h("button", { type: "submit", class: "primary", dataset: i18n("login.submit") })));
}

renderChrome();

// -- sign in / out --------------------------------------------------------------------------------
function showView(signedIn) {
  $("#login-view").hidden = signedIn;
  $("#console-view").hidden = !signedIn;
  $("#logout").hidden = !signedIn;
  $("#whoami").hidden = !signedIn;
}

export function signOut(message = "") {
  session.token = null;
  session.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showView(false);
  const form = $("#login-form");
  form.reset();
  $("#login-error").textContent = message;
  $("#login-username").focus();
  onSignedOut();
}

function renderWhoami() {
  if (!session.me) return;
  $("#whoami").textContent =
    `${session.me.full_name || session.me.username} · ${label("role", session.me.role)}`;
}

/**
 * Start a console page: translate it, sign in if needed, then `start(me)`.
 * `rerender()` runs after a language switch; `stop()` when the user signs out.
 */
export function boot({ titleKey, start, rerender = () => {}, stop = () => {}, shortcuts = {} }) {
  const translate = () => {
    translatePage();
    document.title = t(titleKey);
    renderWhoami();
  };
  onSignedOut = stop;
  const begin = async () => {
    session.me = await api("GET", "/auth/me");
    if (!localStorage.getItem(LANG_KEY) && session.me.language !== language()) {
      setLanguage(session.me.language);
      translate();
    }
    renderWhoami();
    showView(true);
    await start(session.me);
  };
  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    $("#login-error").textContent = "";
    try {
      const data = await api("POST", "/auth/token", {
        form: { username: form.username.value, password: form.password.value },
      });
      session.token = data.access_token;
      sessionStorage.setItem(TOKEN_KEY, session.token);
      form.reset();
      await begin();
    } catch (error) {
      if (error instanceof ApiError) $("#login-error").textContent = error.message;
      else throw error;
    } finally {
      button.disabled = false;
    }
  });
  $("#logout").addEventListener("click", () => signOut());
  const switchLanguage = () => {
    const lang = setLanguage(language() === "en" ? "zh-CN" : "en");
    localStorage.setItem(LANG_KEY, lang);
    translate();
    if (session.token) rerender();
  };
  $("#lang-toggle").addEventListener("click", switchLanguage);
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.code === "KeyG") {
      event.preventDefault();
      switchLanguage();
      return;
    }
    const action = session.token && shortcuts[event.code];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  setLanguage(initialLanguage(localStorage.getItem(LANG_KEY), navigator.languages));
  translate();
  if (session.token) {
    begin().catch((error) => { if (session.token) signOut(error.message); });
  } else {
    signOut();
  }
}

// -- live updates ---------------------------------------------------------------------------------
/**
 * The /api/v1/live WebSocket: authenticates with the JWT in its first message, hands every
 * message to `onMessage`, reconnects with back-off (then `onResync()`: reload what may have been
 * missed). `onState("connecting" | "on" | "off")` drives the status pill.
 */
export class Live {
  constructor({ onMessage, onResync = () => {}, onState = () => {} }) {
    Object.assign(this, { onMessage, onResync, onState });
    this.ws = null;
    this.delay = 500;
    this.stopped = false;
    this.everConnected = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  connect() {
    if (this.stopped || !session.token) return;
    this.onState("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${API}/live`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: session.token }));
    ws.onmessage = (event) => {
      const received = Date.now();
      const started = performance.now();
      const msg = JSON.parse(event.data);
      msg.received_at = received;
      msg.parse_ms = performance.now() - started;
      if (msg.type === "ready") {
        this.delay = 500;
        this.onState("on");
        if (this.everConnected) this.onResync();
        this.everConnected = true;
      } else if (msg.type === "resync") {
        this.onResync();
      } else if (!msg.error) {
        this.onMessage(msg);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.onState("off");
      if (event.code === 4401) { signOut(t("login.expired")); return; }
      if (event.code === 4403) return;
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }
}

export function livePill(state) {
  const pill = $("#live-state");
  if (!pill) return;
  pill.className = `live-pill live-${state}`;
  pill.dataset.state = state;
  pill.textContent = t(state === "on" ? "live.on" : state === "off" ? "live.off" : "live.connecting");
}
