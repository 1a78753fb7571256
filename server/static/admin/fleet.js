// The fleet section of the administration page: every booth's status and health, a booth's
// last 24 hours, remote commands, and adding a booth with its one-time enrolment code.
// Text from the server goes into the page with textContent only; the chart is SVG built with
// DOM calls and styled from style.css (the Content-Security-Policy allows no inline styles).

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 15000;
const HISTORY_HOURS = 24;
const STATUS = { online: "Online", offline: "Offline", out_of_service: "Out of service" };
const TESTS = [["camera_ok", "camera"], ["microphone_ok", "microphone"], ["speaker_ok", "speaker"]];
const BUSY = new Set(["choose", "code_entry", "consent", "waiting", "in_call"]);
const COMMANDS = {
  out_of_service: {
    label: "Set out of service",
    done: "set out of service",
    confirm: (b) => `Set ${b.name} out of service? It finishes a running call, then shows “out of service” until you put it back in service.`,
  },
  in_service: {
    label: "Back in service",
    done: "put back in service",
    confirm: (b) => `Put ${b.name} back in service? Citizens can use it again at once.`,
  },
  restart: {
    label: "Restart",
    done: "told to restart",
    confirm: (b) => `Restart the booth software of ${b.name}? It refuses while a call runs.`,
  },
  self_test: {
    label: "Run self test",
    done: "told to run its self test",
    confirm: (b) => `Run the self test on ${b.name}? It checks camera, microphone and loudspeaker (not during a call).`,
  },
};

// Helpers from admin.js: api, notice, problem, element, button, cell.
let ui = null;
let timer = null;
let historyOf = null;

export function wireFleet(helpers) {
  ui = helpers;
  $("fleet-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    loadFleet();
  });
  $("fleet-branch").addEventListener("change", () => loadFleet());
  $("fleet-state").addEventListener("change", () => loadFleet());
  $("fleet-history-close").addEventListener("click", closeHistory);
  $("booth-form").addEventListener("submit", addBooth);
  $("enrolment-done").addEventListener("click", hideEnrolment);
  $("enrolment-copy").addEventListener("click", () => navigator.clipboard.writeText($("enrolment-token").textContent));
}

// ------------------------------------------------------------------ the list

export async function loadFleet() {
  if (timer === null) {
    // Follow the heartbeats while the page is shown (a background tab asks nothing).
    timer = setInterval(() => {
      if (!document.hidden && !$("admin-view").hidden) loadFleet();
    }, REFRESH_MS);
  }
  await loadBranchChoices();
  const params = new URLSearchParams();
  if ($("fleet-branch").value) params.set("branch", $("fleet-branch").value);
  if ($("fleet-state").value) params.set("state", $("fleet-state").value);
  const result = await ui.api(`/fleet?${params}`);
  if (!result.ok) return ui.problem(result, "The fleet could not be loaded");
  renderFleet(result.body.booths);
  $("fleet-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  if (historyOf) {
    const still = result.body.booths.find((b) => b.id === historyOf.id);
    if (still) historyOf = still;
  }
}

async function loadBranchChoices() {
  const result = await ui.api("/branches");
  if (!result.ok) return;
  for (const select of [$("fleet-branch"), $("new-booth-branch")]) {
    const chosen = select.value;
    const first = select.options[0];
    select.replaceChildren(first);
    for (const branch of result.body.branches) {
      select.append(ui.element("option", { text: branch.name, attrs: { value: branch.id } }));
    }
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
  }
}

function formatTemperature(health) {
  const t = health && health.cpu_temperature_c;
  return typeof t === "number" ? `${t.toFixed(1)} °C` : "–";
}

function formatTests(health) {
  if (!health) return "–";
  const parts = TESTS.map(([field, name]) => {
    const value = health[field];
    return `${name} ${value === true ? "ok" : value === false ? "FAILED" : "not tested"}`;
  });
  return parts.join(", ");
}

function formatTime(iso) {
  if (!iso) return ui.element("span", { text: "never", className: "hint" });
  return ui.element("time", { text: new Date(iso).toLocaleString(), attrs: { datetime: iso } });
}

function formatCommand(last) {
  if (!last) return "–";
  const what = last.command ? last.command.replaceAll("_", " ") : "command";
  const node = ui.element("span", { text: `${what}: ${last.ok ? "done" : "failed"}`, className: last.ok ? "" : "fail" });
  if (last.detail) node.append(ui.element("span", { text: ` – ${last.detail}`, className: "hint" }));
  return node;
}

