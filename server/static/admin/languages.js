// The languages an administrator writes topic names and the organisation's texts in, each by
// its own name: whoever reads it, reads it in that language.

export const LANGUAGE_NAMES = { de: "Deutsch", en: "English", tr: "Türkçe", uk: "Українська", ru: "Русский", ar: "العربية" };
export const TOPIC_LANGUAGES = ["de", "en", "tr", "uk", "ru", "ar"];
