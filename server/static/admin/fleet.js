// The fleet section of the administration page: every booth's status and health, a booth's
// last 24 hours, remote commands, and a booth's whole life: adding it with its one-time
// enrolment code, a new code (a replacement device, a lost or spent code), renaming or moving
// it to another branch, and revoking it.
// Text from the server goes into the page with textContent only; the chart is SVG built with
// DOM calls and styled from style.css (the Content-Security-Policy allows no inline styles).

import { $, button, cell, element, keepingFocus } from "/static/js/dom.js";
import { t } from "/static/js/i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 15000;
const HISTORY_HOURS = 24;
const BUSY = new Set(["choose", "code_entry", "consent", "waiting", "in_call"]);

function statusName(state) {
  const names = {
    online: t("admin.fleet.state.online"),
    offline: t("admin.fleet.state.offline"),
    out_of_service: t("admin.fleet.state.out_of_service"),
  };
  return names[state] || state;
}

function testNames() {
  return [
    ["camera_ok", t("admin.fleet.test.camera")],
    ["microphone_ok", t("admin.fleet.test.microphone")],
    ["speaker_ok", t("admin.fleet.test.speaker")],
    ["lights_ok", t("admin.fleet.test.lights")],
  ];
}

function commands() {
  return {
    out_of_service: {
      label: t("admin.fleet.command.out_of_service"),
      done: t("admin.fleet.command.out_of_service_done"),
      confirm: (b) => t("admin.fleet.command.out_of_service_confirm", { name: b.name }),
    },
    in_service: {
      label: t("admin.fleet.command.in_service"),
      done: t("admin.fleet.command.in_service_done"),
      confirm: (b) => t("admin.fleet.command.in_service_confirm", { name: b.name }),
    },
    restart: {
      label: t("admin.fleet.command.restart"),
      done: t("admin.fleet.command.restart_done"),
      confirm: (b) => t("admin.fleet.command.restart_confirm", { name: b.name }),
    },
    self_test: {
      label: t("admin.fleet.command.self_test"),
      done: t("admin.fleet.command.self_test_done"),
      confirm: (b) => t("admin.fleet.command.self_test_confirm", { name: b.name }),
    },
  };
}

