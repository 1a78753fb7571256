// The audit log section of the administration page: the newest events first, filtered by
// action, fifty at a time; actors and subjects by name where the page knows them.

import { $, cell, element } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";

export function createAudit(page) {
  let next = null; // where the next page of older events starts

  function wire() {
    $("audit-form").addEventListener("submit", (event) => {
      event.preventDefault();
      load(true);
    });
    $("audit-more").addEventListener("click", () => load(false));
  }

  function actorName(event) {
    if (event.actor_kind !== "user") return event.actor_kind;
    const user = page.data.users.find((u) => u.id === event.actor_id);
    return user ? user.username : (event.actor_id || "user");
  }

  function subjectName(event) {
    const id = event.subject;
    if (!id) return "";
    const { users, topics, branches } = page.data;
    const known = users.find((u) => u.id === id)?.username
      || topics.find((topic) => topic.id === id)?.name
      || branches.find((b) => b.id === id)?.name;
    return known ? `${known} (${id.slice(0, 8)})` : id;
  }

  /** The newest events again (`fresh`), or the next older ones. */
  async function load(fresh) {
    const params = new URLSearchParams({ limit: "50" });
    const action = $("audit-action").value.trim();
    if (action) params.set("action", action);
    if (!fresh && next) params.set("before", next);
    const result = await page.api(`/audit?${params}`);
    if (!result.ok) return page.problem(result, t("admin.audit.load_failed"));
    const body = $("audit");
    if (fresh) body.replaceChildren();
    for (const event of result.body.events) {
      const row = document.createElement("tr");
      cell(row, element("time", { text: page.clock.dateTime(event.at), attrs: { datetime: event.at } }));
      cell(row, actorName(event));
      cell(row, event.action);
      cell(row, subjectName(event));
      cell(row, event.detail || "").className = "detail";
      body.append(row);
    }
    next = result.body.next;
    $("audit-more").hidden = !next;
    $("audit-empty").hidden = body.children.length > 0;
  }

  return { wire, load, render: () => load(true) };
}
