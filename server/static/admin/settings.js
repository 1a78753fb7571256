// The settings section of the administration page: how long the audit log is kept.

import { $ } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";

export function createSettings(page) {
  let settings = null;

  function wire() {
    $("settings-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const days = Number($("retention").value);
      if (!Number.isInteger(days)) return page.notice(t("admin.settings.days_format"), { error: true });
      await saveRetention(days);
    });
    $("retention-reset").addEventListener("click", () => saveRetention(null));
  }

  function show(given) {
    settings = given;
    render();
  }

  function render() {
    if (!settings) return;
    $("retention").value = settings.audit_retention_days;
    $("retention-source").textContent = settings.audit_retention_source === "setting"
      ? t("admin.settings.source_here", { days: settings.audit_retention_configured })
      : t("admin.settings.source_default");
    $("retention-reset").disabled = settings.audit_retention_source !== "setting";
  }

  async function load() {
    const result = await page.api("/settings");
    if (!result.ok) return page.problem(result, t("admin.settings.load_failed"));
    show(result.body);
  }

  async function saveRetention(days) {
    const result = await page.api("/settings", { method: "PUT", body: { audit_retention_days: days } });
    if (!result.ok) return page.problem(result, t("admin.settings.not_saved"));
    show(result.body);
    page.notice(t("admin.settings.saved"));
    page.changed();
  }

  return { wire, load, render };
}
