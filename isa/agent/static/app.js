// isa chat page: sign in, conversations, streamed Markdown answers, tool cards (approvals, questions, images),
// plans, uploads, stop/retry/copy. No build step, no inline handlers (the CSP allows scripts from this origin only).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("isa.token") || "", user: null, mcp: "", session: null,
  busy: false, attachment: null, pending: null, controller: null, lastMessage: null, answer: null,
  cards: new Map(), plans: new Map(), stopped: false, blobs: [] };

// Images the page shows from the user's files: raster types only (never SVG), and bounded in size. A reopened
// conversation previews attachments only when they are small.
const IMAGE_TYPE = /^image\/(png|jpeg|gif|webp)$/;
const FILE_IMAGE_MAX_BYTES = 10 * 1024 * 1024;
const ATTACHMENT_PREVIEW_MAX_BYTES = 2 * 1024 * 1024;
const ATTACHMENT_NOTE = /\[Attached file: (.*?) \(file_id ([0-9a-fA-F-]{36}), ([\w.+/-]+)\)\]/g;

// What a user reads for an error event's code (the server's own message follows it).
const ERROR_TEXT = {
  insufficient_credits: "You have run out of credits for this request.",
  model_unavailable: "The chat model is unavailable right now. Try again in a moment.",
  upstream_error: "The chat model is unavailable right now. Try again in a moment.",
  upstream_unavailable: "The chat model is unavailable right now. Try again in a moment.",
  upstream_timeout: "The chat model did not answer in time. Try again.",
  model_timeout: "The chat model did not answer in time. Try again.",
  model_stream_cut: "The model's answer broke off. Try again.",
  mcp_unavailable: "The tools are unreachable right now. Try again in a moment.",
  tool_timeout: "A tool took too long.",
  time_budget_exceeded: "The request took longer than allowed.",
  rate_limited: "Too many requests: wait a moment, then try again.",
  stream_interrupted: "The answer was interrupted.",
};

function authHeaders(extra) {
  return Object.assign({ Authorization: "Bearer " + state.token }, extra || {});
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({}, options, { headers: authHeaders((options || {}).headers) }));
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    let code = "";
    try { const body = (await response.json()).error; message = body.message || message; code = body.code || ""; }
    catch (e) { /* not JSON */ }
    const error = new Error(message);
    error.code = code;
    error.status = response.status;
    throw error;
  }
  return response;
}

function status(text) { $("status").textContent = text; }
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) { node.className = className; }
  if (text !== undefined && text !== null) { node.textContent = text; }
  return node;
}
function scrollDown(node) { node.scrollIntoView({ block: "end" }); }

// -- messages ------------------------------------------------------------------------------------------

function addMessage(role, text, extra) {
  const item = el("div", "msg " + role + (extra ? " " + extra : ""));
  const who = el("span", "who-label visually-hidden", role === "user" ? "You:" : role === "assistant" ? "Assistant:" : "");
  const body = el("div", "body");
  item.append(who, body);
  if (role === "assistant") {
    item.raw = text || "";
    Render.markdown(body, item.raw, true);
    const actions = el("div", "actions");
    actions.append(Render.copyButton("Copy answer", () => item.raw));
    item.append(actions);
  } else {
    body.textContent = text;
  }
  $("messages").appendChild(item);
  scrollDown(item);
  return item;
}

function addError(code, message) {
  const known = ERROR_TEXT[code];
  const item = addMessage("notice", (known ? known + " " : "") + (message ? "(" + message + ")" : ""), "error");
  item.setAttribute("role", "alert");
  item.dataset.code = code || "";
  return item;
}

// Streaming: append the piece, re-render the Markdown at most once per frame.
function appendAnswer(piece) {
  if (!state.answer) { state.answer = addMessage("assistant", ""); state.answer.classList.add("streaming"); }
  const answer = state.answer;
  answer.raw += piece;
  if (answer.frame) { return; }
  answer.frame = requestAnimationFrame(() => {
    answer.frame = 0;
    Render.markdown(answer.querySelector(".body"), answer.raw, false);
    scrollDown(answer);
  });
}

