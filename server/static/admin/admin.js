// The administration page: users, topics, branches, the fleet (fleet.js), branding, settings
// and the audit log.
// Plain ES module, no dependencies, nothing loaded from outside this server; every text from
// the server goes into the page with textContent, never as HTML.

import { applyBranding } from "/static/js/branding.js";
import { loadFleet, wireFleet } from "/static/admin/fleet.js";

const $ = (id) => document.getElementById(id);
const API = "/api/v1";
const MAX_LOGO_BYTES = 256 * 1024;
const MIN_CONTRAST = 4.5;
const COLOUR = /^#[0-9a-fA-F]{6}$/;
const LANGUAGE_NAMES = { de: "Deutsch", en: "English", tr: "Türkçe", uk: "Українська", ru: "Русский", ar: "العربية" };
const TEXT_LABELS = {
  welcome: "Welcome (citizens' page and booth)",
  privacy_notice: "Privacy notice",
  booth_idle: "Booth, while idle",
  ended: "After the call",
};

const state = {
  me: null,
  users: [],
  topics: [],
  branches: [],
  branding: null,
  texts: {}, // language -> key -> text, as edited
  auditNext: null,
  editingUser: null,
  editingBranch: null,
};

// ------------------------------------------------------------------ helpers

function notice(text, { error = false } = {}) {
  const element = $("notice");
  element.textContent = text || "";
  element.classList.toggle("error", Boolean(error));
  element.hidden = !text;
}

function problem(result, what) {
  const detail = result.body && result.body.detail;
  notice(`${what}: ${detail || `the server answered ${result.status}`}`, { error: true });
}

async function api(path, { method = "GET", body, raw, contentType } = {}) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (raw !== undefined) {
    options.body = raw;
    options.headers["Content-Type"] = contentType;
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(API + path, options);
  } catch {
    return { ok: false, status: 0, body: { detail: "the server cannot be reached" } };
  }
  let data = null;
  try { data = await response.json(); } catch { /* empty body */ }
  if (response.status === 401 && state.me && path !== "/auth/login") {
    showLogin("Your login has ended; please log in again.");
  }
  return { ok: response.ok, status: response.status, body: data };
}

function element(tag, { text, className, attrs } = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function button(text, onClick, { className, label } = {}) {
  const node = element("button", { text, className, attrs: { type: "button" } });
  if (label) node.setAttribute("aria-label", label);
  node.addEventListener("click", onClick);
  return node;
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "";
  row.append(td);
  return td;
}

// WCAG 2.1 relative luminance and contrast, as the server computes them.
function luminance(colour) {
  const channels = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16) / 255);
  const linear = channels.map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
}

function contrastWithWhite(colour) {
  return 1.05 / (luminance(colour) + 0.05);
}

// ------------------------------------------------------------------ login

function show(view) {
  for (const id of ["login-view", "not-admin-view", "admin-view"]) $(id).hidden = id !== view;
}

function showLogin(message) {
  state.me = null;
  $("who").hidden = true;
  $("logout").hidden = true;
  show("login-view");
  if (message) notice(message, { error: true });
}

async function boot() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("not-admin-logout").addEventListener("click", onLogout);
  wireUsers();
  wireTopics();
  wireBranches();
  wireFleet({ api, notice, problem, element, button, cell });
  wireBranding();
  wireSettings();
  wireAudit();
  const me = await api("/me");
  if (me.ok) enter(me.body);
  else showLogin();
}

async function onLogin(event) {
  event.preventDefault();
  const result = await api("/auth/login", {
    method: "POST",
    body: { username: $("username").value, password: $("password").value },
  });
  $("password").value = "";
  if (!result.ok) {
    problem(result, "Login failed");
    return;
  }
  notice("");
  enter(result.body);
}

async function onLogout() {
  await api("/auth/logout", { method: "POST", body: {} });
  location.reload();
}

function enter(me) {
  state.me = me;
  $("who").textContent = me.name || me.username || "";
  $("who").hidden = false;
  $("logout").hidden = false;
  if (me.role !== "admin") {
    $("not-admin-name").textContent = me.name || me.username || "this user";
    show("not-admin-view");
    return;
  }
  show("admin-view");
  loadEverything();
}

