// coord admin page: a read-only view of the tree and the ensemble over /api/*.
"use strict";

let credentials = null; // "Basic ..." when the user gave digest credentials
let selected = "/";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path) {
  const headers = credentials ? { Authorization: credentials } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  const body = await response.json();
  return { status: response.status, body };
}

function childPath(parent, name) {
  return parent === "/" ? "/" + name : parent + "/" + name;
}

function hex(value) {
  // Session ids come as "0x..." strings: 64 bits do not fit a JavaScript number exactly.
  if (typeof value === "string" && value.startsWith("0x")) return value;
  return "0x" + Number(value).toString(16);
}

function time(ms) {
  return ms ? new Date(Number(ms)).toISOString() : "0";
}

// --- tree ---------------------------------------------------------------------------

function treeItem(path, name, count) {
  // count: the node's number of children (null: unknown, the node may not be read)
  const item = el("li", { "data-path": path });
  const toggle = el("span", { class: "toggle", onclick: () => expand(item, path) }, count === 0 ? " " : "▸");
  const label = el("span", { class: "name", onclick: () => select(path) }, name);
  item.append(toggle, label);
  return item;
}

async function expand(item, path, open) {
  const existing = item.querySelector(":scope > ul");
  const toggle = item.querySelector(":scope > .toggle");
  if (existing) {
    if (open) return;
    existing.remove();
    toggle.textContent = "▸";
    return;
  }
  const { status, body } = await api("/api/tree?path=" + encodeURIComponent(path));
  const list = el("ul");
  if (status !== 200) {
    list.append(el("li", { class: "unauthorized" }, status === 403 ? "not authorized" : body.message));
  } else {
    for (const name of body.children) {
      list.append(treeItem(childPath(path, name), name, body.child_counts[name]));
    }
    if (body.truncated) list.append(el("li", { class: "more" }, `… ${body.total_children - body.children.length} more`));
    if (!body.children.length) toggle.textContent = " ";
  }
  item.append(list);
  if (toggle.textContent !== " ") toggle.textContent = "▾";
}

async function revealInTree(path) {
  let item = document.querySelector('#tree li[data-path="/"]');
  await expand(item, "/", true);
  if (path === "/") return;
  let current = "";
  for (const part of path.slice(1).split("/")) {
    current += "/" + part;
    const next = [...document.querySelectorAll("#tree li")].find((li) => li.dataset.path === current);
    if (!next) return;
    item = next;
    if (current !== path) await expand(item, current, true);
  }
}

function markSelected(path) {
  for (const li of document.querySelectorAll("#tree li.selected")) li.classList.remove("selected");
  const item = [...document.querySelectorAll("#tree li")].find((li) => li.dataset.path === path);
  if (item) item.classList.add("selected");
}

// --- node ---------------------------------------------------------------------------

const STAT_FORMAT = {
  czxid: hex, mzxid: hex, pzxid: hex, ctime: time, mtime: time, ephemeralOwner: hex,
};

async function select(path) {
  selected = path;
  if (location.hash !== "#" + path) history.replaceState(null, "", "#" + path);
  markSelected(path);
  document.getElementById("node-path").textContent = path;
  const { status, body } = await api("/api/node?path=" + encodeURIComponent(path));
  const error = document.getElementById("node-error");
  const data = document.getElementById("node-data");
  const note = document.getElementById("data-note");
  const stat = document.getElementById("node-stat");
  const acl = document.getElementById("node-acl");
  stat.replaceChildren();
  acl.replaceChildren();
  note.textContent = "";
  error.hidden = true;
  if (status !== 200) {
    error.hidden = false;
    error.textContent = body.message || body.error;
    data.textContent = "";
    return;
  }
  if (body.authorized) {
    data.textContent = body.data.text;
    const notes = [body.data.encoding, `${body.data.size} bytes`];
    if (body.data.truncated) notes.push("truncated: only the start is shown");
    note.textContent = "(" + notes.join(", ") + ")";
    data.classList.remove("unauthorized");
  } else {
    data.textContent = "not authorized";
    data.classList.add("unauthorized");
  }
  if (body.stat) {
    for (const [key, value] of Object.entries(body.stat)) {
      const shown = STAT_FORMAT[key] ? STAT_FORMAT[key](value) : value;
      stat.append(el("tr", {}, el("th", {}, key), el("td", {}, shown)));
    }
  } else {
    stat.append(el("tr", {}, el("td", { class: "unauthorized" }, "not authorized")));
  }
  if (body.acl) {
    acl.append(el("tr", {}, el("th", {}, "scheme"), el("th", {}, "id"), el("th", {}, "perms")));
    for (const entry of body.acl) {
      acl.append(el("tr", {}, el("td", {}, entry.scheme), el("td", {}, entry.id), el("td", {}, entry.perms)));
    }
  } else {
    acl.append(el("tr", {}, el("td", { class: "unauthorized" }, "not authorized")));
  }
}

// --- ensemble -----------------------------------------------------------------------

async function loadEnsemble() {
  const { body } = await api("/api/ensemble");
  const summary = `server ${body.server_id} · ${body.mode} · leader ${body.leader || "none"} · term ${body.term} · ` +
    `zxid ${body.last_zxid} · ${body.ready ? "ready" : "not ready: " + body.ready_reason}`;
  document.getElementById("server-summary").textContent = summary;
  document.getElementById("ensemble-summary").textContent =
    `commit index ${body.commit_index}, applied index ${body.applied_index}` +
    (body.mode === "leader" || body.mode === "standalone" ? "" : " (lag is known on the leader)");
  const table = document.getElementById("ensemble");
  table.replaceChildren(el("tr", {},
    ...["id", "role", "state", "client", "peer", "match index", "lag"].map((h) => el("th", {}, h))));
  for (const m of body.members) {
    const row = el("tr", { class: m.state === "leader" || m.state === "standalone" ? "leader" : "" },
      el("td", {}, m.id + (m.self ? " (this)" : "")), el("td", {}, m.role), el("td", {}, m.state),
      el("td", {}, m.client), el("td", {}, m.peer || "–"),
      el("td", {}, m.match_index ?? "–"), el("td", {}, m.lag ?? "–"));
    table.append(row);
  }
}

// --- start --------------------------------------------------------------------------

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = document.getElementById("login-user").value;
  const password = document.getElementById("login-password").value;
  credentials = "Basic " + btoa(unescape(encodeURIComponent(user + ":" + password)));
  document.getElementById("logout").hidden = false;
  refresh();
});
document.getElementById("logout").addEventListener("click", () => {
  credentials = null;
  document.getElementById("logout").hidden = true;
  refresh();
});
window.addEventListener("hashchange", () => {
  const path = decodeURIComponent(location.hash.slice(1)) || "/";
  if (path !== selected) revealInTree(path).then(() => select(path));
});

async function refresh() {
  const root = document.getElementById("tree");
  root.replaceChildren(treeItem("/", "/"));
  const path = decodeURIComponent(location.hash.slice(1)) || "/";
  await revealInTree(path);
  await select(path);
  await loadEnsemble();
}

refresh();
setInterval(loadEnsemble, 5000);