function finishAnswer() {
  const answer = state.answer;
  if (!answer) { return; }
  if (answer.frame) { cancelAnimationFrame(answer.frame); answer.frame = 0; }
  Render.markdown(answer.querySelector(".body"), answer.raw, true);
  answer.classList.remove("streaming");
  state.answer = null;
}

// -- tool cards ----------------------------------------------------------------------------------------

const STATE_TEXT = { queued: "Queued", running: "Running…", finished: "Finished", failed: "Failed",
  waiting: "Waits for you", denied: "Denied" };

function pretty(text) {
  if (typeof text !== "string") { return JSON.stringify(text, null, 2); }
  const body = text.replace(/^<untrusted_tool_output>\n|\n<\/untrusted_tool_output>$/g, "");
  try { return JSON.stringify(JSON.parse(body), null, 2); } catch (e) { return body; }
}

function section(card, name, summaryText, open) {
  let details = card.querySelector("details." + name);
  if (!details) {
    details = el("details", name);
    details.append(el("summary", null, summaryText), el("pre"));
    card.querySelector(".card-body").append(details);
  }
  details.open = Boolean(open);
  return details;
}

function toolCard(callId, name, args) {
  let card = callId ? state.cards.get(callId) : null;
  if (!card) {
    finishAnswer();
    card = el("div", "card tool");
    card.dataset.callId = callId || "";
    card.dataset.tool = name;
    const head = el("div", "card-head");
    head.append(el("span", "tool-name", name), el("span", "tool-state"), el("span", "tool-time"));
    card.append(head, el("div", "card-body"));
    $("messages").appendChild(card);
    if (callId) { state.cards.set(callId, card); }
    setCardState(card, "queued");
  }
  if (args !== undefined) { section(card, "args", "Arguments").querySelector("pre").textContent = pretty(args); }
  scrollDown(card);
  return card;
}

function setCardState(card, value, ms) {
  card.dataset.state = value;
  card.querySelector(".tool-state").textContent = STATE_TEXT[value] || value;
  if (ms !== undefined && ms !== null) {
    card.querySelector(".tool-time").textContent = ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
  }
}

function setCardResult(card, content) {
  section(card, "result", "Result").querySelector("pre").textContent = pretty(content);
}

function addImages(container, images) {
  let strip = container.querySelector(".images");
  if (!strip) { strip = el("div", "images"); container.append(strip); }
  for (const image of images) {
    if (image.data) { (container.inline = container.inline || new Set()).add(image.data); }
    const url = image.url || ("data:" + image.mime_type + ";base64," + image.data);
    const button = el("button", "thumb");
    button.type = "button";
    if (image.fileId) { button.dataset.fileId = image.fileId; }
    button.setAttribute("aria-label", "Enlarge " + (image.name || "image"));
    const img = el("img");
    img.src = url;
    img.alt = image.name || "Image from " + (container.dataset.tool || "the conversation");
    button.append(img);
    button.addEventListener("click", () => enlarge(url, img.alt, image.name || "image"));
    strip.append(button);
  }
}

// A file of the user's, fetched with their credential (an <img> cannot send the Authorization header) from the
// files domain's same-origin content route, and shown through a blob: URL. Not an image, too large, or gone: null.
async function fetchFileImage(fileId, maxBytes) {
  const controller = new AbortController();
  const response = await api(state.mcp + "/api/v1/users/me/files/" + encodeURIComponent(fileId) + "/content",
    { signal: controller.signal });
  const type = (response.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
  const size = Number(response.headers.get("Content-Length") || 0);
  if (!IMAGE_TYPE.test(type) || !size || size > maxBytes) { controller.abort(); return null; }
  const blob = await response.blob();
  const named = /filename\*=UTF-8''([^;]+)/i.exec(response.headers.get("Content-Disposition") || "");
  return { blob, name: named ? decodeURIComponent(named[1]) : "file-" + fileId.slice(0, 8) + "." + type.slice(6) };
}

function base64Of(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) { binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)); }
  return btoa(binary);
}

