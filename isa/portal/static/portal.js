// The isa portal: every action is a request to isa's public HTTP routes (or /mcp) with the signed-in key.
// No inline code (strict CSP); text goes into the page with textContent only, never as HTML.
"use strict";

const STORE = "isa.portal.key";
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const OAUTH = "isa.portal.oauth"; // {client_id, refresh_token} of an OAuth sign-in (this tab only)
const PENDING = "isa.portal.oauth.pending"; // {state, verifier, client_id} while the browser is at /oauth/authorize
let key = sessionStorage.getItem(STORE) || "";
let me = null;
let isAdmin = false;
let mcpSession = null;
let currentTool = null;
let pendingCall = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function say(text, bad = false) {
  const status = $("status");
  status.textContent = text;
  status.className = bad ? "bad" : "";
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const send = () => {
    const headers = { Authorization: "Bearer " + key };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  };
  let response = await send();
  if (response.status === 401 && (await refreshOAuth())) response = await send();
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!response.ok) {
    const err = (data && data.error) || data || {};
    const code = typeof err === "object" ? err.code || err.error : String(err);
    const message = (typeof err === "object" && (err.message || err.detail)) || (data && data.message) || response.statusText;
    throw new ApiError(response.status, code, message);
  }
  // The user service wraps bodies as {success, data}; the other domains answer plainly.
  return data && data.success === true && "data" in data ? data.data : data;
}

const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en", { maximumFractionDigits: 4 }) : String(n ?? "–"));

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// A table from rows; `columns` is [[header, row => value], ...]; `actions` adds a last cell of buttons.
function table(target, rows, columns, actions) {
  const t = $(target);
  t.replaceChildren();
  const head = el("tr", {}, ...columns.map(([h]) => el("th", { scope: "col", text: h })));
  if (actions) head.append(el("th", { scope: "col", text: "Actions" }));
  t.append(el("thead", {}, head));
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr", {}, ...columns.map(([, get]) => el("td", { text: cell(get(row)) })));
    if (actions) tr.append(el("td", {}, ...actions(row)));
    body.append(tr);
  }
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: String(columns.length + (actions ? 1 : 0)), text: "None." })));
  t.append(body);
}

// --- sign-in --------------------------------------------------------------------------------------

async function signIn(candidate) {
  key = candidate;
  try {
    me = await api("GET", "/api/v1/users/me");
  } catch (e) {
    key = "";
    sessionStorage.removeItem(STORE);
    sessionStorage.removeItem(OAUTH);
    say(e.status === 401 ? "That key was not accepted (unknown, revoked or expired)." : "Sign-in failed: " + e.message, true);
    return;
  }
  sessionStorage.setItem(STORE, key);
  $("key").value = "";
  // Admin sections appear only when an admin route answers: the routes themselves refuse everyone else.
  try { await api("GET", "/api/v1/admin/users?limit=1"); isAdmin = true; } catch { isAdmin = false; }
  for (const li of document.querySelectorAll("#nav .admin")) li.hidden = !isAdmin;
  $("who-name").textContent = "Signed in as " + me.user_id + (isAdmin ? " (admin)" : "");
  $("signin").hidden = true;
  $("who").hidden = false;
  $("app").hidden = false;
  say("");
  show("overview");
}

async function signOut() {
  await revokeOAuth();
  key = "";
  me = null;
  isAdmin = false;
  mcpSession = null;
  sessionStorage.removeItem(STORE);
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  for (const li of document.querySelectorAll("#nav .admin")) li.hidden = true;
  say("Signed out.");
}

// --- sign-in through this node's OAuth 2.1 server: a public client with PKCE S256 (docs/oauth.md) ------------

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const randomText = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
const redirectUri = () => window.location.origin + "/portal/";
let oauthIssuer = null;

async function postForm(path, fields) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || "oauth_error", data.error_description || data.error || response.statusText);
  return data;
}

// Offered only when this node is the authorization server and its endpoints are on this origin (connect-src 'self').
async function probeOAuth() {
  try {
    const response = await fetch("/.well-known/oauth-authorization-server");
    if (!response.ok) return;
    const meta = await response.json();
    if (new URL(meta.token_endpoint).origin !== window.location.origin || !(meta.code_challenge_methods_supported || []).includes("S256")) return;
    oauthIssuer = meta.issuer;
    $("oauth-signin").hidden = false;
  } catch { /* no OAuth server here: API-key sign-in only */ }
}

