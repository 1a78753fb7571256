// The administration page's shell: logging in and out, the account, the language, and the
// sections (one module each): users, topics, branches, the fleet, booth updates, branding, settings and the
// audit log, in English or German (the same message catalogues as the other pages).
// Plain ES module, no dependencies, nothing loaded from outside this server; every text from
// the server goes into the page with textContent, never as HTML.

import { changePassword, fetchAccount } from "/static/js/account.js";
import { createApi } from "/static/js/api.js";
import { ready as brandingReady } from "/static/js/branding.js";
import { $, notice, showOnly } from "/static/js/dom.js";
import { chosenLanguage, languagePicker, setLanguage, t } from "/static/js/i18n.js";
import { afterLogout, offerSingleSignOn } from "/static/js/signin.js";
import { Clock } from "/static/js/time.js";
import { createAudit } from "/static/admin/audit.js";
import { createBranches } from "/static/admin/branches.js";
import { createBranding } from "/static/admin/branding.js";
import { createFleet } from "/static/admin/fleet.js";
import { createIntegrations } from "/static/admin/integrations.js";
import { createSettings } from "/static/admin/settings.js";
import { createStatement } from "/static/admin/statement.js";
import { createTopics } from "/static/admin/topics.js";
import { createUpdates } from "/static/admin/updates.js";
import { createUsers } from "/static/admin/users.js";

const VIEWS = ["login-view", "not-admin-view", "admin-view"];

// What the sections share: the API, the notice line, the clock, who is logged in, the lists
// other sections name things from, and each other.
const page = {
  me: null,
  clock: new Clock(), // times in the organisation's zone, as on every page
  data: { users: [], topics: [], branches: [] },
  sections: {},
  api: createApi({
    onUnauthorized: (path) => {
      if (page.me && path !== "/auth/login") showLogin(t("admin.login_ended"));
    },
  }),
  notice,
  problem(result, what) {
    const detail = (result.body && result.body.detail)
      || (result.status ? t("admin.server_answered", { status: result.status }) : t("admin.unreachable"));
    notice(t("admin.problem", { what, detail }), { error: true });
  },
  /** Something was changed: the audit log shows it. */
  changed() {
    page.sections.audit.load(true);
  },
};

page.sections = {
  users: createUsers(page),
  topics: createTopics(page),
  branches: createBranches(page),
  fleet: createFleet(page),
  updates: createUpdates(page),
  integrations: createIntegrations(page),
  branding: createBranding(page),
  statement: createStatement(page),
  settings: createSettings(page),
  audit: createAudit(page),
};

function showLogin(message) {
  page.me = null;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("change-password").hidden = true;
  showOnly(VIEWS, "login-view");
  if (message) notice(message, { error: true });
}

async function boot() {
  await setLanguage(chosenLanguage());
  document.title = `Videobooth · ${t("admin.title")}`;
  languagePicker($("language"), renderTexts);
  page.clock = new Clock((await brandingReady)?.timezone);
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("not-admin-logout").addEventListener("click", onLogout);
  $("change-password").addEventListener("click", async () => {
    if (await changePassword()) notice(t("account.changed"));
  });
  for (const section of Object.values(page.sections)) section.wire();
  // The login view (now, or when a login ends) offers the identity provider where there is one.
  await offerSingleSignOn(page.api, { link: $("sso"), form: $("login-form"), next: "/admin/" });
  const me = await page.api("/me");
  if (me.ok) enter(me.body);
  else showLogin();
}

// Everything drawn from data again, in the language just chosen.
function renderTexts() {
  document.title = `Videobooth · ${t("admin.title")}`;
  if (!page.me) return;
  renderNotAdmin();
  if (page.me.role !== "admin") return;
  for (const section of Object.values(page.sections)) section.render();
}

async function onLogin(event) {
  event.preventDefault();
  const result = await page.api("/auth/login", {
    method: "POST",
    body: { username: $("username").value, password: $("password").value },
  });
  $("password").value = "";
  if (!result.ok) {
    page.problem(result, t("admin.login_failed"));
    return;
  }
  notice("");
  enter(result.body);
}

async function onLogout() {
  afterLogout(await page.api("/auth/logout", { method: "POST", body: {} }));
}

function renderNotAdmin() {
  const me = page.me;
  $("not-admin-text").textContent = t("admin.not_admin.text", { name: me.name || me.username || "" });
}

async function enter(me) {
  page.me = me;
  $("who").textContent = me.name || me.username || "";
  $("who").hidden = false;
  $("logout").hidden = false;
  $("change-password").hidden = false;
  // A password an administrator generated is changed before anything else (the server
  // refuses everything else until then).
  const account = await fetchAccount();
  if (account?.single_sign_on) $("change-password").hidden = true;
  if (account && account.must_change_password) {
    showOnly(VIEWS, null);
    await changePassword({ required: true });
    notice(t("account.changed"));
  }
  if (me.role !== "admin") {
    renderNotAdmin();
    showOnly(VIEWS, "not-admin-view");
    return;
  }
  showOnly(VIEWS, "admin-view");
  loadEverything();
}

async function loadEverything() {
  const { users, topics, branches, fleet, updates, integrations, branding, statement, settings, audit } = page.sections;
  await topics.load(); // users show topic names
  await Promise.all([users.load(), branches.load(), fleet.load(), updates.load(), integrations.load(), branding.load(), statement.load(), settings.load()]);
  await audit.load(true); // actor names from the users
}

boot();