// Show the images among `fileIds` in `container` (a tool card's body, or a user message), skipping a file whose
// bytes the tool also returned inline (an analytics chart comes both ways).
async function showFileImages(container, fileIds, maxBytes) {
  for (const fileId of fileIds) {
    let image = null;
    try { image = await fetchFileImage(fileId, maxBytes); } catch (error) { continue; }
    if (!image) { continue; }
    if (container.inline && container.inline.has(base64Of(await image.blob.arrayBuffer()))) { continue; }
    const url = URL.createObjectURL(image.blob);
    state.blobs.push(url);
    addImages(container, [{ url: url, name: image.name, fileId: fileId }]);
  }
}

function enlarge(url, alt, name) {
  const dialog = $("viewer");
  const img = $("viewer-image");
  img.src = url;
  img.alt = alt;
  const link = $("viewer-download");
  link.href = url;
  link.download = name.includes(".") ? name : name + ".png";
  dialog.showModal();
}

// The run waits for a human: the card of that call shows the question or Approve / Deny.
function showInterrupt(interrupt) {
  const value = interrupt.value || {};
  state.pending = value;
  const card = toolCard(value.tool_call_id, value.tool_name || value.tool || "request");
  setCardState(card, "waiting");
  card.querySelector(".card-decision")?.remove();
  const box = el("div", "card-decision");
  box.setAttribute("role", "group");
  if (value.type === "authorization") {
    const question = el("p", null, "Approve the tool " + (value.tool_name || value.tool) + "?");
    question.id = "decision-" + (value.tool_call_id || "x");
    box.setAttribute("aria-labelledby", question.id);
    const args = value.tool_args || value.arguments;
    if (args) { section(card, "args", "Arguments", true).querySelector("pre").textContent = pretty(args); }
    const approve = el("button", "primary", "Approve");
    approve.type = "button";
    const deny = el("button", null, "Deny");
    deny.type = "button";
    approve.addEventListener("click", () => decide(true));
    deny.addEventListener("click", () => decide(false));
    box.append(question, approve, deny);
    card.querySelector(".card-body").append(box);
    approve.focus();
  } else {
    const form = el("form", "answer-form");
    const id = "answer-" + (value.tool_call_id || "x");
    const label = el("label", null, value.question || "The assistant asks a question.");
    label.htmlFor = id;
    const input = el("input");
    input.id = id;
    input.type = "text";
    input.required = true;
    const options = (value.options || []).join(" / ");
    const submit = el("button", "primary", "Send answer");
    submit.type = "submit";
    form.append(label, input, submit);
    if (options) { form.append(el("p", "hint", "Options: " + options)); }
    form.addEventListener("submit", (event) => { event.preventDefault(); resume(input.value); });
    box.append(form);
    card.querySelector(".card-body").append(box);
    input.focus();
  }
  scrollDown(card);
}

function clearInterrupt(decision) {
  if (!state.pending) { return; }
  const card = state.cards.get(state.pending.tool_call_id);
  if (card) {
    const box = card.querySelector(".card-decision");
    if (box) { box.replaceChildren(el("p", "decided", decision)); }
    if (card.dataset.state === "waiting") { setCardState(card, decision === "Denied" ? "denied" : "queued"); }
  }
  state.pending = null;
}

// -- plans ---------------------------------------------------------------------------------------------

function planCard(planId, titles, ids) {
  let card = state.plans.get(planId);
  if (!card) {
    finishAnswer();
    card = el("div", "card plan");
    const head = el("div", "card-head");
    head.append(el("span", "tool-name", "Plan"), el("span", "plan-progress"));
    const list = el("ol", "steps");
    card.append(head, list);
    $("messages").appendChild(card);
    state.plans.set(planId, card);
  }
  const list = card.querySelector(".steps");
  titles.forEach((title, i) => {
    const step = el("li", null, title);
    step.dataset.step = (ids || [])[i] || String(i + 1);
    step.dataset.status = "pending";
    list.append(step);
  });
  planProgress(card);
  return card;
}