// The portal registers itself (RFC 7591) once per tab, as a public client whose only redirect URI is /portal/.
async function startOAuth() {
  try {
    const client = await (await fetch("/oauth/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_name: "isa portal", redirect_uris: [redirectUri()], token_endpoint_auth_method: "none", grant_types: ["authorization_code", "refresh_token"], response_types: ["code"] }),
    })).json();
    if (!client.client_id) throw new Error(client.error_description || "registration refused");
    const verifier = randomText(32);
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    const state = randomText(16);
    sessionStorage.setItem(PENDING, JSON.stringify({ state, verifier, client_id: client.client_id }));
    const query = new URLSearchParams({ response_type: "code", client_id: client.client_id, redirect_uri: redirectUri(), code_challenge: challenge, code_challenge_method: "S256", state });
    window.location.assign("/oauth/authorize?" + query);
  } catch (e) {
    say("OAuth sign-in could not start: " + e.message, true);
  }
}

// Back from /oauth/authorize with ?code&state&iss (or ?error): check state (and iss), exchange the code, and take
// the code out of the address bar before anything else happens.
async function finishOAuth(params) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  window.history.replaceState(null, "", window.location.pathname);
  if (!pending || params.get("state") !== pending.state) { say("That sign-in answer was not for this tab; sign in again.", true); return; }
  if (params.get("error")) { say(params.get("error") === "access_denied" ? "Sign-in was denied." : "Sign-in failed: " + params.get("error"), true); return; }
  if (oauthIssuer && params.get("iss") && params.get("iss") !== oauthIssuer) { say("The sign-in answer came from another issuer.", true); return; }
  try {
    const tokens = await postForm("/oauth/token", { grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(), client_id: pending.client_id, code_verifier: pending.verifier });
    sessionStorage.setItem(OAUTH, JSON.stringify({ client_id: pending.client_id, refresh_token: tokens.refresh_token }));
    await signIn(tokens.access_token);
  } catch (e) {
    say("Sign-in failed: " + e.message, true);
  }
}

// Access tokens live minutes (auth.oauth.access_token_seconds); the rotated refresh token renews one on a 401.
let refreshing = null;
async function refreshOAuth() {
  const held = JSON.parse(sessionStorage.getItem(OAUTH) || "null");
  if (!held || !held.refresh_token) return false;
  refreshing = refreshing || postForm("/oauth/token", { grant_type: "refresh_token", refresh_token: held.refresh_token, client_id: held.client_id })
    .then((tokens) => {
      key = tokens.access_token;
      sessionStorage.setItem(STORE, key);
      sessionStorage.setItem(OAUTH, JSON.stringify({ client_id: held.client_id, refresh_token: tokens.refresh_token }));
      return true;
    })
    .catch(() => { sessionStorage.removeItem(OAUTH); return false; })
    .finally(() => { refreshing = null; });
  return refreshing;
}

// Signing out of an OAuth sign-in ends the grant (RFC 7009), so neither token works afterwards.
async function revokeOAuth() {
  const held = JSON.parse(sessionStorage.getItem(OAUTH) || "null");
  sessionStorage.removeItem(OAUTH);
  if (!held) return;
  // client_secret is empty for a public client, but the SDK's revocation form requires the field to be present.
  const form = { token: held.refresh_token, token_type_hint: "refresh_token", client_id: held.client_id, client_secret: "" };
  try { await postForm("/oauth/revoke", form); } catch { /* the grant expires anyway */ }
}

// --- navigation -----------------------------------------------------------------------------------

const LOADERS = {
  overview: loadOverview, keys: loadKeys, catalog: loadCatalog, playground: loadPlayground,
  approvals: loadApprovals, activity: loadActivity, connect: loadConnect,
  users: loadUsers, servers: loadServers, metrics: loadMetrics, audit: loadAudit, config: loadConfig,
};

