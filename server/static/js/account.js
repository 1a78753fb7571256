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
import { $, element } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";

const MIN_LENGTH = 12;

/** The logged-in user's account ({id, username, name, role, must_change_password,
 * single_sign_on}), or null. */
export async function fetchAccount() {
  const result = await api("/account");
  return result.ok ? result.body : null;
}

function field(id, label, autocomplete, hint) {
  const caption = element("label", { text: label, attrs: { for: id } });
  if (hint) caption.append(" ", element("span", { text: hint, className: "hint" }));
  const input = element("input", {
    attrs: {
      id, type: "password", autocomplete, required: "", maxlength: "1024",
      ...(autocomplete === "new-password" ? { minlength: String(MIN_LENGTH) } : {}),
    },
  });
  return [caption, input];
}

// Built each time, so that it speaks the page's current language.
function build(required) {
  const dialog = element("dialog", {
    className: "password-dialog", attrs: { id: "password-dialog", "aria-labelledby": "password-title" },
  });
  const form = element("form", { className: "stack", attrs: { id: "password-form", method: "dialog" } });
  form.append(element("h2", { text: t("account.title"), attrs: { id: "password-title" } }));
  if (required) form.append(element("p", { text: t("account.must_change"), attrs: { id: "password-reason" } }));
  form.append(
    ...field("password-current", t("account.current"), "current-password"),
    ...field("password-new", t("account.new"), "new-password", t("account.rules", { min: MIN_LENGTH })),
    ...field("password-repeat", t("account.repeat"), "new-password"),
  );
  const error = element("p", { className: "notice error", attrs: { id: "password-error", role: "alert" } });
  error.hidden = true;
  const row = element("div", { className: "row" });
  row.append(element("button", { text: t("account.submit"), attrs: { type: "submit", id: "password-submit" } }));
  if (!required) {
    row.append(element("button", {
      text: t("account.cancel"), className: "secondary", attrs: { type: "button", id: "password-cancel" },
    }));
  }
  form.append(error, row);
  dialog.append(form);
  return dialog;
}

/** Open the dialog; resolves true once the password is changed, false when cancelled. With
 * `required` it cannot be cancelled. */
export function changePassword({ required = false } = {}) {
  $("password-dialog")?.remove();
  const dialog = build(required);
  document.body.append(dialog);
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