async function loadEverything() {
  await loadTopics(); // users show topic names
  await Promise.all([loadUsers(), loadBranches(), loadFleet(), loadBranding(), loadSettings()]);
  await loadAudit(true); // actor names from the users
}

// ------------------------------------------------------------------ users

function wireUsers() {
  $("user-form").addEventListener("submit", createUser);
  $("user-edit-form").addEventListener("submit", saveUser);
  $("user-cancel").addEventListener("click", () => $("user-dialog").close());
  $("secret-done").addEventListener("click", hideSecret);
  $("secret-copy").addEventListener("click", () => navigator.clipboard.writeText($("secret-value").textContent));
}

function showSecret(label, password) {
  $("secret-label").textContent = label;
  $("secret-value").textContent = password;
  $("secret").hidden = false;
  $("secret-copy").focus();
}

function hideSecret() {
  $("secret-value").textContent = "";
  $("secret").hidden = true;
}

async function loadUsers() {
  const result = await api("/users");
  if (!result.ok) return problem(result, "Users could not be loaded");
  state.users = result.body.users;
  renderUsers();
}

function topicNames(ids) {
  const names = ids.map((id) => state.topics.find((t) => t.id === id)?.name).filter(Boolean);
  return names.length ? names.join(", ") : "–";
}

function renderUsers() {
  const body = $("users");
  body.replaceChildren();
  for (const user of state.users) {
    const row = document.createElement("tr");
    const self = state.me && user.id === state.me.id;
    cell(row, user.username + (self ? " (you)" : ""));
    cell(row, user.display_name);
    cell(row, user.role === "admin" ? "Administrator" : "Advisor");
    cell(row, element("span", {
      text: user.disabled ? "disabled" : "active",
      className: user.disabled ? "pill off" : "pill",
    }));
    cell(row, topicNames(user.topic_ids));
    const actions = cell(row, "");
    actions.className = "actions";
    actions.append(button("Edit", () => editUser(user), { label: `Edit ${user.username}` }));
    if (!self) {
      actions.append(user.disabled
        ? button("Enable", () => setDisabled(user, false), { className: "secondary", label: `Enable ${user.username}` })
        : button("Disable", () => setDisabled(user, true), { className: "danger", label: `Disable ${user.username}` }));
    }
    actions.append(button("Reset password", () => resetPassword(user), {
      className: "secondary", label: `Reset the password of ${user.username}`,
    }));
    body.append(row);
  }
}

async function createUser(event) {
  event.preventDefault();
  const body = { username: $("new-username").value.trim(), role: $("new-role").value };
  const display = $("new-display-name").value.trim();
  const password = $("new-password").value;
  if (display) body.display_name = display;
  if (password) body.password = password;
  const result = await api("/users", { method: "POST", body });
  if (!result.ok) return problem(result, "The user was not created");
  $("user-form").reset();
  $("new-password").value = "";
  notice(`User ${result.body.user.username} created.`);
  if (result.body.password) showSecret(`Password for ${result.body.user.username}:`, result.body.password);
  await loadUsers();
  loadAudit(true);
}

function editUser(user) {
  state.editingUser = user;
  $("user-dialog-name").textContent = user.username;
  $("edit-display-name").value = user.display_name;
  $("edit-role").value = user.role;
  const self = state.me && user.id === state.me.id;
  // The server refuses it too; here it is not even offered.
  $("edit-role").disabled = Boolean(self);
  const list = $("edit-topics-list");
  list.replaceChildren();
  $("edit-topics-empty").hidden = state.topics.length > 0;
  for (const topic of state.topics) {
    const label = document.createElement("label");
    const box = element("input", { attrs: { type: "checkbox", value: topic.id } });
    box.checked = user.topic_ids.includes(topic.id);
    label.append(box, document.createTextNode(topic.active ? topic.name : `${topic.name} (inactive)`));
    list.append(label);
  }
  $("user-dialog").showModal();
}