async function show(name) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== "sec-" + name;
  for (const button of document.querySelectorAll("#nav button")) {
    if (button.dataset.section === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  try {
    await LOADERS[name]();
  } catch (e) {
    say(`${name}: ${e.message}`, true);
  }
}

// --- overview: credits, plan, usage charts, plans --------------------------------------------------

async function loadOverview() {
  const [balance, stats, plans] = await Promise.all([
    api("GET", "/api/v1/users/me/credits/balance"),
    api("GET", "/api/v1/users/me/usage/stats"),
    api("GET", "/api/v1/subscriptions/plans"),
  ]);
  $("credits").textContent = fmt(balance.balance);
  $("plan").textContent = balance.plan;
  $("requests").textContent = fmt(stats.totals.requests);
  barChart("chart-day", stats.by_day.map((b) => [b.key, b.requests, b.credits]), "requests per day");
  barChart("chart-model", stats.by_model.map((b) => [b.key || "(no model)", b.requests, b.credits]), "requests per model");
  const list = $("plans");
  list.replaceChildren();
  for (const plan of plans.plans) {
    const item = el("li", {}, el("strong", { text: plan.name }), el("span", { text: ` ${fmt(plan.credits)} credits / ${plan.interval} — $${fmt(plan.price_usd)}` }));
    // "Buy" only where a payment can be taken: the plans route says whether Stripe is configured.
    if (plans.payments_enabled && plan.purchasable && plan.plan !== balance.plan) {
      item.append(el("button", { type: "button", text: "Buy " + plan.name, onclick: () => checkout(plan.plan) }));
    }
    list.append(item);
  }
  if (!plans.payments_enabled && plans.plans.some((p) => p.purchasable)) {
    list.append(el("li", { id: "payments-off", class: "hint", text: "Payments are not configured on this server: an operator recharges credits." }));
  }
}

async function checkout(plan) {
  try {
    const session = await api("POST", "/api/v1/billing/checkout", { plan });
    window.location.assign(session.checkout_url);
  } catch (e) {
    say(e.code === "not_configured" || e.status === 503 ? "Payments are not configured on this server." : "Checkout failed: " + e.message, true);
  }
}

// Horizontal bars drawn as SVG: one row per bucket, a <title> per bar, and a caption-like summary for readers.
function barChart(target, rows, label) {
  const box = $(target);
  box.replaceChildren();
  if (!rows.length) { box.append(el("p", { text: "No usage yet." })); return; }
  const rowH = 26, labelW = 120, width = 560, barW = width - labelW - 90;
  const max = Math.max(...rows.map((r) => r[1]), 1);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${rows.length * rowH + 4}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label}: ` + rows.map((r) => `${r[0]} ${r[1]}`).join(", "));
  rows.forEach(([name, value, credits], i) => {
    const y = i * rowH + 2;
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", "0"); text.setAttribute("y", String(y + 17));
    text.textContent = String(name).slice(0, 16);
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", String(labelW)); rect.setAttribute("y", String(y + 3));
    rect.setAttribute("height", String(rowH - 8));
    rect.setAttribute("width", String(Math.max(2, (value / max) * barW)));
    rect.setAttribute("class", "bar");
    rect.dataset.key = String(name);
    rect.dataset.value = String(value);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${name}: ${value} requests, ${fmt(credits)} credits`;
    rect.append(title);
    const count = document.createElementNS(SVG, "text");
    count.setAttribute("x", String(labelW + (value / max) * barW + 6)); count.setAttribute("y", String(y + 17));
    count.textContent = String(value);
    svg.append(text, rect, count);
  });
  box.append(svg);
}

// --- API keys -------------------------------------------------------------------------------------

async function loadKeys() {
  const listing = await api("GET", "/api/v1/auth/keys");
  table("keys", listing.keys, [
    ["Name", (k) => k.name || "(unnamed)"],
    ["Prefix", (k) => k.prefix + "…"],
    ["Scopes", (k) => k.scopes.join(" ")],
    ["Created", (k) => k.created_at.slice(0, 16).replace("T", " ")],
    ["Last used", (k) => (k.last_used_at || "").slice(0, 16).replace("T", " ")],
    ["State", (k) => (k.revoked_at ? "revoked" : k.id === listing.current_key_id ? "live (this session)" : "live")],
  ], (k) => (k.revoked_at ? [] : [el("button", { type: "button", text: "Revoke", "aria-label": `Revoke key ${k.name || k.prefix}`, onclick: () => revokeKey(k) })]));
}

