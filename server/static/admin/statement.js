// The accessibility statement section of the administration page: what only the organisation
// can say in its statement at /accessibility/ (how far the service conforms, the dates, the
// parts that are not accessible, the feedback contact, the enforcement procedure), the texts in
// each language of the web pages.

import { $, element } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";
import { LANGUAGE_NAMES } from "/static/admin/languages.js";

const KEYS = ["limitations", "feedback", "enforcement"];
const LIMITS = { limitations: 4000, feedback: 1000, enforcement: 1000 };

export function createStatement(page) {
  let statement = null;

  function wire() {
    $("statement-form").addEventListener("submit", save);
  }

  function textField(language, key) {
    return $(`statement-${language}-${key}`);
  }

  function render() {
    if (!statement) return;
    $("statement-conformance").value = statement.conformance;
    $("statement-prepared").value = statement.prepared_on || "";
    $("statement-reviewed").value = statement.reviewed_on || "";
    $("statement-email").value = statement.feedback_email || "";
    const holder = $("statement-texts");
    const typed = {};
    for (const language of statement.languages) {
      for (const key of KEYS) {
        const field = holder.querySelector(`#statement-${language}-${key}`);
        if (field) typed[`${language}-${key}`] = field.value;
      }
    }
    holder.replaceChildren(element("legend", { text: t("admin.statement.texts") }));
    for (const language of statement.languages) {
      for (const key of KEYS) {
        const id = `statement-${language}-${key}`;
        const label = element("label", { text: `${t(`admin.statement.${key}`)} (${LANGUAGE_NAMES[language]})`, attrs: { for: id } });
        const area = element("textarea", { attrs: { id, rows: key === "limitations" ? "5" : "3", maxlength: String(LIMITS[key]), lang: language } });
        area.value = typed[`${language}-${key}`] ?? (statement.texts[language] || {})[key] ?? "";
        holder.append(label, area);
      }
    }
  }

  async function load() {
    const result = await page.api("/accessibility-statement");
    if (!result.ok) return page.problem(result, t("admin.statement.load_failed"));
    statement = result.body;
    $("statement-texts").replaceChildren();
    render();
  }

  async function save(event) {
    event.preventDefault();
    const texts = {};
    for (const language of statement.languages) {
      texts[language] = {};
      for (const key of KEYS) texts[language][key] = textField(language, key).value;
    }
    const body = {
      conformance: $("statement-conformance").value,
      prepared_on: $("statement-prepared").value || null,
      reviewed_on: $("statement-reviewed").value || null,
      feedback_email: $("statement-email").value.trim() || null,
      texts,
    };
    const result = await page.api("/accessibility-statement", { method: "PUT", body });
    if (!result.ok) return page.problem(result, t("admin.statement.not_saved"));
    statement = result.body;
    $("statement-texts").replaceChildren();
    render();
    page.notice(t("admin.statement.saved"));
    page.changed();
  }

  return { wire, load, render };
}
