// SalesPulse wallboard: boards of KPI tiles fed by GET /api/v1/stream (Server-Sent Events).
// Configured by URL: ?board=sales | ?boards=sales,telephony&rotate=30 | &team=… or &region=…
// (or &by=rep&key=…) | &period=month | &lang=fr|en | &theme=dark|light | ?profile=name.
"use strict";

// ?token=… is a read-only wallboard token (WALLBOARD_TOKENS): sent with every API call, in the
// query string because EventSource cannot set headers.
const TOKEN = new URLSearchParams(location.search).get("token");
const api = (path) => (TOKEN ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : path);

// ?profile=name loads a saved profile (PUT /api/v1/profiles/{name}); URL parameters still win.
let profileError = null;
const params = (() => {
  const url = new URLSearchParams(location.search);
  const name = url.get("profile");
  if (!name) return url;
  const request = new XMLHttpRequest(); // synchronous: once, before anything is drawn
  request.open("GET", api(`/api/v1/profiles/${encodeURIComponent(name)}`), false);
  request.send();
  if (request.status !== 200) { profileError = `profile ${name}: ${request.status}`; return url; }
  const p = JSON.parse(request.responseText);
  const merged = new URLSearchParams({ boards: p.boards.join(","), rotate: String(p.rotate), theme: p.theme });
  if (p.by !== "all") { merged.set("by", p.by); merged.set("key", p.key); }
  if (p.period) merged.set("period", p.period);
  if (p.lang) merged.set("lang", p.lang);
  for (const [k, v] of url) merged.set(k, v);
  return merged;
})();
const lang = (params.get("lang") || navigator.language || "en").slice(0, 2) === "fr" ? "fr" : "en";
const locale = lang === "fr" ? "fr-FR" : "en-GB";
document.body.dataset.theme = params.get("theme") === "light" ? "light" : "dark";
document.documentElement.lang = lang;

const TEXT = {
  en: {
    revenue: "Revenue", orders: "Orders", gross_margin: "Gross margin", win_rate: "Win rate",
    pipeline_value: "Pipeline", new_customers: "New customers", calls_outbound: "Calls placed",
    calls_inbound: "Calls answered", calls_missed: "Calls missed", answer_rate: "Answer rate",
    deals_won: "Deals won", talk_time: "Talk time", revenue_by_product: "Revenue by product",
    leaders_revenue: "Revenue, best reps", leaders_calls: "Calls placed, best reps",
    leaders_deals: "Deals won, best reps", target: "target", company: "Company", team: "Team", region: "Region",
    rep: "Rep", day: "today", week: "this week", month: "this month", quarter: "this quarter", year: "this year",
    now: "now", live: "live", offline: "reconnecting…", ago: (t) => `${t} ago`, just_now: "just now",
    no_data: "no data yet", no_alerts: "No active alert", raised: "since",
    alert: "Alert", anticipation: "Anticipation", balance: "Balance",
  },
  fr: {
    revenue: "Chiffre d'affaires", orders: "Commandes", gross_margin: "Marge brute", win_rate: "Taux de succès",
    pipeline_value: "Pipeline", new_customers: "Nouveaux clients", calls_outbound: "Appels émis",
    calls_inbound: "Appels reçus", calls_missed: "Appels manqués", answer_rate: "Taux de décroché",
    deals_won: "Affaires gagnées", talk_time: "Temps de conversation", revenue_by_product: "CA par produit",
    leaders_revenue: "CA, meilleurs commerciaux", leaders_calls: "Appels émis, meilleurs commerciaux",
    leaders_deals: "Affaires gagnées, meilleurs commerciaux", target: "objectif", company: "Entreprise",
    team: "Équipe", region: "Région", rep: "Commercial", day: "aujourd'hui", week: "cette semaine",
    month: "ce mois-ci", quarter: "ce trimestre", year: "cette année", now: "maintenant", live: "en direct",
    offline: "reconnexion…", ago: (t) => `il y a ${t}`, just_now: "à l'instant", no_data: "pas encore de données",
    no_alerts: "Aucune alerte active", raised: "depuis", alert: "Alerte", anticipation: "Anticipation",
    balance: "Équilibre",
  },
}[lang];

