// The web pages' texts in the citizen's or advisor's language: message catalogues are data
// files (/static/i18n/<lang>.json), chosen from the browser's languages or by the person.
// Elements name their text with data-i18n (textContent), data-i18n-label (aria-label),
// data-i18n-placeholder and data-i18n-alt.

export const LANGUAGES = { en: "English", de: "Deutsch" };
const STORAGE_KEY = "videobooth-language";

let catalogue = {};
let fallback = {};

export function chosenLanguage() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored && stored in LANGUAGES) return stored;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = tag.toLowerCase().split("-")[0];
    if (base in LANGUAGES) return base;
  }
  return "en";
}

async function fetchCatalogue(lang) {
  const response = await fetch(`/static/i18n/${lang}.json`, { credentials: "same-origin" });
  return response.ok ? response.json() : {};
}

// t(key, {name: "Ana"}) -> the text with {name} filled in; the key itself if none exists.
export function t(key, values = {}) {
  const text = catalogue[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export function apply(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-alt]")) el.alt = t(el.dataset.i18nAlt);
}

export async function setLanguage(lang) {
  const chosen = lang in LANGUAGES ? lang : "en";
  [fallback, catalogue] = await Promise.all([
    fetchCatalogue("en"), chosen === "en" ? Promise.resolve(null) : fetchCatalogue(chosen),
  ]);
  catalogue = catalogue || fallback;
  document.documentElement.lang = chosen;
  apply();
  return chosen;
}

// A <select> that switches the page's language and remembers the choice.
export function languagePicker(select, onChange) {
  select.replaceChildren();
  for (const [code, name] of Object.entries(LANGUAGES)) {
    const option = document.createElement("option");
    option.value = code;
    option.lang = code;
    option.textContent = name;
    select.append(option);
  }
  select.value = document.documentElement.lang;
  select.addEventListener("change", async () => {
    localStorage.setItem(STORAGE_KEY, select.value);
    await setLanguage(select.value);
    if (onChange) onChange();
  });
}
