// The users section of the administration page: the list, adding a user (with a generated
// password shown once), editing one (name, role, topics), disabling, resetting a password.

import { $, button, cell, element } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";

export function createUsers(page) {
  let editing = null;

  function wire() {
    $("user-form").addEventListener("submit", create);
    $("user-edit-form").addEventListener("submit", save);
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

  async function load() {
    const result = await page.api("/users");
    if (!result.ok) return page.problem(result, t("admin.users.load_failed"));
    page.data.users = result.body.users;
    render();
  }

  function topicNames(ids) {
    const names = ids.map((id) => page.data.topics.find((topic) => topic.id === id)?.name).filter(Boolean);
    return names.length ? names.join(", ") : "–";
  }

  function roleName(role) {
    return role === "admin" ? t("admin.role.admin") : t("admin.role.advisor");
  }

  function isSelf(user) {
    return Boolean(page.me && user.id === page.me.id);
  }

  function render() {
    const body = $("users");
    body.replaceChildren();
    for (const user of page.data.users) {
      const row = document.createElement("tr");
      const self = isSelf(user);
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
      actions.append(button(t("admin.edit"), () => edit(user), { label: t("admin.edit_label", { name: user.username }) }));
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

  async function create(event) {
    event.preventDefault();
    const body = { username: $("new-username").value.trim(), role: $("new-role").value };
    const display = $("new-display-name").value.trim();
    const password = $("new-password").value;
    if (display) body.display_name = display;
    if (password) body.password = password;
    const result = await page.api("/users", { method: "POST", body });
    if (!result.ok) return page.problem(result, t("admin.users.not_created"));
    $("user-form").reset();
    $("new-password").value = "";
    page.notice(t("admin.users.created", { name: result.body.user.username }));
    if (result.body.password) {
      showSecret(t("admin.users.password_for", { name: result.body.user.username }), result.body.password);
    }
    await load();
    page.changed();
  }

  function edit(user) {
    editing = user;
    $("user-dialog-title").textContent = t("admin.users.edit_title", { name: user.username });
    $("edit-display-name").value = user.display_name;
    $("edit-role").value = user.role;
    // The server refuses it too; here it is not even offered.
    $("edit-role").disabled = isSelf(user);
    const list = $("edit-topics-list");
    list.replaceChildren();
    const topics = page.data.topics;
    $("edit-topics-empty").hidden = topics.length > 0;
    for (const topic of topics) {
      const label = document.createElement("label");
      const box = element("input", { attrs: { type: "checkbox", value: topic.id } });
      box.checked = user.topic_ids.includes(topic.id);
      label.append(box, document.createTextNode(topic.active ? topic.name : t("admin.topics.inactive_name", { name: topic.name })));
      list.append(label);
    }
    $("user-dialog").showModal();
  }

  async function save(event) {
    event.preventDefault();
    const user = editing;
    if (!user) return;
    const change = {};
    const display = $("edit-display-name").value.trim();
    if (display !== user.display_name) change.display_name = display;
    if (!$("edit-role").disabled && $("edit-role").value !== user.role) change.role = $("edit-role").value;
    if (Object.keys(change).length) {
      const result = await page.api(`/users/${encodeURIComponent(user.id)}`, { method: "PATCH", body: change });
      if (!result.ok) return page.problem(result, t("admin.not_changed", { name: user.username }));
    }
    const topicIds = [...$("edit-topics-list").querySelectorAll("input:checked")].map((box) => box.value);
    const sameTopics = topicIds.length === user.topic_ids.length && topicIds.every((id) => user.topic_ids.includes(id));
    if (!sameTopics) {
      const result = await page.api(`/advisors/${encodeURIComponent(user.id)}/topics`, { method: "PUT", body: { topic_ids: topicIds } });
      if (!result.ok) return page.problem(result, t("admin.users.topics_not_changed", { name: user.username }));
    }
    $("user-dialog").close();
    page.notice(t("admin.saved", { name: user.username }));
    await load();
    page.changed();
  }

  async function setDisabled(user, disabled) {
    if (disabled && !confirm(t("admin.users.disable_confirm", { name: user.username }))) return;
    const verb = disabled ? "disable" : "enable";
    const result = await page.api(`/users/${encodeURIComponent(user.id)}/${verb}`, { method: "POST", body: {} });
    if (!result.ok) return page.problem(result, t("admin.not_changed", { name: user.username }));
    page.notice(disabled ? t("admin.users.disabled_notice", { name: user.username }) : t("admin.users.enabled_notice", { name: user.username }));
    await load();
    page.changed();
  }

  async function resetPassword(user) {
    if (!confirm(t("admin.users.reset_confirm", { name: user.username }))) return;
    const result = await page.api(`/users/${encodeURIComponent(user.id)}/password`, { method: "POST", body: {} });
    if (!result.ok) return page.problem(result, t("admin.users.not_reset"));
    page.notice(t("admin.users.reset_notice", { name: user.username }));
    showSecret(t("admin.users.new_password_for", { name: user.username }), result.body.password);
    await load();
    page.changed();
  }

  return { wire, load, render };
}
