// Times as the organisation reads them: in its time zone (GET /api/v1/branding names it), on
// every page alike and as the invitations the server writes say them. A person whose browser
// is in another zone sees the zone's short name next to each time.
//
//   import { Clock } from "/static/js/time.js";
//   const clock = new Clock(branding?.timezone);
//   clock.time(iso)            -> "14:30" (or "14:30 MEZ" where the browser's zone differs)
//   clock.dateTime(iso)        -> "05.12.2026, 14:30"
//   clock.today()              -> "2026-12-05", the organisation's date now
//   clock.inputValue(date)     -> "2026-12-05T14:30" for <input type="datetime-local">
//   clock.fromInput(value)     -> the Date that is this wall time in the organisation's zone
//   clock.nextQuarterHour()    -> inputValue of the next full quarter hour

const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const QUARTER_MS = 15 * 60 * 1000;

function validZone(zone) {
  if (typeof zone !== "string" || !zone) return null;
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return zone;
  } catch {
    return null;
  }
}

// The page's language in the browser's own variant of it (en-GB writes 15:30, en-US 3:30 PM).
function locale(language) {
  const lang = language || document.documentElement.lang || "en";
  const own = (navigator.languages || [navigator.language]).find((tag) => tag && tag.split("-")[0] === lang);
  return own || lang;
}

export class Clock {
  constructor(zone) {
    this.zone = validZone(zone) || BROWSER_ZONE;
    this.foreign = this.zone !== BROWSER_ZONE;
  }

  // The wall-clock fields of `date` in the organisation's zone, as numbers.
  parts(date) {
    const fields = new Intl.DateTimeFormat("en-GB", {
      timeZone: this.zone, hourCycle: "h23",
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(date);
    const value = (type) => Number(fields.find((p) => p.type === type).value);
    return {
      year: value("year"), month: value("month"), day: value("day"),
      hour: value("hour") % 24, minute: value("minute"), second: value("second"),
    };
  }

  format(iso, options, language) {
    const date = iso instanceof Date ? iso : new Date(iso);
    const zoneName = this.foreign ? { timeZoneName: "short" } : {};
    return new Intl.DateTimeFormat(locale(language), {
      timeZone: this.zone, ...options, ...zoneName,
    }).format(date);
  }

  time(iso, language) {
    return this.format(iso, { hour: "2-digit", minute: "2-digit" }, language);
  }

  date(iso, language) {
    const date = iso instanceof Date ? iso : new Date(iso);
    return new Intl.DateTimeFormat(locale(language), {
      timeZone: this.zone, dateStyle: "medium",
    }).format(date);
  }

  dateTime(iso, language) {
    const fields = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" };
    return this.format(iso, fields, language);
  }

  today(date = new Date()) {
    const p = this.parts(date);
    return `${p.year}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`;
  }

  inputValue(date) {
    const p = this.parts(date);
    const two = (n) => String(n).padStart(2, "0");
    return `${p.year}-${two(p.month)}-${two(p.day)}T${two(p.hour)}:${two(p.minute)}`;
  }

  // Milliseconds the organisation's zone is ahead of UTC at `ms`.
  offset(ms) {
    const p = this.parts(new Date(ms));
    const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
    return wall - Math.floor(ms / 1000) * 1000;
  }

  fromInput(value) {
    const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
    if (!match) return null;
    const [year, month, day, hour, minute] = match.slice(1).map(Number);
    const wall = Date.UTC(year, month - 1, day, hour, minute);
    // Twice: the first guess may sit on the other side of a daylight-saving change.
    let ms = wall - this.offset(wall);
    ms = wall - this.offset(ms);
    return new Date(ms);
  }

  nextQuarterHour(now = Date.now()) {
    return this.inputValue(new Date(Math.ceil((now + 60 * 1000) / QUARTER_MS) * QUARTER_MS));
  }
}
