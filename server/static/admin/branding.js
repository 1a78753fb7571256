// The branding section of the administration page: the organisation's name, its two colours
// (checked against white text at WCAG AA, as the server checks them), its texts in each
// language, the logo, and a preview of all of it. Saving applies it to this page at once.

import { applyBranding } from "/static/js/branding.js";
import { $, element } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";
import { LANGUAGE_NAMES } from "/static/admin/languages.js";

const MAX_LOGO_BYTES = 256 * 1024;
const MIN_CONTRAST = 4.5;
const COLOUR = /^#[0-9a-fA-F]{6}$/;

// WCAG 2.1 relative luminance and contrast, as the server computes them.
function luminance(colour) {
  const channels = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16) / 255);
  const linear = channels.map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
}

function contrastWithWhite(colour) {
  return 1.05 / (luminance(colour) + 0.05);
}

function textLabels() {
  return {
    welcome: t("admin.branding.text.welcome"),
    privacy_notice: t("admin.branding.text.privacy_notice"),
    booth_idle: t("admin.branding.text.booth_idle"),
    ended: t("admin.branding.text.ended"),
  };
}

function logoType(file) {
  if (file.type === "image/png" || file.type === "image/svg+xml") return file.type;
  const name = file.name.toLowerCase();
  if (name.endsWith(".png")) return "image/png";
  if (name.endsWith(".svg")) return "image/svg+xml";
  return null;
}

export function createBranding(page) {
  let branding = null;
  let texts = {}; // language -> key -> text, as edited

  function wire() {
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
    $("branding-form").addEventListener("submit", save);
    $("logo-file").addEventListener("change", previewLogo);
    $("logo-form").addEventListener("submit", uploadLogo);
    $("logo-remove").addEventListener("click", removeLogo);
  }

  async function load() {
    const result = await page.api("/branding");
    if (!result.ok) return page.problem(result, t("admin.branding.load_failed"));
    branding = result.body;
    texts = structuredClone(branding.texts || {});
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

  /** Draw the texts again in the page's language (once loaded). */
  function render() {
    if (!branding) return;
    fillTextLanguages();
    renderTextFields();
  }

  function fillTextLanguages() {
    const select = $("text-language");
    const chosen = select.value;
    select.replaceChildren();
    for (const language of branding.languages) {
      const written = texts[language] && Object.values(texts[language]).some((text) => text && text.trim());
      const name = `${LANGUAGE_NAMES[language] || language} (${language})`;
      select.append(element("option", {
        text: written ? t("admin.branding.language_written", { language: name }) : name,
        attrs: { value: language },
      }));
    }
    select.value = chosen || branding.languages[0];
  }

  function renderTextFields() {
    const language = $("text-language").value;
    const limits = (branding && branding.text_limits) || {};
    const labels = textLabels();
    const fields = $("text-fields");
    fields.replaceChildren();
    for (const [key, limit] of Object.entries(limits)) {
      const id = `text-${key}`;
      const label = element("label", { text: `${labels[key] || key} `, attrs: { for: id } });
      label.append(element("span", { text: t("admin.branding.limit", { limit }), className: "hint" }));
      const area = element("textarea", { attrs: { id, maxlength: String(limit), rows: limit > 300 ? "5" : "2", lang: language } });
      if (language === "ar") area.dir = "rtl";
      area.value = (texts[language] && texts[language][key]) || "";
      area.addEventListener("input", () => {
        texts[language] = texts[language] || {};
        texts[language][key] = area.value;
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
    const welcome = texts[language] && texts[language].welcome;
    const preview = $("preview-welcome");
    preview.textContent = welcome || t("admin.branding.preview_welcome");
    preview.lang = language || "en";
    preview.dir = language === "ar" ? "rtl" : "ltr";
  }

  // Saved: this page shows it at once, and the audit log says so.
  async function saved() {
    await load();
    applyBranding(branding);
    page.changed();
  }

  async function save(event) {
    event.preventDefault();
    const kept = {};
    for (const [language, values] of Object.entries(texts)) {
      const written = Object.fromEntries(Object.entries(values).filter(([, text]) => text && text.trim()));
      if (Object.keys(written).length) kept[language] = written;
    }
    const body = {
      organisation_name: $("brand-name").value.trim(),
      primary_color: $("brand-primary-text").value.trim(),
      accent_color: $("brand-accent-text").value.trim(),
      texts: kept,
    };
    const result = await page.api("/branding", { method: "PUT", body });
    if (!result.ok) return page.problem(result, t("admin.branding.not_saved"));
    page.notice(t("admin.branding.saved"));
    await saved();
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
    if (!type) return page.notice(t("admin.logo.wrong_type"), { error: true });
    if (file.size > MAX_LOGO_BYTES) return page.notice(t("admin.logo.too_large"), { error: true });
    const result = await page.api("/branding/logo", { method: "PUT", raw: file, contentType: type });
    if (!result.ok) return page.problem(result, t("admin.logo.not_uploaded"));
    const removed = result.body.removed || { elements: [], attributes: [] };
    const dropped = [...removed.elements, ...removed.attributes.map((a) => `${a}=`)];
    page.notice(dropped.length
      ? t("admin.logo.uploaded_cleaned", { removed: dropped.join(", ") })
      : t("admin.logo.uploaded"));
    $("logo-form").reset();
    previewLogo();
    await saved();
  }

  async function removeLogo() {
    if (!confirm(t("admin.logo.remove_confirm"))) return;
    const result = await page.api("/branding/logo", { method: "DELETE" });
    if (!result.ok) return page.problem(result, t("admin.logo.not_removed"));
    page.notice(t("admin.logo.removed"));
    await saved();
  }

  return { wire, load, render };
}