function planProgress(card) {
  const steps = [...card.querySelectorAll(".steps li")].filter((s) => s.dataset.status !== "superseded");
  const done = steps.filter((s) => s.dataset.status === "done").length;
  card.querySelector(".plan-progress").textContent = done + " of " + steps.length + " steps done";
}

function planStep(planId, key, value) {
  const card = state.plans.get(planId);
  if (!card) { return; }
  const step = [...card.querySelectorAll(".steps li")].reverse().find((s) => s.dataset.step === key);
  if (step) { step.dataset.status = value; step.setAttribute("aria-label", step.textContent + " (" + value + ")"); }
  planProgress(card);
}

// -- the stream ----------------------------------------------------------------------------------------

async function readStream(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) { break; }
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data:")) { continue; }
        const data = line.slice(5).trim();
        if (data === "[DONE]") { return; }
        handleEvent(JSON.parse(data));
      }
    }
  }
}

function onProgress(event) {
  const content = event.content;
  if (event.call_id && event.tool) {
    const card = toolCard(event.call_id, event.tool, event.phase === "start" ? event.arguments : undefined);
    if (event.phase === "start") { setCardState(card, "running"); }
    else if (event.phase === "done") {
      setCardState(card, event.status || "finished", event.duration_ms);
      const body = card.querySelector(".card-body");
      if (event.images && event.images.length) { addImages(body, event.images); }
      if (event.files && event.files.length) { showFileImages(body, event.files, FILE_IMAGE_MAX_BYTES); }
    } else { card.querySelector(".tool-state").textContent = content.data.replace(/^\[[^\]]*\]\s*/, ""); }
  }
}

function handleEvent(event) {
  if (event.session_id && !state.session) { state.session = event.session_id; }
  const content = event.content;
  if (event.type === "custom_stream" && content && content.custom_llm_chunk !== undefined) {
    appendAnswer(content.custom_llm_chunk);
  } else if (event.type === "custom_stream" && content && content.type === "progress") {
    onProgress(event);
  } else if (event.type === "message_stream") {
    const message = JSON.parse(content.raw_message);
    if (message.role === "tool") {
      const card = state.cards.get(message.tool_call_id);
      if (card) { setCardResult(card, message.content); }
    }
    for (const call of message.tool_calls || []) {
      let args = call.function.arguments;
      try { args = JSON.parse(args || "{}"); } catch (e) { /* shown as text */ }
      toolCard(call.id, call.function.name, args);
    }
    if ((message.tool_calls || []).length) { finishAnswer(); }
  } else if (event.type === "graph_update" && content) {
    if (content.__interrupt__) { finishAnswer(); showInterrupt(content.__interrupt__[0]); }
    if (content.planner) { planCard(content.planner.plan_id, content.planner.steps || [], content.planner.step_ids); }
    if (content.replanner) { planCard(content.replanner.plan_id, content.replanner.steps || [], null); }
    if (content.executor) { planStep(content.executor.plan_id, content.executor.step, content.executor.status); }
  } else if (event.type === "billing") {
    if (content.credits_remaining !== null && content.credits_remaining !== undefined) {
      showCredits(content.credits_remaining);
    }
  } else if (event.type === "error") {
    finishAnswer();
    for (const card of state.cards.values()) {
      if (card.dataset.state === "running") { setCardState(card, "failed"); }
    }
    if (!(state.stopped && event.code === "stream_interrupted")) { addError(event.code, content); }
  } else if (event.type === "end" || event.type === "resume_end") {
    finishAnswer();
  }
}