async function saveUser(event) {
  event.preventDefault();
  const user = state.editingUser;
  if (!user) return;
  const change = {};
  const display = $("edit-display-name").value.trim();
  if (display !== user.display_name) change.display_name = display;
  if (!$("edit-role").disabled && $("edit-role").value !== user.role) change.role = $("edit-role").value;
  if (Object.keys(change).length) {
    const result = await api(`/users/${encodeURIComponent(user.id)}`, { method: "PATCH", body: change });
    if (!result.ok) return problem(result, `${user.username} was not changed`);
  }
  const topicIds = [...$("edit-topics-list").querySelectorAll("input:checked")].map((box) => box.value);
  const sameTopics = topicIds.length === user.topic_ids.length && topicIds.every((id) => user.topic_ids.includes(id));
  if (!sameTopics) {
    const result = await api(`/advisors/${encodeURIComponent(user.id)}/topics`, { method: "PUT", body: { topic_ids: topicIds } });
    if (!result.ok) return problem(result, `The topics of ${user.username} were not changed`);
  }
  $("user-dialog").close();
  notice(`${user.username} saved.`);
  await loadUsers();
  loadAudit(true);
}

async function setDisabled(user, disabled) {
  if (disabled && !confirm(`Disable ${user.username}? Their open logins end at once.`)) return;
  const verb = disabled ? "disable" : "enable";
  const result = await api(`/users/${encodeURIComponent(user.id)}/${verb}`, { method: "POST", body: {} });
  if (!result.ok) return problem(result, `${user.username} was not ${verb}d`);
  notice(`${user.username} ${verb}d.`);
  await loadUsers();
  loadAudit(true);
}

async function resetPassword(user) {
  if (!confirm(`Give ${user.username} a new password? Their current password and open logins stop working.`)) return;
  const result = await api(`/users/${encodeURIComponent(user.id)}/password`, { method: "POST", body: {} });
  if (!result.ok) return problem(result, "The password was not reset");
  notice(`New password for ${user.username} made.`);
  showSecret(`New password for ${user.username}:`, result.body.password);
  loadAudit(true);
}

// ------------------------------------------------------------------ topics

function wireTopics() {
  $("topic-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await api("/topics", { method: "POST", body: { name: $("new-topic").value.trim() } });
    if (!result.ok) return problem(result, "The topic was not added");
    $("new-topic").value = "";
    notice(`Topic ${result.body.name} added.`);
    await loadTopics();
    loadAudit(true);
  });
}

async function loadTopics() {
  const result = await api("/topics");
  if (!result.ok) return problem(result, "Topics could not be loaded");
  state.topics = result.body.topics;
  renderTopics();
  if (state.users.length) renderUsers();
}

function renderTopics() {
  const list = $("topics");
  list.replaceChildren();
  if (!state.topics.length) list.append(element("li", { text: "No topics yet.", className: "hint" }));
  state.topics.forEach((topic, index) => {
    const item = document.createElement("li");
    const id = `topic-name-${index}`;
    const label = element("label", { text: "Name", className: "visually-hidden", attrs: { for: id } });
    const input = element("input", { attrs: { id, maxlength: "100", autocomplete: "off" } });
    input.value = topic.name;
    const status = element("span", { text: topic.active ? "active" : "inactive", className: topic.active ? "pill" : "pill off" });
    const rename = button("Rename", () => changeTopic(topic, { name: input.value.trim() }), {
      className: "secondary", label: `Rename ${topic.name}`,
    });
    const toggle = button(topic.active ? "Deactivate" : "Activate", () => changeTopic(topic, { active: !topic.active }), {
      className: "secondary", label: `${topic.active ? "Deactivate" : "Activate"} ${topic.name}`,
    });
    item.append(label, input, status, rename, toggle);
    list.append(item);
  });
}

async function changeTopic(topic, change) {
  const result = await api(`/topics/${encodeURIComponent(topic.id)}`, { method: "PATCH", body: change });
  if (!result.ok) return problem(result, `${topic.name} was not changed`);
  notice(`Topic ${result.body.name} saved.`);
  await loadTopics();
  loadAudit(true);
}

// ------------------------------------------------------------------ branches

