// The booking system section of the administration page: service accounts, their API tokens
// (issued with scopes and an expiry, shown once, revoked here) and their webhook endpoints
// (the signing secret shown once). The server audits every change.

import { $, button, element } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";

const SCOPES = ["appointments:read", "appointments:write"];

export function createIntegrations(page) {
  let events = [];

  function wire() {
    $("service-account-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = $("new-service-account").value.trim();
      const result = await page.api("/service-accounts", { method: "POST", body: { name } });
      if (!result.ok) return page.problem(result, t("admin.integrations.not_added"));
      $("service-account-form").reset();
      page.notice(t("admin.integrations.added", { name }));
      await load();
      page.changed();
    });
  }

  async function load() {
    const result = await page.api("/service-accounts");
    if (!result.ok) return page.problem(result, t("admin.integrations.load_failed"));
    page.data.serviceAccounts = result.body.service_accounts;
    events = result.body.events;
    render();
  }

  function render() {
    const list = $("service-accounts");
    list.replaceChildren();
    for (const account of page.data.serviceAccounts || []) list.append(accountCard(account));
  }

  function accountCard(account) {
    const item = element("li", { className: "service-account" });
    item.append(element("h3", { text: account.name }));
    const tokens = element("ul", { className: "rows" });
    for (const token of account.tokens) {
      const state = token.revoked_at ? t("admin.integrations.revoked") : t("admin.integrations.expires", { date: page.clock.dateTime(token.expires_at) });
      const row = element("li", { text: `${token.prefix}… · ${token.scopes.join(", ")} · ${state}` });
      if (!token.revoked_at) {
        row.append(" ", button(t("admin.integrations.revoke"), () => revoke(account, token), {
          className: "danger",
          label: t("admin.integrations.revoke_label", { prefix: token.prefix, name: account.name }),
        }));
      }
      tokens.append(row);
    }
    item.append(element("h4", { text: t("admin.integrations.tokens") }), tokens, tokenForm(account));
    const hooks = element("ul", { className: "rows" });
    for (const hook of account.webhooks) {
      const row = element("li", { text: `${hook.url} · ${hook.events.join(", ")} ` });
      row.append(button(t("admin.delete"), () => removeHook(account, hook), {
        className: "danger",
        label: t("admin.delete_label", { name: hook.url }),
      }));
      hooks.append(row);
    }
    item.append(element("h4", { text: t("admin.integrations.webhooks") }), hooks, hookForm(account));
    return item;
  }

  function tokenForm(account) {
    const form = element("form", { className: "inline" });
    const id = `token-${account.id}`;
    const fieldset = element("fieldset");
    fieldset.append(element("legend", { text: t("admin.integrations.scopes") }));
    for (const scope of SCOPES) {
      const label = element("label");
      const box = element("input", { attrs: { type: "checkbox", value: scope } });
      box.checked = true;
      label.append(box, ` ${scope}`);
      fieldset.append(label);
    }
    const days = element("input", { attrs: { id: `${id}-days`, type: "number", min: "1", max: "730", value: "365", required: "" } });
    form.append(fieldset, element("label", { text: t("admin.integrations.days"), attrs: { for: `${id}-days` } }), days);
    form.append(element("button", { text: t("admin.integrations.issue"), attrs: { type: "submit", "aria-label": t("admin.integrations.issue_label", { name: account.name }) } }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const scopes = [...fieldset.querySelectorAll("input:checked")].map((box) => box.value);
      const result = await page.api(`/service-accounts/${encodeURIComponent(account.id)}/tokens`, {
        method: "POST",
        body: { scopes, days: Number(days.value) },
      });
      if (!result.ok) return page.problem(result, t("admin.integrations.not_issued"));
      await showOnceAfter(load, t("admin.integrations.token_once"), result.body.token);
      page.changed();
    });
    return form;
  }

  function hookForm(account) {
    const form = element("form", { className: "inline" });
    const id = `hook-${account.id}`;
    const url = element("input", { attrs: { id: `${id}-url`, type: "url", required: "", maxlength: "500", placeholder: "https://" } });
    form.append(element("label", { text: t("admin.integrations.url"), attrs: { for: `${id}-url` } }), url);
    const fieldset = element("fieldset");
    fieldset.append(element("legend", { text: t("admin.integrations.events") }));
    for (const name of events) {
      const label = element("label");
      const box = element("input", { attrs: { type: "checkbox", value: name } });
      box.checked = true;
      label.append(box, ` ${name}`);
      fieldset.append(label);
    }
    form.append(fieldset, element("button", { text: t("admin.integrations.add_hook"), attrs: { type: "submit", "aria-label": t("admin.integrations.add_hook_label", { name: account.name }) } }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = [...fieldset.querySelectorAll("input:checked")].map((box) => box.value);
      const result = await page.api(`/service-accounts/${encodeURIComponent(account.id)}/webhooks`, {
        method: "POST",
        body: { url: url.value.trim(), events: chosen },
      });
      if (!result.ok) return page.problem(result, t("admin.integrations.hook_not_added"));
      await showOnceAfter(load, t("admin.integrations.secret_once"), result.body.secret);
      page.changed();
    });
    return form;
  }

  // A token or secret is shown once, here, for the administrator to hand on: after the list is
  // drawn again (drawing replaces the forms, so whatever the administrator typed into one while
  // the list was on its way would be lost), and also if drawing it failed.
  async function showOnceAfter(drawing, what, value) {
    try {
      await drawing();
    } finally {
      showOnce(what, value);
    }
  }

  function showOnce(what, value) {
    $("integration-secret-what").textContent = what;
    $("integration-secret").value = value;
    $("integration-secret-box").hidden = false;
    $("integration-secret").focus();
    $("integration-secret").select();
  }

  async function revoke(account, token) {
    const result = await page.api(`/api-tokens/${encodeURIComponent(token.id)}/revoke`, { method: "POST", body: {} });
    if (!result.ok) return page.problem(result, t("admin.not_changed", { name: account.name }));
    page.notice(t("admin.integrations.revoked_notice", { prefix: token.prefix }));
    await load();
    page.changed();
  }

  async function removeHook(account, hook) {
    const result = await page.api(`/webhooks/${encodeURIComponent(hook.id)}`, { method: "DELETE" });
    if (!result.ok) return page.problem(result, t("admin.not_changed", { name: account.name }));
    await load();
    page.changed();
  }

  return { wire, load, render };
}