function setBusy(on) {
  state.busy = on;
  for (const id of ["message", "send", "file"]) { $(id).disabled = on; }
  $("stop").hidden = !on;
  $("retry").disabled = on || !state.lastMessage;
  $("messages").setAttribute("aria-busy", String(on));
}

async function stream(path, body) {
  setBusy(true);
  state.stopped = false;
  state.controller = new AbortController();
  try {
    const response = await api(path, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: state.controller.signal });
    await readStream(response);
  } catch (error) {
    if (state.stopped) {
      finishAnswer();
      for (const card of state.cards.values()) {
        if (card.dataset.state === "running") { setCardState(card, "failed"); }
      }
      addMessage("notice", "Stopped. Retry sends the message again.", "stopped");
    } else {
      finishAnswer();
      addError(error.code || (error.status === 402 ? "insufficient_credits" : ""), error.message);
    }
  } finally {
    state.controller = null;
    setBusy(false);
    $("messages").dataset.done = String(Number($("messages").dataset.done || 0) + 1);
    loadSessions().catch(() => {});
    loadCredits();
  }
}

// Stop: closing the connection cancels the run on the server (it records the turn as cancelled).
function stop() {
  if (!state.controller) { return; }
  state.stopped = true;
  state.controller.abort();
}

function attachmentNote(f) {
  return "\n\n[Attached file: " + f.filename + " (file_id " + f.file_id + ", " + f.content_type + ")]";
}

async function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.busy) { return; }
  let message = text;
  const attachment = state.attachment;
  if (attachment) {
    message += attachmentNote(attachment);
    state.attachment = null;
    $("attached").textContent = "";
  }
  $("message").value = "";
  const item = addMessage("user", message);
  if (attachment && attachment.preview) {
    addImages(item, [{ url: attachment.preview, name: attachment.filename }]);
  }
  await turn(message);
}

async function turn(message) {
  state.lastMessage = message;
  const body = { message: message };
  if (state.session) { body.session_id = state.session; }
  await stream("/api/chat", body);
}

async function retry() {
  if (!state.lastMessage || state.busy) { return; }
  addMessage("user", state.lastMessage, "retried");
  await turn(state.lastMessage);
}

async function resume(value) {
  clearInterrupt(typeof value === "object" && value.approved !== undefined
    ? (value.approved ? "Approved" : "Denied") : "Answered: " + value);
  await stream("/api/chat/resume", { session_id: state.session, resume_value: value });
}

async function decide(approve) {
  const pending = state.pending || {};
  const id = pending.authorization_request_id || pending.id;
  try {
    if (id) {
      await api(state.mcp + "/api/v1/authorizations/" + id + (approve ? "/approve" : "/deny"), { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ note: "from the chat page" }) });
    }
    await resume({ approved: approve });
  } catch (error) {
    status("Could not record the decision: " + error.message);
  }
}

async function upload() {
  const file = $("file").files[0];
  if (!file) { return; }
  const form = new FormData();
  form.append("file", file);
  status("Uploading " + file.name + "…");
  try {
    const response = await api(state.mcp + "/api/v1/users/" + encodeURIComponent(state.user) + "/files",
      { method: "POST", body: form });
    state.attachment = (await response.json()).data;
    if (/^image\/(png|jpeg|gif|webp)$/.test(file.type)) { state.attachment.preview = URL.createObjectURL(file); }
    $("attached").textContent = "Attached: " + state.attachment.filename;
    status("");
  } catch (error) {
    status("Upload failed: " + error.message);
  }
  $("file").value = "";
}

// -- sign-in, credits, conversations -------------------------------------------------------------------

