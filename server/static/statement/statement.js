// The accessibility statement at /accessibility/: the built-in parts in the page's language,
// the organisation's own (GET /api/v1/accessibility-statement: conformance, dates, the parts
// that are not accessible, the feedback contact and the enforcement procedure) in it too, or
// in the other language when only that one was written. Text goes in as textContent only.

import { api } from "/static/js/api.js";
import { ready as brandingReady } from "/static/js/branding.js";
import { $, notice } from "/static/js/dom.js";
import { chosenLanguage, languagePicker, setLanguage, t } from "/static/js/i18n.js";

let statement = null;
let organisation = "Videobooth";

/** The organisation's text for `key`, in the page's language or else in the other one. */
function organisationText(key) {
  const lang = document.documentElement.lang;
  const texts = statement.texts || {};
  for (const candidate of [lang, ...Object.keys(texts)]) {
    const text = texts[candidate] && texts[candidate][key];
    if (text) return { text, lang: candidate };
  }
  return null;
}

function show(id, key, fallbackKey) {
  const found = organisationText(key);
  const node = $(id);
  node.textContent = found ? found.text : t(fallbackKey);
  if (found && found.lang !== document.documentElement.lang) node.lang = found.lang;
  else node.removeAttribute("lang");
}

function day(iso) {
  return new Date(`${iso}T12:00:00`).toLocaleDateString(document.documentElement.lang, { dateStyle: "long" });
}

function render() {
  if (!statement) return;
  $("scope").textContent = t("statement.scope", { organisation });
  $("status").textContent = t(`statement.status_${statement.conformance}`);
  show("limitations", "limitations", "statement.limitations_none");
  show("feedback", "feedback", "statement.feedback_none");
  show("enforcement", "enforcement", "statement.enforcement_none");
  const dates = [];
  if (statement.prepared_on) dates.push(t("statement.prepared_on", { date: day(statement.prepared_on) }));
  if (statement.reviewed_on) dates.push(t("statement.reviewed_on", { date: day(statement.reviewed_on) }));
  $("dates").textContent = dates.join(" ");
  $("dates").hidden = !dates.length;
  const email = statement.feedback_email;
  $("feedback-email-line").hidden = !email;
  if (email) {
    $("feedback-email").href = `mailto:${email}`;
    $("feedback-email").textContent = email;
  }
  $("statement").setAttribute("aria-busy", "false");
}

async function main() {
  await setLanguage(chosenLanguage());
  languagePicker($("language"), render);
  const [branding, result] = await Promise.all([brandingReady, api("/accessibility-statement")]);
  if (branding && branding.organisation_name) organisation = branding.organisation_name;
  if (!result.ok) {
    notice(t("statement.load_failed"), { error: true });
    return;
  }
  statement = result.body;
  render();
}

main();
