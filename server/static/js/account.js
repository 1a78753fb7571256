// Changing one's own password, on the advisor and the administration pages: a dialog asking
// for the current password and the new one twice. A user whose password an administrator
// generated gets the same dialog at once and cannot close it (the server refuses everything
// else until then); logging out stays possible.
//
//   import { changePassword, fetchAccount } from "/static/js/account.js";
//   const account = await fetchAccount();            // null when not logged in
//   if (account.must_change_password) await changePassword({ required: true });
//
// Plain ES module; texts from the page's message catalogue; nothing loaded from elsewhere.

import { api } from "/static/js/api.js";
import { t } from "/static/js/i18n.js";

const MIN_LENGTH = 12;

/** The logged-in user's account ({id, username, name, role, must_change_password}), or null. */
export async function fetchAccount() {
  const result = await api("/account");
  return result.ok ? result.body : null;
}

function element(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function field(id, label, autocomplete, hint) {
  const caption = element("label", { for: id }, label);
  if (hint) caption.append(" ", element("span", { class: "hint" }, hint));
  const input = element("input", {
    id, type: "password", autocomplete, required: "", maxlength: "1024",
    ...(autocomplete === "new-password" ? { minlength: String(MIN_LENGTH) } : {}),
  });
  return [caption, input];
}

// Built each time, so that it speaks the page's current language.
function build(required) {
  const dialog = element("dialog", { id: "password-dialog", "aria-labelledby": "password-title", class: "password-dialog" });
  const form = element("form", { id: "password-form", class: "stack", method: "dialog" });
  form.append(element("h2", { id: "password-title" }, t("account.title")));
  if (required) form.append(element("p", { id: "password-reason" }, t("account.must_change")));
  form.append(
    ...field("password-current", t("account.current"), "current-password"),
    ...field("password-new", t("account.new"), "new-password", t("account.rules", { min: MIN_LENGTH })),
    ...field("password-repeat", t("account.repeat"), "new-password"),
  );
  const error = element("p", { id: "password-error", class: "notice error", role: "alert" });
  error.hidden = true;
  const row = element("div", { class: "row" });
  row.append(element("button", { type: "submit", id: "password-submit" }, t("account.submit")));
  if (!required) row.append(element("button", { type: "button", id: "password-cancel", class: "secondary" }, t("account.cancel")));
  form.append(error, row);
  dialog.append(form);
  return dialog;
}

/** Open the dialog; resolves true once the password is changed, false when cancelled. With
 * `required` it cannot be cancelled. */
export function changePassword({ required = false } = {}) {
  document.getElementById("password-dialog")?.remove();
  const dialog = build(required);
  document.body.append(dialog);
  const $ = (id) => document.getElementById(id);
  return new Promise((resolve) => {
    const finish = (changed) => {
      dialog.close();
      dialog.remove();
      resolve(changed);
    };
    dialog.addEventListener("cancel", (event) => {
      if (required) event.preventDefault(); // Escape does not get round it
      else finish(false);
    });
    $("password-cancel")?.addEventListener("click", () => finish(false));
    $("password-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = $("password-error");
      const shout = (text) => {
        error.textContent = text;
        error.hidden = false;
      };
      if ($("password-new").value !== $("password-repeat").value) return shout(t("account.mismatch"));
      $("password-submit").disabled = true;
      const result = await api("/account/password", {
        method: "POST",
        body: { current_password: $("password-current").value, new_password: $("password-new").value },
      });
      $("password-submit").disabled = false;
      if (!result.ok) {
        return shout(t("account.failed", { detail: result.body?.detail || t("account.unreachable") }));
      }
      finish(true);
    });
    dialog.showModal();
    $("password-current").focus();
  });
}
