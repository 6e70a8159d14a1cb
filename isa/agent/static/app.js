// isa chat page: sign in, sessions, streamed answers, tool calls, approvals, questions, uploads.
// No build step, no inline handlers (the page's CSP allows scripts from this origin only).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("isa.token") || "", user: null, mcp: "", session: null,
  busy: false, attachment: null, pending: null };

function authHeaders(extra) {
  return Object.assign({ Authorization: "Bearer " + state.token }, extra || {});
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({}, options, { headers: authHeaders((options || {}).headers) }));
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error.message || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function status(text) { $("status").textContent = text; }

function addMessage(role, text, extra) {
  const item = document.createElement("li");
  item.className = role + (extra ? " " + extra : "");
  item.textContent = text;
  $("messages").appendChild(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function setEnabled(on) {
  for (const id of ["message", "send", "file", "new-session"]) { $(id).disabled = !on; }
}

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
    setEnabled(model.available);
    $("new-session").disabled = false;
    status("");
    await loadSessions();
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

async function loadSessions() {
  const data = await (await api("/api/sessions?limit=50")).json();
  const list = $("sessions");
  list.replaceChildren();
  for (const session of data.sessions) {
    const item = document.createElement("li");
    item.setAttribute("aria-current", String(session.session_id === state.session));
    const open = document.createElement("button");
    open.className = "open";
    open.type = "button";
    open.textContent = session.title || "Untitled";
    open.addEventListener("click", () => openSession(session.session_id));
    const rename = document.createElement("button");
    rename.type = "button";
    rename.textContent = "Rename";
    rename.setAttribute("aria-label", "Rename " + (session.title || "conversation"));
    rename.addEventListener("click", () => startRename(item, session));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", "Delete " + (session.title || "conversation"));
    remove.addEventListener("click", () => deleteSession(session.session_id));
    item.append(open, rename, remove);
    list.appendChild(item);
  }
}

function startRename(item, session) {
  const form = document.createElement("form");
  const label = document.createElement("label");
  label.className = "visually-hidden";
  label.textContent = "New title";
  const input = document.createElement("input");
  input.type = "text";
  input.value = session.title || "";
  input.id = "rename-" + session.session_id;
  label.htmlFor = input.id;
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save";
  form.append(label, input, save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await api("/api/sessions/" + session.session_id, { method: "PUT",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ title: input.value }) });
    await loadSessions();
  });
  item.replaceChildren(form);
  input.focus();
}

async function deleteSession(id) {
  await api("/api/sessions/" + id, { method: "DELETE" });
  if (state.session === id) { newSession(); }
  await loadSessions();
}

function newSession() {
  state.session = null;
  $("messages").replaceChildren();
  hideInterrupt();
  $("message").focus();
}

async function openSession(id) {
  const data = await (await api("/api/sessions/" + id + "?include_history=true&limit=500")).json();
  state.session = id;
  $("messages").replaceChildren();
  for (const m of data.messages) {
    if (m.message_type === "tool_call") {
      for (const call of m.tool_calls || []) { addMessage("tool", "Tool call: " + call.function.name); }
    } else if (m.message_type === "chat") {
      addMessage(m.role, m.content || (m.status === "incomplete" ? "(answer interrupted)" : ""),
        m.status === "incomplete" ? "error" : "");
    }
  }
  hideInterrupt();
  if (data.waiting_for_human) { showInterrupt({ value: Object.assign({}, data.waiting_for_human.data,
    { type: data.waiting_for_human.kind, tool: data.waiting_for_human.tool,
      tool_args: data.waiting_for_human.arguments,
      authorization_request_id: (data.waiting_for_human.data || {}).id }) }); }
  await loadSessions();
}

function hideInterrupt() {
  state.pending = null;
  $("interrupt").hidden = true;
  $("authorize").hidden = true;
  $("answer-form").hidden = true;
}

function showInterrupt(interrupt) {
  const value = interrupt.value || {};
  state.pending = value;
  $("interrupt").hidden = false;
  if (value.type === "authorization") {
    $("interrupt-text").textContent = "Approve the tool " + (value.tool_name || value.tool) + "?";
    $("interrupt-args").textContent = JSON.stringify(value.tool_args || value.arguments || {}, null, 2);
    $("authorize").hidden = false;
    $("approve").focus();
  } else {
    $("interrupt-text").textContent = value.question || "The assistant asks a question.";
    $("interrupt-args").textContent = (value.options || []).join(" / ");
    $("answer-form").hidden = false;
    $("answer").focus();
  }
}

async function readStream(response, bubble) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let answer = bubble;
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
        answer = handleEvent(JSON.parse(data), answer);
      }
    }
  }
}

function handleEvent(event, answer) {
  if (event.session_id && !state.session) { state.session = event.session_id; }
  const content = event.content;
  if (event.type === "custom_stream" && content && content.custom_llm_chunk !== undefined) {
    if (!answer) { answer = addMessage("assistant", ""); }
    answer.textContent += content.custom_llm_chunk;
  } else if (event.type === "custom_stream" && content && content.type === "progress") {
    addMessage("tool", content.data);
  } else if (event.type === "message_stream") {
    const message = JSON.parse(content.raw_message);
    for (const call of message.tool_calls || []) {
      addMessage("tool", "Tool call: " + call.function.name + " " + call.function.arguments);
      answer = null;
    }
  } else if (event.type === "graph_update" && content && content.__interrupt__) {
    showInterrupt(content.__interrupt__[0]);
  } else if (event.type === "billing") {
    status("Credits used: " + content.total_credits + (content.credits_remaining !== null ? ", left: " + content.credits_remaining : ""));
  } else if (event.type === "error") {
    addMessage("assistant", "Error (" + event.code + "): " + content, "error");
  } else if (event.type === "end" || event.type === "resume_end") {
    $("messages").dataset.done = String(Number($("messages").dataset.done || 0) + 1);
  }
  return answer;
}

async function stream(path, body) {
  state.busy = true;
  setEnabled(false);
  try {
    const response = await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    await readStream(response, null);
  } catch (error) {
    addMessage("assistant", "Error: " + error.message, "error");
  } finally {
    state.busy = false;
    setEnabled(true);
    await loadSessions();
  }
}

async function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.busy) { return; }
  let message = text;
  if (state.attachment) {
    const f = state.attachment;
    message += "\n\n[Attached file: " + f.filename + " (file_id " + f.file_id + ", " + f.content_type + ")]";
    state.attachment = null;
    $("attached").textContent = "";
  }
  $("message").value = "";
  hideInterrupt();
  addMessage("user", message);
  const body = { message: message };
  if (state.session) { body.session_id = state.session; }
  await stream("/api/chat", body);
}

async function resume(value) {
  const session = state.session;
  hideInterrupt();
  await stream("/api/chat/resume", { session_id: session, resume_value: value });
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
    const response = await api(state.mcp + "/api/v1/users/" + encodeURIComponent(state.user) + "/files", { method: "POST", body: form });
    state.attachment = (await response.json()).data;
    $("attached").textContent = "Attached: " + state.attachment.filename;
    status("");
  } catch (error) {
    status("Upload failed: " + error.message);
  }
  $("file").value = "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("new-session").addEventListener("click", newSession);
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  $("approve").addEventListener("click", () => decide(true));
  $("deny").addEventListener("click", () => decide(false));
  $("answer-form").addEventListener("submit", (event) => { event.preventDefault(); const a = $("answer").value; $("answer").value = ""; resume(a); });
  $("file").addEventListener("change", upload);
  if (state.token) { signIn(null); }
});