// What each board shows. kind: tile (one value, target, attainment, pace), ranks (a leaderboard
// by rep), pie (values by product). period: the tile's default (a `period` URL parameter wins).
const BOARDS = {
  sales: [
    { kind: "tile", kpi: "revenue", period: "month", cls: "wide" },
    { kind: "tile", kpi: "orders", period: "day" },
    { kind: "tile", kpi: "gross_margin", period: "month" },
    { kind: "pie", kpi: "revenue", by: "product", period: "month", label: "revenue_by_product", cls: "wide" },
    { kind: "tile", kpi: "win_rate", period: "month" },
    { kind: "tile", kpi: "new_customers", period: "month" },
  ],
  telephony: [
    { kind: "tile", kpi: "calls_outbound", period: "day" },
    { kind: "tile", kpi: "calls_inbound", period: "day" },
    { kind: "tile", kpi: "calls_missed", period: "day" },
    { kind: "tile", kpi: "answer_rate", period: "day" },
    { kind: "ranks", kpi: "calls_outbound", period: "day", label: "leaders_calls", cls: "wide" },
    { kind: "tile", kpi: "talk_time", period: "day" },
    { kind: "tile", kpi: "deals_won", period: "day" },
  ],
  leaders: [
    { kind: "ranks", kpi: "revenue", period: "month", label: "leaders_revenue", cls: "tall" },
    { kind: "ranks", kpi: "calls_outbound", period: "day", label: "leaders_calls", cls: "tall" },
    { kind: "ranks", kpi: "deals_won", period: "month", label: "leaders_deals", cls: "tall" },
    { kind: "tile", kpi: "revenue", period: "month", cls: "tall" },
  ],
};

// Scope: the company, or one team / region / rep.
let scopeBy = "all", scopeKey = "all";
for (const dim of ["team", "region", "rep"]) {
  if (params.get(dim)) { scopeBy = dim; scopeKey = params.get(dim); }
}
if (params.get("by") && params.get("key")) { scopeBy = params.get("by"); scopeKey = params.get("key"); }
const periodOverride = params.get("period");
const boardNames = (params.get("boards") || params.get("board") || "sales").split(",").filter((b) => BOARDS[b]);
if (!boardNames.length) boardNames.push("sales");
const rotateSeconds = Number(params.get("rotate") || (boardNames.length > 1 ? 30 : 0));

const readings = new Map(); // "kpi:by:period" -> reading
let activeAlerts = [];
let seenAlerts = new Set(); // "alert_id/level" of the active alerts, each level shown
let current = 0;
let rotateTimer = null;
let teamOf = {}; // rep -> team, region (for leaderboards scoped to a team or region)

function periodOf(item) { return periodOverride && item.period !== "now" ? periodOverride : item.period; }
function byOf(item) { return item.kind === "tile" ? scopeBy : item.by || "rep"; }
function specOf(item) { return `${item.kpi}:${byOf(item)}:${periodOf(item)}`; }