function wireBranches() {
  $("branch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: $("new-branch-name").value.trim(), region: $("new-branch-region").value.trim() };
    const result = await api("/branches", { method: "POST", body });
    if (!result.ok) return problem(result, "The branch was not added");
    $("branch-form").reset();
    notice(`Branch ${result.body.branch.name} added.`);
    await loadBranches();
    loadAudit(true);
  });
  $("branch-edit-form").addEventListener("submit", saveBranch);
  $("branch-cancel").addEventListener("click", () => $("branch-dialog").close());
}

async function loadBranches() {
  const result = await api("/branches");
  if (!result.ok) return problem(result, "Branches could not be loaded");
  state.branches = result.body.branches;
  const body = $("branches");
  body.replaceChildren();
  for (const branch of state.branches) {
    const row = document.createElement("tr");
    cell(row, branch.name);
    cell(row, branch.region);
    cell(row, String(branch.booths));
    cell(row, String(branch.appointments));
    const actions = cell(row, "");
    actions.className = "actions";
    actions.append(button("Edit", () => editBranch(branch), { label: `Edit ${branch.name}` }));
    const inUse = branch.booths > 0 || branch.appointments > 0;
    const remove = button("Delete", () => deleteBranch(branch), {
      className: "danger",
      label: inUse ? `${branch.name} cannot be deleted: booths or appointments refer to it` : `Delete ${branch.name}`,
    });
    remove.disabled = inUse;
    actions.append(remove);
    body.append(row);
  }
}

function editBranch(branch) {
  state.editingBranch = branch;
  $("edit-branch-name").value = branch.name;
  $("edit-branch-region").value = branch.region;
  $("branch-dialog").showModal();
}

async function saveBranch(event) {
  event.preventDefault();
  const branch = state.editingBranch;
  if (!branch) return;
  const change = {};
  const name = $("edit-branch-name").value.trim();
  const region = $("edit-branch-region").value.trim();
  if (name !== branch.name) change.name = name;
  if (region !== branch.region) change.region = region;
  if (Object.keys(change).length) {
    const result = await api(`/branches/${encodeURIComponent(branch.id)}`, { method: "PATCH", body: change });
    if (!result.ok) return problem(result, `${branch.name} was not changed`);
    notice(`Branch ${result.body.branch.name} saved.`);
  }
  $("branch-dialog").close();
  await loadBranches();
  loadAudit(true);
}

async function deleteBranch(branch) {
  if (!confirm(`Delete the branch ${branch.name}?`)) return;
  const result = await api(`/branches/${encodeURIComponent(branch.id)}`, { method: "DELETE" });
  if (!result.ok) return problem(result, `${branch.name} was not deleted`);
  notice(`Branch ${branch.name} deleted.`);
  await loadBranches();
  loadAudit(true);
}

// ------------------------------------------------------------------ branding

function wireBranding() {
  for (const which of ["primary", "accent"]) {
    const picker = $(`brand-${which}-picker`);
    const text = $(`brand-${which}-text`);
    picker.addEventListener("input", () => { text.value = picker.value; updatePreview(); });
    text.addEventListener("input", () => {
      if (COLOUR.test(text.value)) picker.value = text.value.toLowerCase();
      updatePreview();
    });
  }
  $("brand-name").addEventListener("input", updatePreview);
  $("text-language").addEventListener("change", renderTextFields);
  $("branding-form").addEventListener("submit", saveBranding);
  $("logo-file").addEventListener("change", previewLogo);
  $("logo-form").addEventListener("submit", uploadLogo);
  $("logo-remove").addEventListener("click", removeLogo);
}

async function loadBranding() {
  const result = await api("/branding");
  if (!result.ok) return problem(result, "The branding could not be loaded");
  const branding = result.body;
  state.branding = branding;
  state.texts = structuredClone(branding.texts || {});
  $("brand-name").value = branding.organisation_name;
  for (const which of ["primary", "accent"]) {
    $(`brand-${which}-text`).value = branding[`${which}_color`];
    $(`brand-${which}-picker`).value = branding[`${which}_color`];
  }
  const select = $("text-language");
  if (!select.options.length) {
    for (const language of branding.languages) {
      select.append(element("option", { text: `${LANGUAGE_NAMES[language] || language} (${language})`, attrs: { value: language } }));
    }
  }
  renderTextFields();
  renderLogo(branding.logo_url);
  updatePreview();
}