async function createKey(event) {
  event.preventDefault();
  try {
    const made = await api("POST", "/api/v1/auth/keys", { name: $("key-name").value, scope: $("key-scope").value });
    $("new-key-value").textContent = made.key;
    $("new-key").hidden = false;
    $("key-name").value = "";
    say(`Key "${made.name || made.id}" created.`);
    await loadKeys();
  } catch (e) {
    say("Could not create the key: " + e.message, true);
  }
}

async function revokeKey(k) {
  if (!window.confirm(`Revoke key ${k.name || k.prefix}? Clients using it stop working at once.`)) return;
  try {
    await api("DELETE", "/api/v1/auth/keys/" + encodeURIComponent(k.id));
    say(`Key ${k.name || k.prefix} revoked.`);
    await loadKeys();
  } catch (e) {
    say("Could not revoke: " + e.message, true);
  }
}

// --- catalog --------------------------------------------------------------------------------------

let levels = {};

async function loadCatalog() {
  const [caps, security] = await Promise.all([api("GET", "/capabilities?limit=1000"), api("GET", "/security/levels?limit=1000")]);
  levels = Object.fromEntries(security.tools.map((t) => [t.name, t.security_level]));
  const box = $("catalog-lists");
  box.replaceChildren();
  for (const kind of ["tools", "prompts", "resources"]) {
    const group = caps.capabilities[kind];
    const ul = el("ul", { id: "list-" + kind, class: "names" });
    for (const name of group.available) {
      ul.append(el("li", {}, el("button", { type: "button", class: "link", text: name + (levels[name] && levels[name] !== "LOW" ? ` (${levels[name]})` : ""), onclick: () => details(name, kind) })));
    }
    box.append(el("div", {}, el("h4", { text: `${kind} (${group.count})` }), ul));
  }
  const names = $("tool-names");
  names.replaceChildren(...caps.capabilities.tools.available.map((n) => el("option", { value: n })));
}

function renderResults(items, heading) {
  const box = $("search-results");
  box.replaceChildren(el("h3", { text: heading }));
  if (!items.length) { box.append(el("p", { text: "Nothing relevant found." })); return; }
  for (const item of items) {
    const card = el("article", { class: "card" },
      el("h4", { text: `${item.name} · ${item.type || "tool"} · ${item.security_level || levels[item.name] || ""}` }),
      el("p", { text: item.description || "" }));
    const schema = item.input_schema || item.arguments;
    if (schema) card.append(el("details", {}, el("summary", { text: "Schema" }), el("pre", { text: JSON.stringify(schema, null, 2) })));
    const examples = item.metadata && (item.metadata.examples || item.metadata.example);
    if (examples) card.append(el("details", {}, el("summary", { text: "Examples" }), el("pre", { text: JSON.stringify(examples, null, 2) })));
    if ((item.type || "tool") === "tool") card.append(el("button", { type: "button", text: "Try in playground", onclick: () => { $("pick-tool").value = item.name; show("playground").then(() => pickTool()); } }));
    box.append(card);
  }
}

async function details(name, kind) {
  const type = kind.slice(0, -1);
  const found = await api("POST", "/search", { query: name, filters: { types: [type] }, max_results: 20 });
  renderResults(found.results.filter((r) => r.name === name), name);
}

async function search(event) {
  event.preventDefault();
  try {
    const found = await api("POST", "/search", { query: $("search-q").value });
    renderResults(found.results, `Results for “${$("search-q").value}”`);
  } catch (e) { say("Search failed: " + e.message, true); }
}

async function discover(event) {
  event.preventDefault();
  try {
    const found = await api("POST", "/discover", { request: $("discover-q").value });
    const c = found.capabilities;
    const items = [...c.tools.map((t) => ({ ...t, type: "tool" })), ...c.prompts.map((p) => ({ ...p, type: "prompt" })), ...c.resources.map((r) => ({ ...r, type: "resource" }))];
    renderResults(items, "Discovery would offer");
  } catch (e) { say("Discovery failed: " + e.message, true); }
}

// --- playground: a form from the tool's input schema, called over MCP -----------------------------