export function createFleet(page) {
  let timer = null;
  let historyOf = null;
  let lastBooths = [];
  let editing = null;
  let updatedAt = null;

  function wire() {
    $("fleet-filter").addEventListener("submit", (event) => {
      event.preventDefault();
      load();
    });
    $("fleet-branch").addEventListener("change", () => load());
    $("fleet-state").addEventListener("change", () => load());
    $("fleet-history-close").addEventListener("click", closeHistory);
    $("booth-form").addEventListener("submit", addBooth);
    $("booth-edit-form").addEventListener("submit", saveBooth);
    $("booth-cancel").addEventListener("click", () => $("booth-dialog").close());
    $("enrolment-done").addEventListener("click", hideEnrolment);
    $("enrolment-copy").addEventListener("click", () => navigator.clipboard.writeText($("enrolment-token").textContent));
  }

  // The booths' own count and names changed (added, moved, revoked): the branches list says so.
  function changed() {
    page.sections.branches.load();
  }

  // ------------------------------------------------------------------ the list

  async function load() {
    if (timer === null) {
      // Follow the heartbeats while the page is shown (a background tab asks nothing).
      timer = setInterval(() => {
        if (!document.hidden && !$("admin-view").hidden) load();
      }, REFRESH_MS);
    }
    const params = new URLSearchParams();
    if ($("fleet-branch").value) params.set("branch", $("fleet-branch").value);
    if ($("fleet-state").value) params.set("state", $("fleet-state").value);
    const result = await page.api(`/fleet?${params}`);
    if (!result.ok) return page.problem(result, t("admin.fleet.load_failed"));
    lastBooths = result.body.booths;
    updatedAt = new Date();
    renderFleet(lastBooths);
    if (historyOf) {
      const still = lastBooths.find((b) => b.id === historyOf.id);
      if (still) historyOf = still;
    }
  }

  /** The page's branches, for every branch menu of the fleet (called whenever they change). */
  function setBranchChoices(branches) {
    for (const select of [$("fleet-branch"), $("new-booth-branch"), $("edit-booth-branch")]) {
      const chosen = select.value;
      const first = select.options[0];
      select.replaceChildren(first);
      for (const branch of branches) {
        select.append(element("option", { text: branch.name, attrs: { value: branch.id } }));
      }
      select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
    }
  }

  /** Draw the fleet again in the page's language. */
  function render() {
    renderFleet(lastBooths);
    if (historyOf) showHistory(historyOf);
  }

  function formatTemperature(health) {
    const value = health && health.cpu_temperature_c;
    return typeof value === "number" ? `${value.toFixed(1)} °C` : "–";
  }

  function formatTests(health) {
    if (!health) return "–";
    // No light wired (or a booth from before lights were tested): nothing to say about lights.
    const tested = testNames().filter(([field]) => field !== "lights_ok" || typeof health[field] === "boolean");
    const parts = tested.map(([field, name]) => {
      const value = health[field];
      const result = value === true ? t("admin.fleet.test.ok") : value === false ? t("admin.fleet.test.failed") : t("admin.fleet.test.untested");
      return `${name} ${result}`;
    });
    const node = element("span", { text: parts.join(", ") });
    // The platform under the tests: which pin driver drives the buttons and lights, a clock
    // that no time server has set (its TLS fails), and why the audio does not open.
    // Booths that predate these fields send none, and nothing is shown for them.
    if (health.pin_driver) {
      node.append(element("span", { text: ` · ${t("admin.fleet.pin_driver", { driver: health.pin_driver })}`, className: "hint" }));
    }
    if (health.clock_synchronised === false) {
      node.append(element("span", { text: ` · ${t("admin.fleet.clock_not_set")}`, className: "fail" }));
    }
    if (health.audio_problem) node.append(element("div", { text: health.audio_problem, className: "hint" }));
    return node;
  }

  function platformFailed(health) {
    return testNames().some(([field]) => health[field] === false) || health.clock_synchronised === false;
  }

  function formatTime(iso) {
    if (!iso) return element("span", { text: t("admin.fleet.never"), className: "hint" });
    return element("time", { text: page.clock.dateTime(iso), attrs: { datetime: iso } });
  }

  function formatCommand(last) {
    if (!last) return "–";
    const known = commands()[last.command];
    const what = known ? known.label : (last.command || "").replaceAll("_", " ");
    const node = element("span", {
      text: `${what}: ${last.ok ? t("admin.fleet.command_ok") : t("admin.fleet.command_failed_result")}`,
      className: last.ok ? "" : "fail",
    });
    if (last.detail) node.append(element("span", { text: ` – ${last.detail}`, className: "hint" }));
    return node;
  }

  function renderFleet(booths) {
    // The list is drawn again every REFRESH_MS: a keyboard or screen reader user's place in it
    // (the control with the focus) is kept, not thrown back to the top of the page.
    keepingFocus("#fleet", () => drawFleet(booths));
    $("fleet-empty").hidden = booths.length > 0;
    $("fleet-updated").textContent = updatedAt ? t("admin.fleet.updated", { time: page.clock.time(updatedAt) }) : "";
  }

  function drawFleet(booths) {
    const body = $("fleet");
    body.replaceChildren();
    const commandList = commands();
    for (const booth of booths) {
      const row = document.createElement("tr");
      row.dataset.row = booth.id;
      cell(row, booth.name);
      cell(row, booth.branch_name || "–");
      const status = cell(row, element("span", {
        text: statusName(booth.state),
        className: `pill status-${booth.state}`,
      }));
      if (!booth.enrolled && !booth.online) status.append(" ", element("span", { text: t("admin.fleet.not_enrolled"), className: "hint" }));
      cell(row, formatTime(booth.last_seen));
      // The root slot it runs from, and whether that slot is still on trial after an update.
      const slot = booth.health && booth.health.slot;
      const onTrial = slot && booth.health.slot_good === false;
      const version = booth.version || "–";
      if (!slot) cell(row, version);
      else if (onTrial) cell(row, t("admin.fleet.version_slot_trial", { version, slot }));
      else cell(row, t("admin.fleet.version_slot", { version, slot }));
      const hot = booth.health && booth.health.cpu_temperature_c >= 80;
      cell(row, formatTemperature(booth.health)).className = hot ? "fail" : "";
      const failed = booth.health && platformFailed(booth.health);
      cell(row, formatTests(booth.health)).className = failed ? "fail" : "";
      cell(row, formatCommand(booth.last_command));
      const actions = cell(row, "");
      actions.className = "actions";
      actions.append(control("history", button(t("admin.fleet.history"), () => showHistory(booth), {
        className: "secondary", label: t("admin.fleet.history_label", { name: booth.name }),
      })));
      const service = booth.out_of_service ? "in_service" : "out_of_service";
      for (const command of [service, "restart", "self_test"]) {
        const node = button(commandList[command].label, () => sendCommand(booth, command), {
          className: command === "out_of_service" || command === "restart" ? "danger" : "secondary",
          label: booth.online
            ? t("admin.fleet.command_label", { command: commandList[command].label, name: booth.name })
            : t("admin.fleet.command_offline_label", { command: commandList[command].label, name: booth.name }),
        });
        node.disabled = !booth.online;
        // Out of and back in service are one place in the row: the control that is there.
        actions.append(control(command === service ? "service" : command, node));
      }
      actions.append(
        control("edit", button(t("admin.edit"), () => editBooth(booth), {
          className: "secondary", label: t("admin.fleet.edit_label", { name: booth.name }),
        })),
        control("new_code", button(t("admin.fleet.new_code"), () => newEnrolmentCode(booth), {
          className: "secondary", label: t("admin.fleet.new_code_label", { name: booth.name }),
        })),
        control("revoke", button(t("admin.fleet.revoke"), () => revokeBooth(booth), {
          className: "danger", label: t("admin.fleet.revoke_label", { name: booth.name }),
        })),
      );
      body.append(row);
    }
  }

  /** Name a row's control: the same control takes the focus back after a refresh. */
  function control(name, node) {
    node.dataset.control = name;
    return node;
  }

  async function sendCommand(booth, command) {
    const chosen = commands()[command];
    if (!confirm(chosen.confirm(booth))) return;
    const result = await page.api(`/booths/${encodeURIComponent(booth.id)}/commands`, {
      method: "POST",
      body: { command },
    });
    if (!result.ok) return page.problem(result, t("admin.fleet.command_not_sent", { name: booth.name }));
    page.notice(t("admin.fleet.command_sent", { name: booth.name, done: chosen.done }));
    await load();
    // The booth answers within seconds: look again shortly.
    setTimeout(() => load(), 3000);
  }

  // ------------------------------------------------------------------ a booth's life

  function editBooth(booth) {
    editing = booth;
    $("booth-dialog-title").textContent = t("admin.fleet.edit_title", { name: booth.name });
    $("edit-booth-name").value = booth.name;
    $("edit-booth-branch").value = booth.branch_id || "";
    $("booth-dialog").showModal();
  }

  async function saveBooth(event) {
    event.preventDefault();
    const booth = editing;
    if (!booth) return;
    const change = {};
    const name = $("edit-booth-name").value.trim();
    const branch = $("edit-booth-branch").value;
    if (name !== booth.name) change.name = name;
    if (branch !== (booth.branch_id || "")) change.branch_id = branch; // "" takes it out of any branch
    if (Object.keys(change).length) {
      const result = await page.api(`/booths/${encodeURIComponent(booth.id)}`, { method: "PATCH", body: change });
      if (!result.ok) return page.problem(result, t("admin.not_changed", { name: booth.name }));
      page.notice(t("admin.fleet.saved", { name: result.body.name }));
      changed();
    }
    $("booth-dialog").close();
    await load();
  }

  async function newEnrolmentCode(booth) {
    if (!confirm(t("admin.fleet.new_code_confirm", { name: booth.name }))) return;
    const result = await page.api(`/booths/${encodeURIComponent(booth.id)}/enrolment`, { method: "POST", body: {} });
    if (!result.ok) return page.problem(result, t("admin.fleet.new_code_failed", { name: booth.name }));
    showEnrolment(result.body);
    page.notice(t("admin.fleet.new_code_made", { name: booth.name }));
  }

  async function revokeBooth(booth) {
    if (!confirm(t("admin.fleet.revoke_confirm", { name: booth.name }))) return;
    const result = await page.api(`/booths/${encodeURIComponent(booth.id)}/revoke`, { method: "POST", body: {} });
    if (!result.ok) return page.problem(result, t("admin.fleet.not_revoked", { name: booth.name }));
    if (historyOf && historyOf.id === booth.id) closeHistory();
    page.notice(t("admin.fleet.revoked", { name: booth.name }));
    changed();
    await load();
  }

  // ------------------------------------------------------------------ the last 24 hours

  function closeHistory() {
    historyOf = null;
    $("fleet-history").hidden = true;
  }

  async function showHistory(booth) {
    const result = await page.api(`/booths/${encodeURIComponent(booth.id)}/health?hours=${HISTORY_HOURS}`);
    if (!result.ok) return page.problem(result, t("admin.fleet.history_failed", { name: booth.name }));
    historyOf = booth;
    const reports = result.body.reports;
    $("fleet-history-title").textContent = t("admin.fleet.history_title", { name: booth.name });
    $("fleet-history-empty").hidden = reports.length > 0;
    $("fleet-history-chart").hidden = reports.length === 0;
    renderChart(reports);
    renderHours(reports);
    $("fleet-history").hidden = false;
    $("fleet-history-title").focus();
  }

  function svg(tag, attrs = {}, className) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (className) node.setAttribute("class", className);
    return node;
  }

  function stateClass(state) {
    if (state === "idle" || state === "ended") return "st-idle";
    if (BUSY.has(state)) return "st-busy";
    if (state === "out_of_service") return "st-out_of_service";
    return "st-other";
  }

  // A sparkline of the temperature over the window and a band of the booth's states.
  function renderChart(reports) {
    const width = 720, line = 80, band = 14, gap = 6;
    const end = Date.now();
    const start = end - HISTORY_HOURS * 3600 * 1000;
    const x = (ms) => ((Math.min(Math.max(ms, start), end) - start) / (end - start)) * width;
    const temperatures = reports.map((r) => r.cpu_temperature_c).filter((value) => typeof value === "number");
    const low = temperatures.length ? Math.min(...temperatures) : 0;
    const high = temperatures.length ? Math.max(...temperatures) : 1;
    const span = Math.max(high - low, 1);
    const y = (value) => 4 + (1 - (value - low) / span) * (line - 8);

    const figure = svg("svg", { viewBox: `0 0 ${width} ${line + gap + band}`, role: "img" }, "spark");
    const summary = temperatures.length
      ? t("admin.fleet.chart_summary", { low: low.toFixed(1), high: high.toFixed(1), hours: HISTORY_HOURS })
      : t("admin.fleet.chart_no_readings", { hours: HISTORY_HOURS });
    figure.setAttribute("aria-label", summary);
    const title = svg("title");
    title.textContent = summary;
    figure.append(title, svg("rect", { x: 0, y: 0, width, height: line }, "spark-frame"));

    // One polyline per run of readings: a gap in the reports is a gap in the line.
    let points = [];
    let previous = null;
    const flush = () => {
      if (points.length) figure.append(svg("polyline", { points: points.join(" ") }, "spark-line"));
      points = [];
    };
    for (const report of reports) {
      const at = Date.parse(report.at);
      if (previous !== null && at - previous > 10 * 60 * 1000) flush();
      previous = at;
      if (typeof report.cpu_temperature_c !== "number") {
        flush();
        continue;
      }
      points.push(`${x(at).toFixed(1)},${y(report.cpu_temperature_c).toFixed(1)}`);
    }
    flush();

    reports.forEach((report, index) => {
      const from = Date.parse(report.at);
      const next = index + 1 < reports.length ? Date.parse(reports[index + 1].at) : end;
      // A report speaks for the minutes until the next one, at most ten.
      const until = Math.min(next, from + 10 * 60 * 1000, end);
      const rect = svg("rect", {
        x: x(from).toFixed(1),
        y: line + gap,
        width: Math.max(x(until) - x(from), 1).toFixed(1),
        height: band,
      }, stateClass(report.state));
      const tip = svg("title");
      tip.textContent = `${page.clock.time(new Date(from))}: ${report.state}`;
      rect.append(tip);
      figure.append(rect);
    });
    $("fleet-history-svg").replaceChildren(figure);
    $("fleet-history-range").textContent = temperatures.length
      ? t("admin.fleet.chart_line", { low: low.toFixed(1), high: high.toFixed(1) })
      : t("admin.fleet.chart_line_none");
  }

  function renderHours(reports) {
    const clock = page.clock;
    const hours = new Map();
    for (const report of reports) {
      // The hour in the organisation's zone (zones differ from UTC by whole quarter hours).
      const at = new Date(report.at);
      const minutes = clock.parts(at).minute;
      const key = Math.floor(at.getTime() / 60000) * 60000 - minutes * 60000;
      if (!hours.has(key)) hours.set(key, []);
      hours.get(key).push(report);
    }
    const body = $("fleet-history-rows");
    body.replaceChildren();
    const maximum = (list, field) => {
      const values = list.map((r) => r[field]).filter((v) => typeof v === "number");
      return values.length ? Math.max(...values) : null;
    };
    for (const [key, list] of [...hours.entries()].sort((a, b) => b[0] - a[0])) {
      const row = document.createElement("tr");
      cell(row, clock.dateTime(new Date(key)));
      cell(row, [...new Set(list.map((r) => r.state.replaceAll("_", " ")))].join(", "));
      const temperature = maximum(list, "cpu_temperature_c");
      cell(row, temperature === null ? "–" : `${temperature.toFixed(1)} °C`);
      const load = maximum(list, "load_1m");
      cell(row, load === null ? "–" : load.toFixed(2));
      const last = list[list.length - 1];
      cell(row, typeof last.disk_free_mb === "number" ? `${Math.round(last.disk_free_mb)} MiB` : "–");
      cell(row, formatTests(last));
      body.append(row);
    }
  }

  // ------------------------------------------------------------------ adding a booth

  async function addBooth(event) {
    event.preventDefault();
    const body = { name: $("new-booth-name").value.trim() };
    if ($("new-booth-branch").value) body.branch_id = $("new-booth-branch").value;
    const result = await page.api("/booths", { method: "POST", body });
    if (!result.ok) return page.problem(result, t("admin.fleet.not_added"));
    $("booth-form").reset();
    showEnrolment(result.body);
    page.notice(t("admin.fleet.added", { name: result.body.booth.name }));
    changed();
    await load();
  }

  function showEnrolment(answer) {
    $("enrolment-for").textContent = t("admin.fleet.enrolment_for", { name: answer.booth.name });
    $("enrolment-token").textContent = answer.enrolment_token;
    $("enrolment-hint").textContent = t("admin.fleet.enrolment_hint", { until: page.clock.dateTime(answer.expires_at) });
    // As an image: an SVG shown by <img> cannot run anything, and no server text becomes markup.
    $("enrolment-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(answer.qr_svg)}`;
    $("enrolment").hidden = false;
    $("enrolment-copy").focus();
  }

  function hideEnrolment() {
    $("enrolment-token").textContent = "";
    $("enrolment-qr").removeAttribute("src");
    $("enrolment").hidden = true;
  }

  return { wire, load, render, setBranchChoices };
}