function renderTextFields() {
  const language = $("text-language").value;
  const limits = (state.branding && state.branding.text_limits) || {};
  const fields = $("text-fields");
  fields.replaceChildren();
  for (const [key, limit] of Object.entries(limits)) {
    const id = `text-${key}`;
    const label = element("label", { text: `${TEXT_LABELS[key] || key} `, attrs: { for: id } });
    label.append(element("span", { text: `(at most ${limit} characters)`, className: "hint" }));
    const area = element("textarea", { attrs: { id, maxlength: String(limit), rows: limit > 300 ? "5" : "2", lang: language } });
    if (language === "ar") area.dir = "rtl";
    area.value = (state.texts[language] && state.texts[language][key]) || "";
    area.addEventListener("input", () => {
      state.texts[language] = state.texts[language] || {};
      state.texts[language][key] = area.value;
      updatePreview();
    });
    fields.append(label, area);
  }
  updatePreview();
}

function showContrast(which) {
  const value = $(`brand-${which}-text`).value;
  const output = $(`brand-${which}-contrast`);
  if (!COLOUR.test(value)) {
    output.textContent = "Give a colour as #RRGGBB.";
    output.classList.add("fail");
    return null;
  }
  const ratio = contrastWithWhite(value);
  const shown = (Math.floor(ratio * 100) / 100).toFixed(2);
  const passes = ratio >= MIN_CONTRAST;
  output.textContent = passes
    ? `Contrast with white text ${shown}:1 – passes AA`
    : `Contrast with white text ${shown}:1 – too low, AA needs ${MIN_CONTRAST}:1; choose a darker colour`;
  output.classList.toggle("fail", !passes);
  return value;
}

function updatePreview() {
  const primary = showContrast("primary");
  const accent = showContrast("accent");
  // CSSOM changes, which the Content-Security-Policy allows (no style attributes in markup).
  if (primary) $("preview-bar").style.setProperty("background", primary);
  if (accent) $("preview-button").style.setProperty("background", accent);
  $("preview-name").textContent = $("brand-name").value || "Videobooth";
  const language = $("text-language").value;
  const welcome = state.texts[language] && state.texts[language].welcome;
  const preview = $("preview-welcome");
  preview.textContent = welcome || "(built-in welcome text)";
  preview.lang = language || "en";
  preview.dir = language === "ar" ? "rtl" : "ltr";
}

async function saveBranding(event) {
  event.preventDefault();
  const texts = {};
  for (const [language, values] of Object.entries(state.texts)) {
    const kept = Object.fromEntries(Object.entries(values).filter(([, text]) => text && text.trim()));
    if (Object.keys(kept).length) texts[language] = kept;
  }
  const body = {
    organisation_name: $("brand-name").value.trim(),
    primary_color: $("brand-primary-text").value.trim(),
    accent_color: $("brand-accent-text").value.trim(),
    texts,
  };
  const result = await api("/branding", { method: "PUT", body });
  if (!result.ok) return problem(result, "The branding was not saved");
  notice("Branding saved.");
  await loadBranding();
  applyBranding(state.branding);
  loadAudit(true);
}

function renderLogo(url) {
  const image = $("logo-current");
  if (url) {
    image.src = url;
    image.hidden = false;
  } else {
    image.removeAttribute("src");
    image.hidden = true;
  }
  $("logo-none").hidden = Boolean(url);
  $("logo-remove").disabled = !url;
  const preview = $("preview-logo");
  preview.hidden = !url;
  if (url) preview.src = url;
  else preview.removeAttribute("src");
}

function logoType(file) {
  if (file.type === "image/png" || file.type === "image/svg+xml") return file.type;
  const name = file.name.toLowerCase();
  if (name.endsWith(".png")) return "image/png";
  if (name.endsWith(".svg")) return "image/svg+xml";
  return null;
}

function previewLogo() {
  const file = $("logo-file").files[0];
  const preview = $("logo-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  if (!file) {
    preview.hidden = true;
    return;
  }
  // Shown as an <img>: an SVG cannot run scripts there, even before the server cleans it.
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
}