function renderFleet(booths) {
  const body = $("fleet");
  body.replaceChildren();
  for (const booth of booths) {
    const row = document.createElement("tr");
    ui.cell(row, booth.name);
    ui.cell(row, booth.branch_name || "–");
    const status = ui.cell(row, ui.element("span", {
      text: STATUS[booth.state] || booth.state,
      className: `pill status-${booth.state}`,
    }));
    if (!booth.enrolled && !booth.online) status.append(" ", ui.element("span", { text: "not enrolled yet", className: "hint" }));
    ui.cell(row, formatTime(booth.last_seen));
    ui.cell(row, booth.version || "–");
    const hot = booth.health && booth.health.cpu_temperature_c >= 80;
    ui.cell(row, formatTemperature(booth.health)).className = hot ? "fail" : "";
    const failed = booth.health && TESTS.some(([field]) => booth.health[field] === false);
    ui.cell(row, formatTests(booth.health)).className = failed ? "fail" : "";
    ui.cell(row, formatCommand(booth.last_command));
    const actions = ui.cell(row, "");
    actions.className = "actions";
    actions.append(ui.button("Last 24 hours", () => showHistory(booth), {
      className: "secondary", label: `Last 24 hours of ${booth.name}`,
    }));
    const service = booth.out_of_service ? "in_service" : "out_of_service";
    for (const command of [service, "restart", "self_test"]) {
      const node = ui.button(COMMANDS[command].label, () => sendCommand(booth, command), {
        className: command === "out_of_service" || command === "restart" ? "danger" : "secondary",
        label: booth.online
          ? `${COMMANDS[command].label}: ${booth.name}`
          : `${COMMANDS[command].label}: ${booth.name} is offline`,
      });
      node.disabled = !booth.online;
      actions.append(node);
    }
    body.append(row);
  }
  $("fleet-empty").hidden = booths.length > 0;
}

async function sendCommand(booth, command) {
  if (!confirm(COMMANDS[command].confirm(booth))) return;
  const result = await ui.api(`/booths/${encodeURIComponent(booth.id)}/commands`, {
    method: "POST",
    body: { command },
  });
  if (!result.ok) return ui.problem(result, `${booth.name} was not ${COMMANDS[command].done}`);
  ui.notice(`${booth.name} ${COMMANDS[command].done}; its answer shows under “Last command”.`);
  await loadFleet();
  // The booth answers within seconds: look again shortly.
  setTimeout(() => loadFleet(), 3000);
}

// ------------------------------------------------------------------ the last 24 hours

function closeHistory() {
  historyOf = null;
  $("fleet-history").hidden = true;
}

async function showHistory(booth) {
  const result = await ui.api(`/booths/${encodeURIComponent(booth.id)}/health?hours=${HISTORY_HOURS}`);
  if (!result.ok) return ui.problem(result, `The history of ${booth.name} could not be loaded`);
  historyOf = booth;
  const reports = result.body.reports;
  $("fleet-history-name").textContent = booth.name;
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
  const temperatures = reports.map((r) => r.cpu_temperature_c).filter((t) => typeof t === "number");
  const low = temperatures.length ? Math.min(...temperatures) : 0;
  const high = temperatures.length ? Math.max(...temperatures) : 1;
  const span = Math.max(high - low, 1);
  const y = (t) => 4 + (1 - (t - low) / span) * (line - 8);

  const figure = svg("svg", { viewBox: `0 0 ${width} ${line + gap + band}`, role: "img" }, "spark");
  const summary = temperatures.length
    ? `CPU temperature from ${low.toFixed(1)} to ${high.toFixed(1)} °C over the last ${HISTORY_HOURS} hours`
    : `No temperature readings in the last ${HISTORY_HOURS} hours`;
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
    tip.textContent = `${new Date(from).toLocaleTimeString()}: ${report.state}`;
    rect.append(tip);
    figure.append(rect);
  });
  $("fleet-history-svg").replaceChildren(figure);
  $("fleet-history-range").textContent = temperatures.length
    ? `${low.toFixed(1)} to ${high.toFixed(1)} °C`
    : "no readings";
}

function renderHours(reports) {
  const hours = new Map();
  for (const report of reports) {
    const at = new Date(report.at);
    at.setMinutes(0, 0, 0);
    const key = at.getTime();
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
    const from = new Date(key);
    ui.cell(row, `${from.toLocaleDateString()} ${from.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`);
    ui.cell(row, [...new Set(list.map((r) => r.state.replaceAll("_", " ")))].join(", "));
    const temperature = maximum(list, "cpu_temperature_c");
    ui.cell(row, temperature === null ? "–" : `${temperature.toFixed(1)} °C`);
    const load = maximum(list, "load_1m");
    ui.cell(row, load === null ? "–" : load.toFixed(2));
    const last = list[list.length - 1];
    ui.cell(row, typeof last.disk_free_mb === "number" ? `${Math.round(last.disk_free_mb)} MiB` : "–");
    ui.cell(row, formatTests(last));
    body.append(row);
  }
}

// ------------------------------------------------------------------ adding a booth

async function addBooth(event) {
  event.preventDefault();
  const body = { name: $("new-booth-name").value.trim() };
  if ($("new-booth-branch").value) body.branch_id = $("new-booth-branch").value;
  const result = await ui.api("/booths", { method: "POST", body });
  if (!result.ok) return ui.problem(result, "The booth was not added");
  $("booth-form").reset();
  showEnrolment(result.body);
  ui.notice(`Booth ${result.body.booth.name} added; enrol it with the code shown.`);
  await loadFleet();
}

function showEnrolment(answer) {
  $("enrolment-name").textContent = answer.booth.name;
  $("enrolment-token").textContent = answer.enrolment_token;
  $("enrolment-expires").textContent = new Date(answer.expires_at).toLocaleString();
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