async function signIn(event) {
  if (event) { event.preventDefault(); state.token = $("key").value.trim(); }
  if (!state.token) { return; }
  try {
    const config = await (await api("/api/chat/config")).json();
    state.user = config.user_id;
    state.mcp = config.mcp_base_url || "";
    sessionStorage.setItem("isa.token", state.token);
    $("signin-form").hidden = true;
    $("who").hidden = false;
    $("who-name").textContent = "Signed in as " + state.user;
    $("key").value = "";
    const model = config.chat_model || { available: true };
    $("model-warning").hidden = model.available;
    if (!model.available) {
      // Say it once, with the fix, instead of failing every message.
      $("model-warning-text").textContent = (model.reason || "No chat model answers.") + " " + (model.fix || "");
    }
    setBusy(false);
    for (const id of ["message", "send", "file"]) { $(id).disabled = !model.available; }
    $("new-session").disabled = false;
    $("search").disabled = false;
    status("");
    await loadSessions();
    loadCredits();
    $("message").focus();
  } catch (error) {
    sessionStorage.removeItem("isa.token");
    state.token = "";
    status("Sign-in failed: " + error.message);
  }
}

function signOut() {
  sessionStorage.removeItem("isa.token");
  location.reload();
}

function showCredits(value) {
  const n = Number(value);
  $("credits").textContent = "Credits left: " + (Number.isFinite(n) ? n.toLocaleString() : value);
}

async function loadCredits() {
  try {
    const data = (await (await api(state.mcp + "/api/v1/users/me/credits/balance")).json()).data;
    if (data && data.balance !== undefined) { showCredits(data.balance); }
  } catch (error) { /* credits are a hint; the stream's billing event says them too */ }
}

let searchTimer = 0;
async function loadSessions() {
  const query = $("search").value.trim();
  const path = query ? "/api/sessions/search?limit=50&query=" + encodeURIComponent(query) : "/api/sessions?limit=50";
  const data = await (await api(path)).json();
  const list = $("sessions");
  list.replaceChildren();
  if (!data.sessions.length) { list.append(el("li", "empty", query ? "No conversation matches." : "No conversations yet.")); }
  for (const session of data.sessions) {
    const title = session.title || "Untitled";
    const item = el("li", "session");
    const current = session.session_id === state.session;
    const open = el("button", "open", title);
    open.type = "button";
    open.title = title;
    if (current) { open.setAttribute("aria-current", "page"); }
    open.addEventListener("click", () => { openSession(session.session_id); closeNavOnPhone(); });
    const more = el("button", "more", "⋯");
    more.type = "button";
    more.setAttribute("aria-label", "Actions for " + title);
    more.setAttribute("aria-haspopup", "true");
    more.setAttribute("aria-expanded", "false");
    const menu = el("div", "menu");
    menu.hidden = true;
    const rename = el("button", null, "Rename");
    rename.type = "button";
    const remove = el("button", "danger", "Delete");
    remove.type = "button";
    menu.append(rename, remove);
    more.addEventListener("click", () => toggleMenu(more, menu));
    menu.addEventListener("keydown", (event) => { if (event.key === "Escape") { toggleMenu(more, menu, false); more.focus(); } });
    rename.addEventListener("click", () => startRename(item, session));
    remove.addEventListener("click", () => deleteSession(session.session_id, title));
    item.append(open, more, menu);
    list.append(item);
  }
}

function toggleMenu(button, menu, force) {
  const open = force === undefined ? menu.hidden : force;
  for (const other of document.querySelectorAll("#sessions .menu")) { other.hidden = true; }
  for (const other of document.querySelectorAll("#sessions .more")) { other.setAttribute("aria-expanded", "false"); }
  menu.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) { menu.querySelector("button").focus(); }
}

function startRename(item, session) {
  const form = el("form", "rename");
  const input = el("input");
  input.type = "text";
  input.value = session.title || "";
  input.id = "rename-" + session.session_id;
  const label = el("label", "visually-hidden", "New title");
  label.htmlFor = input.id;
  const save = el("button", null, "Save");
  save.type = "submit";
  form.append(label, input, save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await api("/api/sessions/" + session.session_id, { method: "PUT",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ title: input.value }) });
    await loadSessions();
  });
  input.addEventListener("keydown", (event) => { if (event.key === "Escape") { loadSessions(); } });
  item.replaceChildren(form);
  input.focus();
}

