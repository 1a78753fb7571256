// The topics section of the administration page: adding, renaming, (de)activating a topic and
// its name in each language of the booth and the citizens' page.

import { $, button, element } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";
import { LANGUAGE_NAMES, TOPIC_LANGUAGES } from "/static/admin/languages.js";

export function createTopics(page) {
  function wire() {
    $("topic-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = await page.api("/topics", { method: "POST", body: { name: $("new-topic").value.trim() } });
      if (!result.ok) return page.problem(result, t("admin.topics.not_added"));
      $("new-topic").value = "";
      page.notice(t("admin.topics.added", { name: result.body.name }));
      await load();
      page.changed();
    });
  }

  async function load() {
    const result = await page.api("/topics");
    if (!result.ok) return page.problem(result, t("admin.topics.load_failed"));
    page.data.topics = result.body.topics;
    render();
    if (page.data.users.length) page.sections.users.render(); // users show topic names
  }

  function render() {
    const list = $("topics");
    list.replaceChildren();
    const topics = page.data.topics;
    if (!topics.length) list.append(element("li", { text: t("admin.topics.none"), className: "hint" }));
    topics.forEach((topic, index) => {
      const item = document.createElement("li");
      const line = element("div", { className: "topic-line" });
      const id = `topic-name-${index}`;
      const label = element("label", { text: t("admin.topics.name"), className: "visually-hidden", attrs: { for: id } });
      const input = element("input", { attrs: { id, maxlength: "100", autocomplete: "off" } });
      input.value = topic.name;
      const status = element("span", {
        text: topic.active ? t("admin.topics.active") : t("admin.topics.inactive"),
        className: topic.active ? "pill" : "pill off",
      });
      const rename = button(t("admin.topics.rename"), () => change(topic, { name: input.value.trim() }), {
        className: "secondary", label: t("admin.topics.rename_label", { name: topic.name }),
      });
      const toggle = topic.active
        ? button(t("admin.topics.deactivate"), () => change(topic, { active: false }), {
          className: "secondary", label: t("admin.topics.deactivate_label", { name: topic.name }),
        })
        : button(t("admin.topics.activate"), () => change(topic, { active: true }), {
          className: "secondary", label: t("admin.topics.activate_label", { name: topic.name }),
        });
      line.append(label, input, status, rename, toggle);
      item.append(line, namesForm(topic, index));
      list.append(item);
    });
  }

  // The topic's name in each language of the booth and the citizens' page.
  function namesForm(topic, index) {
    const names = topic.names || {};
    const details = element("details", { className: "topic-names" });
    const filled = TOPIC_LANGUAGES.filter((language) => names[language]).length;
    details.append(element("summary", {
      text: t("admin.topics.names", { count: filled, total: TOPIC_LANGUAGES.length }),
      attrs: { "aria-label": t("admin.topics.names_label", { name: topic.name, count: filled, total: TOPIC_LANGUAGES.length }) },
    }));
    const form = element("form", { className: "names-grid" });
    for (const language of TOPIC_LANGUAGES) {
      const id = `topic-${index}-name-${language}`;
      form.append(element("label", { text: LANGUAGE_NAMES[language], attrs: { for: id, lang: language } }));
      const input = element("input", {
        attrs: { id, maxlength: "100", autocomplete: "off", lang: language, dir: language === "ar" ? "rtl" : "ltr", "data-language": language },
      });
      input.value = names[language] || "";
      input.placeholder = topic.name;
      form.append(input);
    }
    form.append(element("button", { text: t("admin.topics.save_names"), attrs: { type: "submit", "aria-label": t("admin.topics.save_names_label", { name: topic.name }) } }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const given = {};
      for (const input of form.querySelectorAll("input[data-language]")) given[input.dataset.language] = input.value.trim();
      change(topic, { names: given });
    });
    details.append(form);
    return details;
  }

  async function change(topic, what) {
    const result = await page.api(`/topics/${encodeURIComponent(topic.id)}`, { method: "PATCH", body: what });
    if (!result.ok) return page.problem(result, t("admin.not_changed", { name: topic.name }));
    page.notice(t("admin.topics.saved", { name: result.body.name }));
    await load();
    page.changed();
  }

  return { wire, load, render };
}
