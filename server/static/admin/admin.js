// The administration page: users, topics, branches, the fleet (fleet.js), branding, settings
// and the audit log, in English or German (the same message catalogues as the other pages).
// Plain ES module, no dependencies, nothing loaded from outside this server; every text from
// the server goes into the page with textContent, never as HTML.

import { changePassword, fetchAccount } from "/static/js/account.js";
import { applyBranding, ready as brandingReady } from "/static/js/branding.js";
import { chosenLanguage, languagePicker, setLanguage, t } from "/static/js/i18n.js";
import { Clock } from "/static/js/time.js";
import { loadFleet, renderFleetTexts, setBranchChoices, wireFleet } from "/static/admin/fleet.js";

const $ = (id) => document.getElementById(id);
const API = "/api/v1";
const MAX_LOGO_BYTES = 256 * 1024;
const MIN_CONTRAST = 4.5;
const COLOUR = /^#[0-9a-fA-F]{6}$/;
// Each language by its own name: whoever reads it, reads it in that language.
const LANGUAGE_NAMES = { de: "Deutsch", en: "English", tr: "Türkçe", uk: "Українська", ru: "Русский", ar: "العربية" };
const TOPIC_LANGUAGES = ["de", "en", "tr", "uk", "ru", "ar"];
const TEXT_LABELS = () => ({
  welcome: t("admin.branding.text.welcome"),
  privacy_notice: t("admin.branding.text.privacy_notice"),
  booth_idle: t("admin.branding.text.booth_idle"),
  ended: t("admin.branding.text.ended"),
});

const state = {
  me: null,
  users: [],
  topics: [],
  branches: [],
  branding: null,
  texts: {}, // language -> key -> text, as edited
  settings: null,
  auditNext: null,
  editingUser: null,
  editingBranch: null,
  clock: new Clock(), // times in the organisation's zone, as on every page
};

// ------------------------------------------------------------------ helpers

function notice(text, { error = false } = {}) {
  const element = $("notice");
  element.textContent = text || "";
  element.classList.toggle("error", Boolean(error));
  element.hidden = !text;
}

function problem(result, what) {
  const detail = (result.body && result.body.detail)
    || (result.status ? t("admin.server_answered", { status: result.status }) : t("admin.unreachable"));
  notice(t("admin.problem", { what, detail }), { error: true });
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
    return { ok: false, status: 0, body: null };
  }
  let data = null;
  try { data = await response.json(); } catch { /* empty body */ }
  if (response.status === 401 && state.me && path !== "/auth/login") {
    showLogin(t("admin.login_ended"));
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
  $("change-password").hidden = true;
  show("login-view");
  if (message) notice(message, { error: true });
}

async function boot() {
  await setLanguage(chosenLanguage());
  document.title = `Videobooth · ${t("admin.title")}`;
  languagePicker($("language"), renderTexts);
  state.clock = new Clock((await brandingReady)?.timezone);
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("not-admin-logout").addEventListener("click", onLogout);
  $("change-password").addEventListener("click", async () => {
    if (await changePassword()) notice(t("account.changed"));
  });
  wireUsers();
  wireTopics();
  wireBranches();
  wireFleet({ api, notice, problem, element, button, cell, clock: () => state.clock });
  wireBranding();
  wireSettings();
  wireAudit();
  const me = await api("/me");
  if (me.ok) enter(me.body);
  else showLogin();
}

// Everything drawn from data again, in the language just chosen.
function renderTexts() {
  document.title = `Videobooth · ${t("admin.title")}`;
  if (!state.me) return;
  renderNotAdmin();
  if (state.me.role !== "admin") return;
  renderUsers();
  renderTopics();
  renderBranches();
  renderFleetTexts();
  if (state.branding) {
    fillTextLanguages();
    renderTextFields();
  }
  if (state.settings) renderSettings(state.settings);
  loadAudit(true);
}

async function onLogin(event) {
  event.preventDefault();
  const result = await api("/auth/login", {
    method: "POST",
    body: { username: $("username").value, password: $("password").value },
  });
  $("password").value = "";
  if (!result.ok) {
    problem(result, t("admin.login_failed"));
    return;
  }
  notice("");
  enter(result.body);
}

