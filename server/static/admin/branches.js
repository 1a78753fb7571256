// The branches section of the administration page: adding, editing and deleting a branch
// (not while booths or appointments belong to it). Every branch menu of the fleet follows.

import { $, button, cell } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";

export function createBranches(page) {
  let editing = null;

  function wire() {
    $("branch-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { name: $("new-branch-name").value.trim(), region: $("new-branch-region").value.trim() };
      const result = await page.api("/branches", { method: "POST", body });
      if (!result.ok) return page.problem(result, t("admin.branches.not_added"));
      $("branch-form").reset();
      page.notice(t("admin.branches.added", { name: result.body.branch.name }));
      await load();
      page.changed();
    });
    $("branch-edit-form").addEventListener("submit", save);
    $("branch-cancel").addEventListener("click", () => $("branch-dialog").close());
  }

  async function load() {
    const result = await page.api("/branches");
    if (!result.ok) return page.problem(result, t("admin.branches.load_failed"));
    page.data.branches = result.body.branches;
    render();
    // Every branch menu on the page (the fleet's filter, adding and moving a booth) at once.
    page.sections.fleet.setBranchChoices(page.data.branches);
  }

  function render() {
    const body = $("branches");
    body.replaceChildren();
    for (const branch of page.data.branches) {
      const row = document.createElement("tr");
      cell(row, branch.name);
      cell(row, branch.region);
      cell(row, String(branch.booths));
      cell(row, String(branch.appointments));
      const actions = cell(row, "");
      actions.className = "actions";
      actions.append(button(t("admin.edit"), () => edit(branch), { label: t("admin.edit_label", { name: branch.name }) }));
      const inUse = branch.booths > 0 || branch.appointments > 0;
      const remove = button(t("admin.delete"), () => remove_(branch), {
        className: "danger",
        label: inUse ? t("admin.branches.in_use", { name: branch.name }) : t("admin.delete_label", { name: branch.name }),
      });
      remove.disabled = inUse;
      actions.append(remove);
      body.append(row);
    }
  }

  function edit(branch) {
    editing = branch;
    $("edit-branch-name").value = branch.name;
    $("edit-branch-region").value = branch.region;
    $("branch-dialog").showModal();
  }

  async function save(event) {
    event.preventDefault();
    const branch = editing;
    if (!branch) return;
    const change = {};
    const name = $("edit-branch-name").value.trim();
    const region = $("edit-branch-region").value.trim();
    if (name !== branch.name) change.name = name;
    if (region !== branch.region) change.region = region;
    if (Object.keys(change).length) {
      const result = await page.api(`/branches/${encodeURIComponent(branch.id)}`, { method: "PATCH", body: change });
      if (!result.ok) return page.problem(result, t("admin.not_changed", { name: branch.name }));
      page.notice(t("admin.branches.saved", { name: result.body.branch.name }));
    }
    $("branch-dialog").close();
    await load();
    page.sections.fleet.load(); // the booths' branch names
    page.changed();
  }

  async function remove_(branch) {
    if (!confirm(t("admin.branches.delete_confirm", { name: branch.name }))) return;
    const result = await page.api(`/branches/${encodeURIComponent(branch.id)}`, { method: "DELETE" });
    if (!result.ok) return page.problem(result, t("admin.branches.not_deleted", { name: branch.name }));
    page.notice(t("admin.branches.deleted", { name: branch.name }));
    await load();
    page.changed();
  }

  return { wire, load, render };
}