async function uploadLogo(event) {
  event.preventDefault();
  const file = $("logo-file").files[0];
  if (!file) return;
  const type = logoType(file);
  if (!type) return notice("Choose a PNG or SVG file.", { error: true });
  if (file.size > MAX_LOGO_BYTES) return notice("The file is too large: at most 256 KiB.", { error: true });
  const result = await api("/branding/logo", { method: "PUT", raw: file, contentType: type });
  if (!result.ok) return problem(result, "The logo was not uploaded");
  const removed = result.body.removed || { elements: [], attributes: [] };
  const dropped = [...removed.elements, ...removed.attributes.map((a) => `${a}=`)];
  notice(dropped.length
    ? `Logo uploaded. Removed from the SVG for safety: ${dropped.join(", ")}.`
    : "Logo uploaded.");
  $("logo-form").reset();
  previewLogo();
  await loadBranding();
  applyBranding(state.branding);
  loadAudit(true);
}

async function removeLogo() {
  if (!confirm("Remove the logo?")) return;
  const result = await api("/branding/logo", { method: "DELETE" });
  if (!result.ok) return problem(result, "The logo was not removed");
  notice("Logo removed.");
  await loadBranding();
  applyBranding(state.branding);
  loadAudit(true);
}

// ------------------------------------------------------------------ settings

function wireSettings() {
  $("settings-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const days = Number($("retention").value);
    if (!Number.isInteger(days)) return notice("Give a whole number of days from 1 to 3650.", { error: true });
    await saveRetention(days);
  });
  $("retention-reset").addEventListener("click", () => saveRetention(null));
}

function renderSettings(settings) {
  $("retention").value = settings.audit_retention_days;
  $("retention-source").textContent = settings.audit_retention_source === "setting"
    ? `Set here. The server's configuration says ${settings.audit_retention_configured} days.`
    : "The server's configured default.";
  $("retention-reset").disabled = settings.audit_retention_source !== "setting";
}

async function loadSettings() {
  const result = await api("/settings");
  if (!result.ok) return problem(result, "The settings could not be loaded");
  renderSettings(result.body);
}

async function saveRetention(days) {
  const result = await api("/settings", { method: "PUT", body: { audit_retention_days: days } });
  if (!result.ok) return problem(result, "The settings were not saved");
  renderSettings(result.body);
  notice("Settings saved. Older audit events are deleted within the hour.");
  loadAudit(true);
}

// ------------------------------------------------------------------ audit log

function wireAudit() {
  $("audit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAudit(true);
  });
  $("audit-more").addEventListener("click", () => loadAudit(false));
}

function actorName(event) {
  if (event.actor_kind !== "user") return event.actor_kind;
  const user = state.users.find((u) => u.id === event.actor_id);
  return user ? user.username : (event.actor_id || "user");
}

function subjectName(event) {
  const id = event.subject;
  if (!id) return "";
  const known = state.users.find((u) => u.id === id)?.username
    || state.topics.find((t) => t.id === id)?.name
    || state.branches.find((b) => b.id === id)?.name;
  return known ? `${known} (${id.slice(0, 8)})` : id;
}

async function loadAudit(fresh) {
  const params = new URLSearchParams({ limit: "50" });
  const action = $("audit-action").value.trim();
  if (action) params.set("action", action);
  if (!fresh && state.auditNext) params.set("before", state.auditNext);
  const result = await api(`/audit?${params}`);
  if (!result.ok) return problem(result, "The audit log could not be loaded");
  const body = $("audit");
  if (fresh) body.replaceChildren();
  for (const event of result.body.events) {
    const row = document.createElement("tr");
    cell(row, element("time", { text: new Date(event.at).toLocaleString(), attrs: { datetime: event.at } }));
    cell(row, actorName(event));
    cell(row, event.action);
    cell(row, subjectName(event));
    cell(row, event.detail || "").className = "detail";
    body.append(row);
  }
  state.auditNext = result.body.next;
  $("audit-more").hidden = !state.auditNext;
  $("audit-empty").hidden = body.children.length > 0;
}

boot();