async function deleteSession(id, title) {
  if (!confirm("Delete the conversation “" + title + "”?")) { return; }
  await api("/api/sessions/" + id, { method: "DELETE" });
  if (state.session === id) { newSession(); }
  await loadSessions();
}

function resetLog() {
  $("messages").replaceChildren();
  for (const url of state.blobs.splice(0)) { URL.revokeObjectURL(url); }
  state.cards.clear();
  state.plans.clear();
  state.answer = null;
  state.pending = null;
}

function newSession() {
  state.session = null;
  state.lastMessage = null;
  resetLog();
  setBusy(false);
  loadSessions().catch(() => {});
  $("message").focus();
}

async function openSession(id) {
  const data = await (await api("/api/sessions/" + id + "?include_history=true&limit=500")).json();
  state.session = id;
  resetLog();
  for (const m of data.messages) {
    if (m.message_type === "tool_call") {
      for (const call of m.tool_calls || []) {
        let args = call.function.arguments;
        try { args = JSON.parse(args || "{}"); } catch (e) { /* shown as text */ }
        setCardState(toolCard(call.id, call.function.name, args), "finished");
      }
    } else if (m.message_type === "tool_result") {
      // What the card showed live, as far as the history kept it: the result, state, duration, file images.
      const card = state.cards.get(m.tool_call_id);
      if (!card) { continue; }
      const shown = m.metadata || {};
      if (m.content) { setCardResult(card, m.content); }
      if (shown.status) { setCardState(card, shown.status, shown.duration_ms); }
      if ((shown.files || []).length) {
        showFileImages(card.querySelector(".card-body"), shown.files, FILE_IMAGE_MAX_BYTES);
      }
    } else if (m.message_type === "chat") {
      if (m.role === "user") { state.lastMessage = m.content; }
      if (m.status === "incomplete") { addMessage("notice", m.content || "(answer interrupted)", "error"); }
      else {
        const item = addMessage(m.role, m.content || "");
        if (m.role === "user") { previewAttachments(item, m.content || ""); }
      }
    }
  }
  if (data.waiting_for_human) {
    const w = data.waiting_for_human;
    showInterrupt({ value: Object.assign({}, w.data, { type: w.kind, tool: w.tool, tool_args: w.arguments,
      tool_call_id: w.call_id || w.tool_call_id, authorization_request_id: (w.data || {}).id }) });
  }
  setBusy(false);
  await loadSessions();
}

// A reopened user message names its attachment in the note send() added: preview the small images among them.
function previewAttachments(item, text) {
  const ids = [...text.matchAll(ATTACHMENT_NOTE)].filter((m) => IMAGE_TYPE.test(m[3])).map((m) => m[2]);
  if (ids.length) { showFileImages(item, ids, ATTACHMENT_PREVIEW_MAX_BYTES); }
}

function closeNavOnPhone() {
  if (window.matchMedia("(max-width: 700px)").matches) { toggleNav(false); }
}

function toggleNav(force) {
  const nav = $("sidebar");
  const open = force === undefined ? nav.dataset.open !== "true" : force;
  nav.dataset.open = String(open);
  $("nav-toggle").setAttribute("aria-expanded", String(open));
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("new-session").addEventListener("click", () => { newSession(); closeNavOnPhone(); });
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  $("stop").addEventListener("click", stop);
  $("retry").addEventListener("click", retry);
  $("file").addEventListener("change", upload);
  $("nav-toggle").addEventListener("click", () => toggleNav());
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadSessions().catch((e) => status("Search failed: " + e.message)), 250);
  });
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  document.addEventListener("click", (event) => {
    if (!event.target.closest("#sessions .menu, #sessions .more")) {
      for (const menu of document.querySelectorAll("#sessions .menu")) { menu.hidden = true; }
      for (const b of document.querySelectorAll("#sessions .more")) { b.setAttribute("aria-expanded", "false"); }
    }
  });
  if (state.token) { signIn(null); }
});
