// The booth updates section of the administration page: uploading a signed bundle (with the
// upload's progress; the server checks it with RAUC and says why it refuses one), starting a
// rollout of it (the canaries first, then batches by share), watching it booth by booth while
// it runs, and pausing, resuming or cancelling it.

import { API_BASE } from "/static/js/api.js";
import { $, button, cell, element } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";

const REFRESH_MS = 3000;

export function createUpdates(page) {
  let bundles = [];
  let rollouts = [];
  let booths = [];
  let shown = null; // the rollout whose booths are listed
  let rollingOut = null; // the bundle the dialog is for
  let timer = null;

  function wire() {
    $("bundle-form").addEventListener("submit", upload);
    $("rollout-form").addEventListener("submit", start);
    $("rollout-cancel-dialog").addEventListener("click", () => $("rollout-dialog").close());
  }

  async function load() {
    const [b, r, f] = await Promise.all([page.api("/updates/bundles"), page.api("/updates/rollouts"), page.api("/booths")]);
    if (!b.ok || !r.ok) return page.problem(b.ok ? r : b, t("admin.updates.load_failed"));
    bundles = b.body.bundles;
    rollouts = r.body.rollouts;
    booths = f.ok ? f.body.booths : [];
    if (shown) await showRollout(shown, { quiet: true });
    render();
    schedule();
  }

  // While a rollout runs, the page follows it.
  function schedule() {
    clearTimeout(timer);
    if (rollouts.some((r) => r.state === "running" || r.state === "paused")) timer = setTimeout(load, REFRESH_MS);
  }

  function version(bundleId) {
    return bundles.find((b) => b.id === bundleId)?.version ?? "?";
  }

  function render() {
    const list = $("bundles");
    list.replaceChildren();
    for (const bundle of bundles) {
      const row = document.createElement("tr");
      cell(row, bundle.version);
      cell(row, bundle.compatible);
      cell(row, bundle.signer);
      cell(row, `${(bundle.size / 1048576).toFixed(1)} MiB`);
      cell(row, page.clock.dateTime(bundle.uploaded_at));
      const actions = cell(row, "");
      actions.className = "actions";
      actions.append(button(t("admin.updates.roll_out"), () => openDialog(bundle), { label: t("admin.updates.roll_out_label", { version: bundle.version }) }));
      actions.append(button(t("admin.delete"), () => remove(bundle), { className: "danger", label: t("admin.delete_label", { name: bundle.version }) }));
      list.append(row);
    }
    const table = $("rollouts");
    table.replaceChildren();
    for (const rollout of rollouts) {
      const row = document.createElement("tr");
      cell(row, page.clock.dateTime(rollout.created_at));
      cell(row, version(rollout.bundle_id));
      cell(row, t(`admin.updates.state.${rollout.state}`));
      cell(row, rollout.id === shown?.id ? summary(shown.booths) : "");
      const actions = cell(row, "");
      actions.className = "actions";
      const name = version(rollout.bundle_id);
      actions.append(button(t("admin.updates.show"), () => showRollout(rollout), { label: t("admin.updates.show_label", { version: name }) }));
      if (rollout.state === "running") actions.append(button(t("admin.updates.pause"), () => act(rollout, "pause"), { label: t("admin.updates.pause_label", { version: name }) }));
      if (rollout.state === "paused") actions.append(button(t("admin.updates.resume"), () => act(rollout, "resume"), { label: t("admin.updates.resume_label", { version: name }) }));
      if (rollout.state === "running" || rollout.state === "paused") {
        actions.append(button(t("admin.updates.cancel"), () => act(rollout, "cancel"), { className: "danger", label: t("admin.updates.cancel_label", { version: name }) }));
      }
      table.append(row);
    }
    renderDetail();
  }

  function summary(list) {
    const count = (p) => list.filter((b) => b.progress === p).length;
    const underWay = list.length - count("done") - count("failed") - count("pending");
    return t("admin.updates.summary", { done: count("done"), failed: count("failed"), under_way: underWay, total: list.length });
  }

  function boothName(id) {
    return booths.find((b) => b.id === id)?.name ?? id;
  }

  function renderDetail() {
    $("rollout-detail").hidden = !shown;
    if (!shown) return;
    $("rollout-detail-title").textContent = t("admin.updates.detail_title", { version: version(shown.bundle_id), state: t(`admin.updates.state.${shown.state}`) });
    $("rollout-reason").textContent = shown.reason || "";
    const list = $("rollout-booths");
    list.replaceChildren();
    for (const booth of shown.booths) {
      const row = document.createElement("tr");
      row.dataset.progress = booth.progress;
      cell(row, boothName(booth.booth_id));
      cell(row, booth.stage === 0 ? t("admin.updates.canary") : String(booth.stage));
      const progress = t(`admin.updates.progress.${booth.progress}`);
      cell(row, booth.percent && booth.progress !== "done" ? `${progress} (${booth.percent} %)` : progress);
      cell(row, booth.detail);
      list.append(row);
    }
  }

  async function showRollout(rollout, { quiet = false } = {}) {
    const result = await page.api(`/updates/rollouts/${encodeURIComponent(rollout.id)}`);
    if (!result.ok) return quiet ? null : page.problem(result, t("admin.updates.load_failed"));
    shown = result.body;
    render();
    if (!quiet) $("rollout-detail-title").focus?.();
  }

  // The upload goes through XMLHttpRequest: fetch cannot tell how far an upload got.
  function upload(event) {
    event.preventDefault();
    const file = $("bundle-file").files[0];
    if (!file) return;
    const bar = $("bundle-progress");
    bar.hidden = false;
    bar.value = 0;
    const request = new XMLHttpRequest();
    request.open("POST", `${API_BASE}/updates/bundles`);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    });
    page.notice(t("admin.updates.uploading", { name: file.name }));
    request.addEventListener("loadend", async () => {
      bar.hidden = true;
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { /* not JSON */ }
      const result = { ok: request.status === 201, status: request.status, body };
      if (!result.ok) return page.problem(result, t("admin.updates.not_uploaded", { name: file.name }));
      $("bundle-form").reset();
      page.notice(t("admin.updates.uploaded_notice", { version: body.version }));
      await load();
      page.changed();
    });
    request.send(file);
  }

  function openDialog(bundle) {
    rollingOut = bundle;
    $("rollout-dialog-title").textContent = t("admin.updates.dialog_title", { version: bundle.version });
    const select = $("rollout-canaries");
    select.replaceChildren(...booths.filter((b) => !b.revoked).map((b) => element("option", { text: b.name, attrs: { value: b.id } })));
    $("rollout-dialog").showModal();
  }

  async function start(event) {
    event.preventDefault();
    const bundle = rollingOut;
    if (!bundle) return;
    const shares = $("rollout-shares").value.split(",").map((s) => Number(s.trim()));
    const body = {
      bundle_id: bundle.id,
      canaries: [...$("rollout-canaries").selectedOptions].map((o) => o.value),
      shares,
      max_failure_share: Number($("rollout-failures").value) / 100,
      health_timeout_minutes: Number($("rollout-timeout").value),
    };
    const result = await page.api("/updates/rollouts", { method: "POST", body });
    if (!result.ok) return page.problem(result, t("admin.updates.not_started", { version: bundle.version }));
    $("rollout-dialog").close();
    page.notice(t("admin.updates.started_notice", { version: bundle.version }));
    shown = { ...result.body, booths: [] };
    await load();
    page.changed();
  }

  async function act(rollout, action) {
    const result = await page.api(`/updates/rollouts/${encodeURIComponent(rollout.id)}/${action}`, { method: "POST", body: {} });
    if (!result.ok) return page.problem(result, t("admin.updates.not_changed"));
    await load();
    page.changed();
  }

  async function remove(bundle) {
    if (!confirm(t("admin.updates.delete_confirm", { version: bundle.version }))) return;
    const result = await page.api(`/updates/bundles/${encodeURIComponent(bundle.id)}`, { method: "DELETE" });
    if (!result.ok) return page.problem(result, t("admin.updates.not_deleted", { version: bundle.version }));
    await load();
    page.changed();
  }

  return { wire, load, render };
}