async function onLogout() {
  await api("/auth/logout", { method: "POST", body: {} });
  location.reload();
}

function renderNotAdmin() {
  const me = state.me;
  $("not-admin-text").textContent = t("admin.not_admin.text", { name: me.name || me.username || "" });
}

async function enter(me) {
  state.me = me;
  $("who").textContent = me.name || me.username || "";
  $("who").hidden = false;
  $("logout").hidden = false;
  $("change-password").hidden = false;
  // A password an administrator generated is changed before anything else (the server
  // refuses everything else until then).
  const account = await fetchAccount();
  if (account && account.must_change_password) {
    show(null);
    await changePassword({ required: true });
    notice(t("account.changed"));
  }
  if (me.role !== "admin") {
    renderNotAdmin();
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
  if (!result.ok) return problem(result, t("admin.users.load_failed"));
  state.users = result.body.users;
  renderUsers();
}

function topicNames(ids) {
  const names = ids.map((id) => state.topics.find((topic) => topic.id === id)?.name).filter(Boolean);
  return names.length ? names.join(", ") : "–";
}

function roleName(role) {
  return role === "admin" ? t("admin.role.admin") : t("admin.role.advisor");
}

function renderUsers() {
  const body = $("users");
  body.replaceChildren();
  for (const user of state.users) {
    const row = document.createElement("tr");
    const self = state.me && user.id === state.me.id;
    cell(row, self ? t("admin.users.you", { name: user.username }) : user.username);
    cell(row, user.display_name);
    cell(row, roleName(user.role));
    const status = cell(row, element("span", {
      text: user.disabled ? t("admin.users.disabled") : t("admin.users.active"),
      className: user.disabled ? "pill off" : "pill",
    }));
    if (user.must_change_password) {
      status.append(" ", element("span", { text: t("admin.users.must_change"), className: "hint" }));
    }
    cell(row, topicNames(user.topic_ids));
    const actions = cell(row, "");
    actions.className = "actions";
    actions.append(button(t("admin.edit"), () => editUser(user), { label: t("admin.edit_label", { name: user.username }) }));
    if (!self) {
      actions.append(user.disabled
        ? button(t("admin.users.enable"), () => setDisabled(user, false), {
          className: "secondary", label: t("admin.users.enable_label", { name: user.username }),
        })
        : button(t("admin.users.disable"), () => setDisabled(user, true), {
          className: "danger", label: t("admin.users.disable_label", { name: user.username }),
        }));
    }
    actions.append(button(t("admin.users.reset"), () => resetPassword(user), {
      className: "secondary", label: t("admin.users.reset_label", { name: user.username }),
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
  if (!result.ok) return problem(result, t("admin.users.not_created"));
  $("user-form").reset();
  $("new-password").value = "";
  notice(t("admin.users.created", { name: result.body.user.username }));
  if (result.body.password) {
    showSecret(t("admin.users.password_for", { name: result.body.user.username }), result.body.password);
  }
  await loadUsers();
  loadAudit(true);
}

function editUser(user) {
  state.editingUser = user;
  $("user-dialog-title").textContent = t("admin.users.edit_title", { name: user.username });
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
    label.append(box, document.createTextNode(topic.active ? topic.name : t("admin.topics.inactive_name", { name: topic.name })));
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
    if (!result.ok) return problem(result, t("admin.not_changed", { name: user.username }));
  }
  const topicIds = [...$("edit-topics-list").querySelectorAll("input:checked")].map((box) => box.value);
  const sameTopics = topicIds.length === user.topic_ids.length && topicIds.every((id) => user.topic_ids.includes(id));
  if (!sameTopics) {
    const result = await api(`/advisors/${encodeURIComponent(user.id)}/topics`, { method: "PUT", body: { topic_ids: topicIds } });
    if (!result.ok) return problem(result, t("admin.users.topics_not_changed", { name: user.username }));
  }
  $("user-dialog").close();
  notice(t("admin.saved", { name: user.username }));
  await loadUsers();
  loadAudit(true);
}

async function setDisabled(user, disabled) {
  if (disabled && !confirm(t("admin.users.disable_confirm", { name: user.username }))) return;
  const verb = disabled ? "disable" : "enable";
  const result = await api(`/users/${encodeURIComponent(user.id)}/${verb}`, { method: "POST", body: {} });
  if (!result.ok) return problem(result, t("admin.not_changed", { name: user.username }));
  notice(disabled ? t("admin.users.disabled_notice", { name: user.username }) : t("admin.users.enabled_notice", { name: user.username }));
  await loadUsers();
  loadAudit(true);
}

async function resetPassword(user) {
  if (!confirm(t("admin.users.reset_confirm", { name: user.username }))) return;
  const result = await api(`/users/${encodeURIComponent(user.id)}/password`, { method: "POST", body: {} });
  if (!result.ok) return problem(result, t("admin.users.not_reset"));
  notice(t("admin.users.reset_notice", { name: user.username }));
  showSecret(t("admin.users.new_password_for", { name: user.username }), result.body.password);
  await loadUsers();
  loadAudit(true);
}

// ------------------------------------------------------------------ topics

function wireTopics() {
  $("topic-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await api("/topics", { method: "POST", body: { name: $("new-topic").value.trim() } });
    if (!result.ok) return problem(result, t("admin.topics.not_added"));
    $("new-topic").value = "";
    notice(t("admin.topics.added", { name: result.body.name }));
    await loadTopics();
    loadAudit(true);
  });
}

async function loadTopics() {
  const result = await api("/topics");
  if (!result.ok) return problem(result, t("admin.topics.load_failed"));
  state.topics = result.body.topics;
  renderTopics();
  if (state.users.length) renderUsers();
}

function renderTopics() {
  const list = $("topics");
  list.replaceChildren();
  if (!state.topics.length) list.append(element("li", { text: t("admin.topics.none"), className: "hint" }));
  state.topics.forEach((topic, index) => {
    const item = document.createElement("li");
    const line = element("div", { className: "topic-line" });
    const id = `topic-name-${index}`;
    const label = element("label", { text: t("admin.topics.name"), className: "visually-hidden", attrs: { for: id } });
    const input = element("input", { attrs: { id, maxlength: "100", autocomplete: "off" } });
    input.value = topic.name;
    const status = element("span", {
      text: topic.active ? t("admin.topics.active") : t("admin.topics.inactive"),
      className: topic.active ? "pill" : "pill off",
    });
    const rename = button(t("admin.topics.rename"), () => changeTopic(topic, { name: input.value.trim() }), {
      className: "secondary", label: t("admin.topics.rename_label", { name: topic.name }),
    });
    const toggle = topic.active
      ? button(t("admin.topics.deactivate"), () => changeTopic(topic, { active: false }), {
        className: "secondary", label: t("admin.topics.deactivate_label", { name: topic.name }),
      })
      : button(t("admin.topics.activate"), () => changeTopic(topic, { active: true }), {
        className: "secondary", label: t("admin.topics.activate_label", { name: topic.name }),
      });
    line.append(label, input, status, rename, toggle);
    item.append(line, topicNamesForm(topic, index));
    list.append(item);
  });
}

// The topic's name in each language of the booth and the citizens' page.
function topicNamesForm(topic, index) {
  const names = topic.names || {};
  const details = element("details", { className: "topic-names" });
  const filled = TOPIC_LANGUAGES.filter((language) => names[language]).length;
  details.append(element("summary", {
    text: t("admin.topics.names", { count: filled, total: TOPIC_LANGUAGES.length }),
    attrs: { "aria-label": t("admin.topics.names_label", { name: topic.name }) },
  }));
  const form = element("form", { className: "names-grid" });
  for (const language of TOPIC_LANGUAGES) {
    const id = `topic-${index}-name-${language}`;
    form.append(element("label", { text: LANGUAGE_NAMES[language], attrs: { for: id, lang: language } }));
    const input = element("input", {
      attrs: { id, maxlength: "100", autocomplete: "off", lang: language, dir: language === "ar" ? "rtl" : "ltr", "data-language": language },
    });
    input.value = names[language] || "";
    input.placeholder = topic.name;
    form.append(input);
  }
  form.append(element("button", { text: t("admin.topics.save_names"), attrs: { type: "submit", "aria-label": t("admin.topics.save_names_label", { name: topic.name }) } }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const given = {};
    for (const input of form.querySelectorAll("input[data-language]")) given[input.dataset.language] = input.value.trim();
    changeTopic(topic, { names: given });
  });
  details.append(form);
  return details;
}

async function changeTopic(topic, change) {
  const result = await api(`/topics/${encodeURIComponent(topic.id)}`, { method: "PATCH", body: change });
  if (!result.ok) return problem(result, t("admin.not_changed", { name: topic.name }));
  notice(t("admin.topics.saved", { name: result.body.name }));
  await loadTopics();
  loadAudit(true);
}

// ------------------------------------------------------------------ branches

function wireBranches() {
  $("branch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: $("new-branch-name").value.trim(), region: $("new-branch-region").value.trim() };
    const result = await api("/branches", { method: "POST", body });
    if (!result.ok) return problem(result, t("admin.branches.not_added"));
    $("branch-form").reset();
    notice(t("admin.branches.added", { name: result.body.branch.name }));
    await loadBranches();
    loadAudit(true);
  });
  $("branch-edit-form").addEventListener("submit", saveBranch);
  $("branch-cancel").addEventListener("click", () => $("branch-dialog").close());
}

async function loadBranches() {
  const result = await api("/branches");
  if (!result.ok) return problem(result, t("admin.branches.load_failed"));
  state.branches = result.body.branches;
  renderBranches();
  // Every branch menu on the page (the fleet's filter, adding and moving a booth) at once.
  setBranchChoices(state.branches);
}

function renderBranches() {
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
    actions.append(button(t("admin.edit"), () => editBranch(branch), { label: t("admin.edit_label", { name: branch.name }) }));
    const inUse = branch.booths > 0 || branch.appointments > 0;
    const remove = button(t("admin.delete"), () => deleteBranch(branch), {
      className: "danger",
      label: inUse ? t("admin.branches.in_use", { name: branch.name }) : t("admin.delete_label", { name: branch.name }),
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
    if (!result.ok) return problem(result, t("admin.not_changed", { name: branch.name }));
    notice(t("admin.branches.saved", { name: result.body.branch.name }));
  }
  $("branch-dialog").close();
  await loadBranches();
  loadFleet(); // the booths' branch names
  loadAudit(true);
}

async function deleteBranch(branch) {
  if (!confirm(t("admin.branches.delete_confirm", { name: branch.name }))) return;
  const result = await api(`/branches/${encodeURIComponent(branch.id)}`, { method: "DELETE" });
  if (!result.ok) return problem(result, t("admin.branches.not_deleted", { name: branch.name }));
  notice(t("admin.branches.deleted", { name: branch.name }));
  await loadBranches();
  loadAudit(true);
}

// The fleet changes how many booths a branch has.
document.addEventListener("fleet-changed", () => {
  if (state.me && state.me.role === "admin") loadBranches();
});

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
  if (!result.ok) return problem(result, t("admin.branding.load_failed"));
  const branding = result.body;
  state.branding = branding;
  state.texts = structuredClone(branding.texts || {});
  $("brand-name").value = branding.organisation_name;
  for (const which of ["primary", "accent"]) {
    $(`brand-${which}-text`).value = branding[`${which}_color`];
    $(`brand-${which}-picker`).value = branding[`${which}_color`];
  }
  fillTextLanguages();
  renderTextFields();
  renderLogo(branding.logo_url);
  updatePreview();
}

function fillTextLanguages() {
  const select = $("text-language");
  const chosen = select.value;
  select.replaceChildren();
  for (const language of state.branding.languages) {
    const written = state.texts[language] && Object.values(state.texts[language]).some((text) => text && text.trim());
    const name = `${LANGUAGE_NAMES[language] || language} (${language})`;
    select.append(element("option", {
      text: written ? t("admin.branding.language_written", { language: name }) : name,
      attrs: { value: language },
    }));
  }
  select.value = chosen || state.branding.languages[0];
}

function renderTextFields() {
  const language = $("text-language").value;
  const limits = (state.branding && state.branding.text_limits) || {};
  const labels = TEXT_LABELS();
  const fields = $("text-fields");
  fields.replaceChildren();
  for (const [key, limit] of Object.entries(limits)) {
    const id = `text-${key}`;
    const label = element("label", { text: `${labels[key] || key} `, attrs: { for: id } });
    label.append(element("span", { text: t("admin.branding.limit", { limit }), className: "hint" }));
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
    output.textContent = t("admin.branding.colour_format");
    output.classList.add("fail");
    return null;
  }
  const ratio = contrastWithWhite(value);
  const shown = (Math.floor(ratio * 100) / 100).toFixed(2);
  const passes = ratio >= MIN_CONTRAST;
  output.textContent = passes
    ? t("admin.branding.contrast_ok", { ratio: shown })
    : t("admin.branding.contrast_low", { ratio: shown, minimum: MIN_CONTRAST });
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
  preview.textContent = welcome || t("admin.branding.preview_welcome");
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
  if (!result.ok) return problem(result, t("admin.branding.not_saved"));
  notice(t("admin.branding.saved"));
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
  if (!type) return notice(t("admin.logo.wrong_type"), { error: true });
  if (file.size > MAX_LOGO_BYTES) return notice(t("admin.logo.too_large"), { error: true });
  const result = await api("/branding/logo", { method: "PUT", raw: file, contentType: type });
  if (!result.ok) return problem(result, t("admin.logo.not_uploaded"));
  const removed = result.body.removed || { elements: [], attributes: [] };
  const dropped = [...removed.elements, ...removed.attributes.map((a) => `${a}=`)];
  notice(dropped.length
    ? t("admin.logo.uploaded_cleaned", { removed: dropped.join(", ") })
    : t("admin.logo.uploaded"));
  $("logo-form").reset();
  previewLogo();
  await loadBranding();
  applyBranding(state.branding);
  loadAudit(true);
}

async function removeLogo() {
  if (!confirm(t("admin.logo.remove_confirm"))) return;
  const result = await api("/branding/logo", { method: "DELETE" });
  if (!result.ok) return problem(result, t("admin.logo.not_removed"));
  notice(t("admin.logo.removed"));
  await loadBranding();
  applyBranding(state.branding);
  loadAudit(true);
}

// ------------------------------------------------------------------ settings

function wireSettings() {
  $("settings-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const days = Number($("retention").value);
    if (!Number.isInteger(days)) return notice(t("admin.settings.days_format"), { error: true });
    await saveRetention(days);
  });
  $("retention-reset").addEventListener("click", () => saveRetention(null));
}

function renderSettings(settings) {
  state.settings = settings;
  $("retention").value = settings.audit_retention_days;
  $("retention-source").textContent = settings.audit_retention_source === "setting"
    ? t("admin.settings.source_here", { days: settings.audit_retention_configured })
    : t("admin.settings.source_default");
  $("retention-reset").disabled = settings.audit_retention_source !== "setting";
}

async function loadSettings() {
  const result = await api("/settings");
  if (!result.ok) return problem(result, t("admin.settings.load_failed"));
  renderSettings(result.body);
}

async function saveRetention(days) {
  const result = await api("/settings", { method: "PUT", body: { audit_retention_days: days } });
  if (!result.ok) return problem(result, t("admin.settings.not_saved"));
  renderSettings(result.body);
  notice(t("admin.settings.saved"));
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
    || state.topics.find((topic) => topic.id === id)?.name
    || state.branches.find((b) => b.id === id)?.name;
  return known ? `${known} (${id.slice(0, 8)})` : id;
}

async function loadAudit(fresh) {
  const params = new URLSearchParams({ limit: "50" });
  const action = $("audit-action").value.trim();
  if (action) params.set("action", action);
  if (!fresh && state.auditNext) params.set("before", state.auditNext);
  const result = await api(`/audit?${params}`);
  if (!result.ok) return problem(result, t("admin.audit.load_failed"));
  const body = $("audit");
  if (fresh) body.replaceChildren();
  for (const event of result.body.events) {
    const row = document.createElement("tr");
    cell(row, element("time", { text: state.clock.dateTime(event.at), attrs: { datetime: event.at } }));
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