async function loadPlayground() {
  if (!$("tool-names").children.length) {
    const caps = await api("GET", "/capabilities?limit=1000");
    $("tool-names").replaceChildren(...caps.capabilities.tools.available.map((n) => el("option", { value: n })));
  }
}

async function pickTool(event) {
  if (event) event.preventDefault();
  const name = $("pick-tool").value.trim();
  $("call-form").hidden = true; // no call with the previous tool's form while this one loads
  const found = await api("POST", "/search", { query: name, filters: { types: ["tool"] }, max_results: 20 });
  const tool = found.results.find((r) => r.name === name);
  if (!tool) { say(`No tool named ${name} that you may use.`, true); return; }
  currentTool = tool;
  $("tool-info").textContent = `${tool.name} (${tool.security_level}): ${tool.description}`;
  $("call-legend").textContent = "Arguments of " + tool.name;
  const fields = $("call-fields");
  fields.replaceChildren();
  const schema = tool.input_schema || { properties: {} };
  const required = new Set(schema.required || []);
  for (const [prop, spec] of Object.entries(schema.properties || {})) {
    const id = "arg-" + prop;
    const type = Array.isArray(spec.type) ? spec.type.find((t) => t !== "null") : spec.type || (spec.anyOf && spec.anyOf.map((s) => s.type).find((t) => t && t !== "null"));
    const label = el("label", { for: id, text: (spec.title || prop) + (required.has(prop) ? " (required)" : "") });
    let input;
    if (spec.enum) {
      input = el("select", { id }, ...(required.has(prop) ? [] : [el("option", { value: "", text: "" })]), ...spec.enum.map((v) => el("option", { value: String(v), text: String(v) })));
    } else if (type === "boolean") {
      input = el("input", { id, type: "checkbox" });
    } else if (type === "integer" || type === "number") {
      input = el("input", { id, type: "number", step: type === "integer" ? "1" : "any" });
    } else if (type === "object" || type === "array") {
      input = el("textarea", { id, rows: "3", placeholder: type === "array" ? "[ ]  (JSON)" : "{ }  (JSON)" });
    } else {
      input = el("input", { id, type: "text" });
    }
    input.dataset.prop = prop;
    input.dataset.type = type || "string";
    if (required.has(prop) && type !== "boolean") input.required = true;
    if (spec.default !== undefined && type !== "boolean") input.value = typeof spec.default === "object" ? JSON.stringify(spec.default) : String(spec.default);
    if (type === "boolean" && spec.default) input.checked = true;
    const row = el("div", { class: "field" }, label, input);
    if (spec.description) row.append(el("small", { text: spec.description }));
    fields.append(row);
  }
  $("call-form").hidden = false;
  $("call-approval").hidden = true;
  $("call-result").textContent = "";
}

function formArguments() {
  const args = {};
  for (const input of $("call-fields").querySelectorAll("[data-prop]")) {
    const { prop, type } = input.dataset;
    if (type === "boolean") { args[prop] = input.checked; continue; }
    if (input.value === "") continue;
    if (type === "integer" || type === "number") args[prop] = Number(input.value);
    else if (type === "object" || type === "array") args[prop] = JSON.parse(input.value);
    else args[prop] = input.value;
  }
  return args;
}

// MCP over Streamable HTTP from the browser: initialize once per sign-in, then JSON-RPC calls; answers may come
// as JSON or as an SSE stream whose `data:` lines hold the JSON-RPC response.
async function mcp(method, params, notify = false) {
  const headers = {
    Authorization: "Bearer " + key,
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
  };
  if (mcpSession) { headers["Mcp-Session-Id"] = mcpSession.id; headers["MCP-Protocol-Version"] = mcpSession.version; }
  const body = notify ? { jsonrpc: "2.0", method, params } : { jsonrpc: "2.0", id: Date.now(), method, params };
  let response = await fetch("/mcp", { method: "POST", headers, body: JSON.stringify(body) });
  if (response.status === 401 && (await refreshOAuth())) {
    headers.Authorization = "Bearer " + key;
    response = await fetch("/mcp", { method: "POST", headers, body: JSON.stringify(body) });
  }
  if (notify) return null;
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, "mcp_error", text.slice(0, 300));
  const sid = response.headers.get("mcp-session-id");
  let message = null;
  if ((response.headers.get("content-type") || "").includes("text/event-stream")) {
    for (const line of text.split("\n")) {
      if (!line.startsWith("data:")) continue;
      const parsed = JSON.parse(line.slice(5));
      if (parsed.id === body.id) message = parsed;
    }
  } else {
    message = JSON.parse(text);
  }
  if (!message) throw new ApiError(502, "mcp_error", "no answer from /mcp");
  if (message.error) throw new ApiError(400, "mcp_error", message.error.message);
  return { result: message.result, sid };
}