function format(value, unit) {
  if (value === null || value === undefined) return "–";
  if (unit === "ratio") return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 }).format(value);
  if (unit === "currency") {
    return new Intl.NumberFormat(locale, { style: "currency", currency: "EUR", notation: Math.abs(value) >= 1e4 ? "compact" : "standard",
      maximumFractionDigits: Math.abs(value) >= 1e4 ? 1 : 0 }).format(value);
  }
  if (unit === "seconds") {
    const h = Math.floor(value / 3600), m = Math.round((value % 3600) / 60);
    return h ? `${h} h ${String(m).padStart(2, "0")}` : `${m} min`;
  }
  if (unit === "days") return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(value)} ${lang === "fr" ? "j" : "d"}`;
  return new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(value);
}

function age(asOf) {
  if (!asOf) return { text: TEXT.no_data, stale: true };
  const s = Math.max(0, (Date.now() - Date.parse(asOf)) / 1000);
  if (s < 5) return { text: TEXT.just_now, stale: false };
  const t = s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  return { text: TEXT.ago(t), stale: s > 900 };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
  }
  node.append(...children);
  return node;
}

function render() {
  const name = boardNames[current];
  document.body.dataset.board = name;
  const main = document.getElementById("board");
  main.replaceChildren(...BOARDS[name].map(renderItem));
  fitValues(main);
  renderAlerts();
}

// A tile's number is 9 % of the screen high unless it is then wider than its tile (a long figure
// in a narrow tile: "692,9 k€" in French at 1920x1080), when it is as large as fits, never cut.
function fitValues(root) {
  for (const node of root.querySelectorAll(".value")) {
    node.style.fontSize = "";
    let size = parseFloat(getComputedStyle(node).fontSize);
    for (let tries = 0; node.scrollWidth > node.clientWidth && tries < 8; tries++) {
      size = Math.floor(size * Math.min(0.98, node.clientWidth / node.scrollWidth));
      node.style.fontSize = `${size}px`;
    }
  }
}

// Whether an alert is about what this screen shows: any on a company screen; on a screen scoped
// to a rep or a team, the company's and its own.
function concerns(alert) {
  return scopeBy === "all" || alert.by === "all" || (alert.by === scopeBy && alert.key === scopeKey);
}

function renderItem(item) {
  const reading = readings.get(specOf(item));
  const tile = el("section", { class: `tile kind-${item.kind} ${item.cls || ""}`, "data-kpi": item.kpi, "data-spec": specOf(item) });
  const title = `${TEXT[item.label || item.kpi] || item.kpi} · ${TEXT[periodOf(item)] || periodOf(item)}`;
  tile.append(el("h2", {}, title));
  if (activeAlerts.some((a) => a.kpi === item.kpi && concerns(a))) {
    tile.classList.add("alerting");
  }
  if (item.kind === "tile") renderTile(tile, reading);
  else if (item.kind === "ranks") renderRanks(tile, reading);
  else renderPie(tile, reading);
  // A value tile is as fresh as its own value; a list or a pie as its newest value.
  const own = item.kind === "tile" && reading && reading.values.find((v) => v.key === scopeKey);
  const asOf = (own ? own.as_of : reading && reading.as_of) || "";
  const fresh = age(asOf || null);
  tile.append(el("div", { class: `fresh ${fresh.stale ? "stale" : ""}`, "data-as-of": asOf }, fresh.text));
  return tile;
}

function renderTile(tile, reading) {
  const value = reading && reading.values.find((v) => v.key === scopeKey);
  const unit = reading ? reading.unit : "";
  tile.dataset.level = (value && value.level) || "none";
  tile.append(el("div", { class: "value" }, format(value && value.value, unit)));
  if (value && value.target !== null && value.target !== undefined) {
    const share = (x) => Math.max(0, Math.min(1, x / (value.target || 1)));
    const bar = el("div", { class: "bar" }, el("div", { class: "fill", style: `width:${share(value.value) * 100}%` }));
    if (value.pace !== null) bar.append(el("div", { class: "pace", style: `left:calc(${share(value.pace) * 100}% - .25vh)` }));
    tile.append(bar, el("div", { class: "target" },
      `${TEXT.target} ${format(value.target, unit)} · ${format(value.attainment, "ratio")}`));
  }
}

function inScope(key) {
  if (scopeBy === "all" || scopeBy === "rep") return true;
  const rec = teamOf[key];
  return rec && rec[scopeBy] === scopeKey;
}

function renderRanks(tile, reading) {
  const values = reading ? reading.values.filter((v) => v.value !== null && inScope(v.key)) : [];
  values.sort((a, b) => b.value - a.value || a.key.localeCompare(b.key));
  const list = el("ol", { class: "ranks" });
  values.slice(0, 8).forEach((v, i) => {
    list.append(el("li", { "data-key": v.key }, el("span", { class: "rank" }, `${i + 1}.`),
      el("span", { class: "name" }, (teamOf[v.key] && teamOf[v.key].name) || v.key),
      el("span", { class: "num" }, format(v.value, reading.unit))));
  });
  tile.append(list);
}

const COLOURS = ["#58a6ff", "#3fb950", "#d29922", "#f778ba", "#a371f7", "#ff7b72", "#79c0ff", "#56d364", "#e3b341"];
function renderPie(tile, reading) {
  const values = reading ? reading.values.filter((v) => v.value > 0) : [];
  values.sort((a, b) => b.value - a.value);
  const total = values.reduce((s, v) => s + v.value, 0);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "-1 -1 2 2");
  let angle = -Math.PI / 2;
  values.forEach((v, i) => {
    const sweep = (v.value / total) * 2 * Math.PI;
    const path = document.createElementNS(ns, sweep >= 2 * Math.PI - 1e-9 ? "circle" : "path");
    if (path.tagName === "circle") { path.setAttribute("r", "1"); }
    else {
      const [x1, y1, x2, y2] = [Math.cos(angle), Math.sin(angle), Math.cos(angle + sweep), Math.sin(angle + sweep)];
      path.setAttribute("d", `M0 0 L${x1} ${y1} A1 1 0 ${sweep > Math.PI ? 1 : 0} 1 ${x2} ${y2} Z`);
    }
    path.setAttribute("fill", COLOURS[i % COLOURS.length]);
    svg.append(path);
    angle += sweep;
  });
  const legend = el("div", { class: "legend" }, ...values.slice(0, 8).map((v, i) =>
    el("div", {}, el("span", { class: "sw", style: `background:${COLOURS[i % COLOURS.length]}` }),
      `${v.key} ${format(v.value / total, "ratio")}`)));
  tile.append(el("div", { class: "pie" }, svg, legend));
}

function renderAlerts() {
  const footer = document.getElementById("alerts");
  if (!activeAlerts.length) { footer.replaceChildren(el("span", { class: "balance" }, TEXT.no_alerts)); return; }
  footer.replaceChildren(...activeAlerts.slice(0, 4).map((a) => el("span", { class: a.level, "data-alert": a.alert_id },
    `${TEXT[a.level] || a.level}: ${TEXT[a.kpi] || a.kpi} · ${a.by === "all" ? TEXT.company : a.key} · ${format(a.value, a.unit)}`)));
}

function show(index) {
  current = index;
  render();
  if (rotateTimer) clearInterval(rotateTimer);
  if (rotateSeconds > 0 && boardNames.length > 1) {
    rotateTimer = setInterval(() => { current = (current + 1) % boardNames.length; render(); }, rotateSeconds * 1000);
  }
}

function onAlerts(active) {
  activeAlerts = active;
  // A new alert about this screen's scope brings the first board that shows its KPI to the front
  // (another rep's missed calls do not turn a rep's screen to the telephony board).
  const fresh = active.filter((a) => !seenAlerts.has(`${a.alert_id}/${a.level}`));
  // Kept for the alerts still active only (a level they went back to is not news): a screen left
  // on for months must not keep every alert it ever saw (raised again, one has a new alert_id).
  const ids = new Set(active.map((a) => a.alert_id));
  seenAlerts = new Set([...seenAlerts, ...active.map((a) => `${a.alert_id}/${a.level}`)]
    .filter((key) => ids.has(key.slice(0, key.lastIndexOf("/")))));
  const urgent = fresh.find((a) => concerns(a) && boardNames.some((b) => BOARDS[b].some((item) => item.kpi === a.kpi)));
  if (urgent) show(boardNames.findIndex((b) => BOARDS[b].some((item) => item.kpi === urgent.kpi)));
  else render();
}

let reopenDelay = 1000; // ms before a stream closed for good is opened again; doubles to 30 s

function connect() {
  const specs = new Set(boardNames.flatMap((b) => BOARDS[b].map(specOf)));
  const url = "/api/v1/stream?" + [...specs].map((s) => "watch=" + encodeURIComponent(s)).join("&");
  const source = new EventSource(api(url));
  const link = (up) => {
    document.body.dataset.connected = String(up);
    document.getElementById("link-text").textContent = up ? TEXT.live : TEXT.offline;
  };
  source.onopen = () => { reopenDelay = 1000; link(true); };
  source.onerror = () => {
    link(false);
    // After a network error EventSource reconnects by itself (the server resends everything). An
    // answer that is not a stream (a proxy's 502 or 503 while the API restarts behind it, a 401)
    // closes it for good, and a screen on a wall would say "reconnecting" until someone reloads
    // it: open a new one, backing off.
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(connect, reopenDelay);
      reopenDelay = Math.min(reopenDelay * 2, 30000);
    }
  };
  source.addEventListener("kpi", (e) => {
    const { id, reading } = JSON.parse(e.data);
    readings.set(id, reading);
    if (BOARDS[boardNames[current]].some((item) => specOf(item) === id)) render();
  });
  source.addEventListener("alerts", (e) => onAlerts(JSON.parse(e.data).active));
}

async function loadDirectory() {
  try {
    const reps = await (await fetch(api("/api/v1/directory/reps"))).json();
    teamOf = Object.fromEntries(reps.map((r) => {
      const now = r.assignments[r.assignments.length - 1] || {};
      return [r.rep_id, { name: r.name, team: now.team, region: now.region }];
    }));
  } catch (e) { /* leaderboards show rep ids meanwhile */ }
}

function tick() {
  document.getElementById("clock").textContent = new Date().toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  for (const node of document.querySelectorAll(".fresh")) {
    const fresh = age(node.dataset.asOf || null);
    node.textContent = fresh.text;
    node.classList.toggle("stale", fresh.stale);
  }
}

document.getElementById("scope").textContent = profileError ||
  (scopeBy === "all" ? TEXT.company : `${TEXT[scopeBy] || scopeBy} ${scopeKey}`);
loadDirectory().then(render);
setInterval(loadDirectory, 300000);
setInterval(tick, 1000);
window.addEventListener("resize", () => fitValues(document.getElementById("board")));
tick();
show(Math.max(0, boardNames.indexOf(params.get("board") || boardNames[0])));
connect();
