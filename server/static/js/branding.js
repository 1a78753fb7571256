// Applies the organisation's branding (GET /api/v1/branding) to the page that loads this module.
//
//   <script type="module" src="/static/js/branding.js"></script>
//
// - elements with data-brand="name" get the organisation's name as their text;
// - <img data-brand="logo"> gets the logo and loses its `hidden` attribute (it stays hidden
//   when there is no logo); an empty alt is kept (decorative, next to the name), a missing one
//   becomes "<name> logo";
// - elements with data-brand-text="welcome" (or privacy_notice, booth_idle, ended) show that
//   text in the language of the page around them (its closest lang attribute) and are hidden
//   while the organisation wrote none; the element named by their data-brand-replaces (the
//   built-in text) is hidden while they show. The privacy notice is shown in English or German
//   (or any language it exists in) rather than not at all, marked with its own lang. Pages
//   call showBrandTexts again when their language changes;
// - the colours become --brand-primary and --brand-accent on :root. Use them with a fallback,
//   `background: var(--brand-primary, #0b5cad)`. Both carry white text at WCAG AA (the server
//   refuses others).
//
// Scripts that need the data import it: `import { ready } from "/static/js/branding.js";`
// `await ready` gives the branding, or null when it could not be loaded (the page keeps its
// built-in look). Nothing is loaded from outside this server; no inline styles (CSP).

import { api } from "/static/js/api.js";

const COLOUR = /^#[0-9a-fA-F]{6}$/;
const LOGO_PATH = "/api/v1/branding/logo";

/** Fetch the branding; null when the server cannot be reached or answers with an error. */
export async function loadBranding() {
  const result = await api("/branding");
  return result.ok ? result.body : null;
}

// Shown in another language rather than not at all (the booth and server/branding.py agree).
const ALWAYS_SHOWN = new Set(["privacy_notice"]);
const FALLBACK_LANGUAGES = ["en", "de"];

/** The organisation's text for `key` for a visitor in `language` as {text, language} (the
 * language it is written in), or null where the built-in text stays. */
export function brandTextIn(branding, language, key) {
  const all = (branding && branding.texts) || {};
  const order = [language];
  if (ALWAYS_SHOWN.has(key)) order.push(...FALLBACK_LANGUAGES, ...((branding && branding.languages) || Object.keys(all)));
  for (const candidate of order) {
    const text = all[candidate] && all[candidate][key];
    if (typeof text === "string" && text.trim()) return { text, language: candidate };
  }
  return null;
}

/** The organisation's text for `key` for a visitor in `language`, or null. */
export function brandText(branding, language, key) {
  const found = brandTextIn(branding, language, key);
  return found ? found.text : null;
}

/** Show the organisation's texts in the data-brand-text elements under `root` (see above). */
export function showBrandTexts(branding, root = document) {
  for (const element of root.querySelectorAll("[data-brand-text]")) {
    // The page's language, not the element's own (which names the text shown last).
    const found = brandTextIn(branding, languageOf(element.parentElement), element.dataset.brandText);
    element.textContent = found ? found.text : ""; // an administrator's text: never markup
    if (found) {
      element.lang = found.language;
      element.dir = found.language === "ar" ? "rtl" : "ltr";
    }
    element.hidden = !found;
    const builtIn = element.dataset.brandReplaces && document.getElementById(element.dataset.brandReplaces);
    if (builtIn) builtIn.hidden = Boolean(found);
  }
}

function languageOf(element) {
  const scope = element && element.closest("[lang]");
  return (scope ? scope.getAttribute("lang") : "").split("-")[0].toLowerCase();
}

/** Apply `branding` (as returned by the server) to `root` and the document's :root. */
export function applyBranding(branding, root = document) {
  if (!branding) return;
  const name = typeof branding.organisation_name === "string" ? branding.organisation_name : "";
  if (name) {
    for (const element of root.querySelectorAll('[data-brand="name"]')) element.textContent = name;
  }
  const style = document.documentElement.style;
  for (const [property, value] of [
    ["--brand-primary", branding.primary_color],
    ["--brand-accent", branding.accent_color],
  ]) {
    // Set through the CSSOM, which the Content-Security-Policy allows (style attributes not).
    if (typeof value === "string" && COLOUR.test(value)) style.setProperty(property, value);
  }
  const logo = typeof branding.logo_url === "string" && branding.logo_url.startsWith(LOGO_PATH)
    ? branding.logo_url : null;
  for (const image of root.querySelectorAll('img[data-brand="logo"]')) {
    if (!logo) {
      image.hidden = true;
      image.removeAttribute("src");
      continue;
    }
    if (!image.hasAttribute("alt")) image.alt = name ? `${name} logo` : "Logo";
    image.src = logo;
    image.hidden = false;
  }
  showBrandTexts(branding, root);
}

async function start() {
  const branding = await loadBranding();
  if (document.readyState === "loading") {
    await new Promise((resolve) => document.addEventListener("DOMContentLoaded", resolve, { once: true }));
  }
  applyBranding(branding);
  return branding;
}

/** Resolves to the branding once it is applied (null if it could not be loaded). */
export const ready = start();