async function ensureMcp() {
  if (mcpSession) return;
  const init = await mcp("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "isa-portal", version: "1" } });
  mcpSession = { id: init.sid, version: init.result.protocolVersion };
  await mcp("notifications/initialized", {}, true);
}

async function callTool(event) {
  if (event) event.preventDefault();
  if (!currentTool) return;
  let args;
  try { args = formArguments(); } catch { say("An object or array field does not hold valid JSON.", true); return; }
  $("call-result").textContent = "Calling…";
  try {
    await ensureMcp();
    let answer;
    try {
      answer = await mcp("tools/call", { name: currentTool.name, arguments: args });
    } catch (e) {
      if (e.status !== 404) throw e;
      mcpSession = null; // the session ended on the server: start a new one once
      await ensureMcp();
      answer = await mcp("tools/call", { name: currentTool.name, arguments: args });
    }
    const result = answer.result;
    const structured = result.structuredContent || null;
    if (structured && structured.status === "authorization_requested") {
      pendingCall = { request: structured.data, args };
      $("call-approval-text").textContent = `${currentTool.name} needs a human's approval (request ${structured.data.id}). Approve it with another of your keys (the key that asked can't), then call again.`;
      $("call-approval").hidden = false;
    } else {
      $("call-approval").hidden = true;
    }
    const shown = structured || (result.content || []).map((c) => c.text || c).join("\n");
    $("call-result").textContent = (result.isError ? "Error: " : "") + (typeof shown === "string" ? shown : JSON.stringify(shown, null, 2));
  } catch (e) {
    $("call-result").textContent = "Call failed: " + e.message;
  }
}

async function decideInline(approve) {
  if (!pendingCall) return;
  const ok = await decide(pendingCall.request.id, approve);
  if (ok && approve) { $("call-approval").hidden = true; await callTool(); }
  if (ok && !approve) $("call-approval").hidden = true;
}

// --- approvals ------------------------------------------------------------------------------------

async function decide(id, approve) {
  try {
    await api("POST", `/api/v1/authorizations/${encodeURIComponent(id)}/${approve ? "approve" : "deny"}`, {});
    say(`Request ${id} ${approve ? "approved" : "denied"}.`);
    return true;
  } catch (e) {
    say(e.code === "self_approval_forbidden" ? "This key asked for the approval, so it can't grant it: sign in with another of your keys." : "Could not decide: " + e.message, true);
    return false;
  }
}

async function loadApprovals() {
  const listing = await api("GET", "/api/v1/authorizations?status=pending");
  const list = $("approvals");
  list.replaceChildren();
  if (!listing.authorizations.length) list.append(el("li", { text: "Nothing waits for you." }));
  for (const a of listing.authorizations) {
    const again = async (approve) => { if (await decide(a.id, approve)) await loadApprovals(); };
    list.append(el("li", { class: "card" },
      el("h4", { text: `${a.tool_name} (${a.security_level})` }),
      el("p", { text: a.reason || "" }),
      el("pre", { text: JSON.stringify(a.arguments, null, 2) }),
      el("button", { type: "button", text: "Approve", "aria-label": `Approve ${a.tool_name}`, onclick: () => again(true) }),
      el("button", { type: "button", text: "Deny", "aria-label": `Deny ${a.tool_name}`, onclick: () => again(false) })));
  }
}

// --- files, sessions, tasks -----------------------------------------------------------------------

async function loadActivity() {
  const [files, sessions, tasks] = await Promise.all([
    api("GET", `/api/v1/users/${encodeURIComponent(me.user_id)}/files`),
    api("GET", "/api/v1/users/me/sessions"),
    api("GET", "/api/v1/tasks"),
  ]);
  table("files", files, [["Name", (f) => f.file_name || f.name || f.file_path], ["Size", (f) => f.file_size ?? f.size], ["Status", (f) => f.status], ["Created", (f) => f.created_at]]);
  table("sessions", sessions.sessions, [["Title", (s) => s.title || s.session_id], ["Status", (s) => s.status], ["Messages", (s) => s.message_count], ["Updated", (s) => s.updated_at || s.created_at]]);
  table("tasks", tasks.tasks, [["Name", (t) => t.name || t.task_id], ["Type", (t) => t.task_type], ["Status", (t) => t.status], ["Next run", (t) => t.next_run_at], ["Runs", (t) => t.run_count]]);
}

// --- connection snippets --------------------------------------------------------------------------

async function loadConnect() {
  const origin = window.location.origin;
  $("snip-mcp").textContent = JSON.stringify({ mcpServers: { isa: { type: "http", url: origin + "/mcp", headers: { Authorization: "Bearer YOUR_ISA_KEY" } } } }, null, 2);
  $("snip-meta").textContent = origin + "/.well-known/oauth-protected-resource/mcp";
  $("snip-openai").textContent = [
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url="${origin}/v1", api_key="YOUR_ISA_KEY")`,
    'reply = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hello"}])',
    "print(reply.choices[0].message.content)",
  ].join("\n");
}

// --- admin ----------------------------------------------------------------------------------------

async function loadUsers() {
  const listing = await api("GET", "/api/v1/admin/users?limit=200");
  table("users", listing.users, [
    ["User", (u) => u.user_id], ["Email", (u) => u.email], ["Credits", (u) => fmt(u.credits)], ["Plan", (u) => u.plan],
    ["State", (u) => (u.is_active ? "active" : "disabled")],
  ], (u) => [el("button", {
    type: "button", text: u.is_active ? "Disable" : "Enable", "aria-label": `${u.is_active ? "Disable" : "Enable"} ${u.user_id}`,
    onclick: async () => {
      try {
        await api("POST", `/api/v1/admin/users/${encodeURIComponent(u.user_id)}/${u.is_active ? "disable" : "enable"}`, {});
        await loadUsers();
      } catch (e) { say(e.message, true); }
    },
  })]);
}

async function createUser(event) {
  event.preventDefault();
  const body = { user_id: $("new-user").value.trim() };
  if ($("new-email").value) body.email = $("new-email").value.trim();
  try {
    const made = await api("POST", "/api/v1/admin/users", body);
    say(made.created ? `User ${made.user_id} created.` : `User ${made.user_id} already exists.`);
    await loadUsers();
  } catch (e) { say("Could not create the user: " + e.message, true); }
}

async function recharge(event) {
  event.preventDefault();
  const user = $("recharge-user").value.trim();
  try {
    const done = await api("POST", `/api/v1/admin/users/${encodeURIComponent(user)}/credits/recharge`, { amount: Number($("recharge-amount").value), description: "portal recharge" });
    say(`Recharged ${user} with ${fmt(done.amount)} credits.`);
    await loadUsers();
  } catch (e) { say("Recharge failed: " + e.message, true); }
}

// Health of a server added by URL (ok / error / pending); imported files and isa itself have none to report.
const health = (s) => s.health || (s.source === "isa" ? "this node" : "file import");

async function loadServers() {
  const [servers, stats] = await Promise.all([api("GET", "/catalog/servers"), api("GET", "/stats")]);
  table("servers", servers.servers, [
    ["Server", (s) => s.name], ["URL", (s) => s.url || "(this node)"], ["Health", health],
    ["Last sync (UTC)", (s) => (s.last_sync_at || "").slice(0, 19).replace("T", " ")], ["Last error", (s) => s.last_error],
    ["Tools", (s) => s.tools], ["Prompts", (s) => s.prompts], ["Resources", (s) => s.resources],
  ], (s) => {
    const buttons = [];
    if (s.source === "url") buttons.push(el("button", { type: "button", text: "Sync", "aria-label": `Sync server ${s.name}`, onclick: () => syncServer(s.name) }));
    if (s.source !== "isa") buttons.push(el("button", { type: "button", text: "Remove", "aria-label": `Remove server ${s.name}`, onclick: async () => {
      if (!window.confirm(`Remove server ${s.name} from the catalog?`)) return;
      try { await api("DELETE", "/catalog/servers/" + encodeURIComponent(s.name)); say(`Removed ${s.name}.`); await loadServers(); } catch (e) { say(e.message, true); }
    } }));
    return buttons;
  });
  $("discovery-stats").textContent = JSON.stringify(stats, null, 2);
}

const counts = (r) => `${r.tools ?? 0} tools, ${r.prompts ?? 0} prompts, ${r.resources ?? 0} resources`;
const changes = (r) => `${r.tools ?? 0} tools (${r.embedded ?? 0} embedded, ${r.removed ?? 0} removed)`;

async function syncServer(name) {
  say(`Syncing ${name}…`);
  try {
    const done = await api("POST", `/catalog/servers/${encodeURIComponent(name)}/sync`, {});
    say(`Synced ${name}: ${changes(done.synced)}.`);
  } catch (e) { say(`Sync of ${name} failed: ${e.message}`, true); }
  await loadServers(); // the health and last error changed either way
}

async function addServer(event) {
  event.preventDefault();
  const headers = {};
  for (const line of $("server-headers").value.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    if (at < 1) { say(`A header line must read "Name: value": ${line.slice(0, 40)}`, true); return; }
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  const name = $("server-name").value.trim();
  say(`Adding ${name} (listing its tools)…`);
  try {
    const done = await api("POST", "/catalog/servers", { name, url: $("server-url").value.trim(), headers });
    say(`Added ${name}: ${counts(done.added)}.`);
    $("server-form").reset(); // the headers may hold a secret: don't leave it in the page
    await loadServers();
  } catch (e) { say(`Could not add ${name}: ${e.message}`, true); }
}

async function loadMetrics() {
  const m = await api("GET", "/api/v1/admin/mcp/metrics");
  $("metrics-summary").textContent = `${m.total_calls} calls in ${m.window_hours} h; ${m.pending_approvals} approvals pending; outcomes ${JSON.stringify(m.by_outcome)}`;
  table("metrics", m.tools, [
    ["Tool", (t) => t.tool_name], ["Calls", (t) => t.calls], ["Not OK", (t) => t.calls - (t.ok ?? t.calls)],
    ["p50 ms", (t) => (t.p50_ms == null ? "" : Math.round(t.p50_ms))], ["p95 ms", (t) => (t.p95_ms == null ? "" : Math.round(t.p95_ms))],
  ]);
}

async function loadAudit() {
  const log = await api("GET", "/api/v1/admin/mcp/audit?limit=100");
  table("audit", log.entries, [
    ["When", (e) => (e.created_at || "").slice(0, 19).replace("T", " ")], ["User", (e) => e.user_id], ["Tool", (e) => e.tool_name],
    ["Level", (e) => e.security_level], ["Outcome", (e) => e.outcome + (e.error_code ? ` (${e.error_code})` : "")],
    ["ms", (e) => e.duration_ms], ["Arguments (masked)", (e) => e.arguments],
  ]);
}

async function loadConfig() {
  const shown = await api("GET", "/api/v1/admin/config");
  $("config").textContent = JSON.stringify(shown.config, null, 2);
}

// --- wiring ---------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", (e) => { e.preventDefault(); signIn($("key").value.trim()); });
  $("signout").addEventListener("click", signOut);
  for (const button of document.querySelectorAll("#nav button")) button.addEventListener("click", () => show(button.dataset.section));
  $("key-form").addEventListener("submit", createKey);
  $("search-form").addEventListener("submit", search);
  $("discover-form").addEventListener("submit", discover);
  $("pick-form").addEventListener("submit", (e) => pickTool(e).catch((err) => say(err.message, true)));
  $("call-form").addEventListener("submit", callTool);
  $("call-approve").addEventListener("click", () => decideInline(true));
  $("call-deny").addEventListener("click", () => decideInline(false));
  $("user-form").addEventListener("submit", createUser);
  $("recharge-form").addEventListener("submit", recharge);
  $("server-form").addEventListener("submit", addServer);
  $("oauth-signin").addEventListener("click", startOAuth);
  const params = new URLSearchParams(window.location.search);
  probeOAuth().then(() => {
    if (params.has("state") && (params.has("code") || params.has("error"))) finishOAuth(params);
    else if (key) signIn(key);
  });
});
