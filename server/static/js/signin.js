// Staff sign-in through the organisation's identity provider, where the server offers it: a
// link above the password form (GET /auth/methods says whether, and its label), and the form
// hidden where local passwords are turned off for everyone.
//
//   import { offerSingleSignOn } from "/static/js/signin.js";
//   await offerSingleSignOn(api, { link: $("sso"), form: $("login-form"), next: "/advisor/" });

import { t } from "/static/js/i18n.js";

/** Show the single sign-on link (and hide the password form if passwords are off). */
export async function offerSingleSignOn(api, { link, form, next }) {
  const methods = await api("/auth/methods");
  if (!methods.ok || !methods.body) return;
  const sso = methods.body.sso;
  if (sso) {
    link.href = `${sso.url}?next=${encodeURIComponent(next)}`;
    link.textContent = t("login.sso", { label: sso.label });
    link.hidden = false;
  }
  if (methods.body.passwords === false) form.hidden = true;
}

/** After logging out here: on to the provider's logout for a single sign-on, else reload. */
export function afterLogout(result) {
  const url = result?.body?.logout_url;
  if (typeof url === "string" && /^https?:\/\//.test(url)) location.assign(url);
  else location.reload();
}
