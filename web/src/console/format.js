// Formatting helpers shared by the views.

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });

export function ago(iso) {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  if (seconds < 45) return "just now";
  if (seconds < 3600) return rtf.format(-Math.round(seconds / 60), "minute");
  if (seconds < 86400) return rtf.format(-Math.round(seconds / 3600), "hour");
  if (seconds < 7 * 86400) return rtf.format(-Math.round(seconds / 86400), "day");
  return new Date(iso).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
}

/** "0:42", "12:05", "1:02:10": how long someone has been waiting. */
export function waited(iso) {
  const total = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export const clock = (iso) =>
  new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

export const dateTime = (iso) =>
  new Date(iso).toLocaleString(undefined, {
    day: "numeric",
    month: "short",
    hour: "2-digit",
    minute: "2-digit",
  });

export function shortUrl(url) {
  try {
    const u = new URL(url);
    return u.host + (u.pathname === "/" ? "" : u.pathname) + u.search;
  } catch {
    return url;
  }
}

export const capitalize = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

export function deviceLine(device) {
  if (!device) return "";
  const browser = [device.browser, device.browserVersion].filter(Boolean).join(" ");
  const os = [device.os, device.osVersion].filter(Boolean).join(" ");
  return [browser, os, device.type !== "unknown" ? capitalize(device.type) : ""]
    .filter(Boolean)
    .join(" · ");
}

export function customerName(customer) {
  return customer.name || customer.email || "Visitor";
}

export const initials = (name) =>
  String(name || "?")
    .split(/[\s@.]+/)
    .filter(Boolean)
    .map((w) => w[0])
    .slice(0, 2)
    .join("")
    .toUpperCase();

/** A one-line summary of the host app's fields (what the customer is looking at). */
export function appSummary(app) {
  if (!app) return "";
  const item = app.product || app.item;
  if (item && typeof item === "object") {
    const price = item.price != null ? money(item.price, item.currency) : "";
    return [item.name || item.id, item.colour || item.color, price].filter(Boolean).join(" · ");
  }
  const first = Object.entries(app).find(([, v]) => typeof v !== "object");
  return first ? `${first[0]}: ${first[1]}` : "";
}

export function money(value, currency) {
  if (typeof value !== "number") return String(value);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "USD" }).format(value);
  } catch {
    return String(value);
  }
}

/** Nested app fields as [label, text] rows (two levels deep, arrays summarised). */
export function flatten(value, prefix = "", depth = 0) {
  const rows = [];
  for (const [key, v] of Object.entries(value || {})) {
    const label = prefix ? `${prefix} ${key}` : key;
    if (v && typeof v === "object" && !Array.isArray(v) && depth < 1) {
      rows.push(...flatten(v, label, depth + 1));
    } else if (Array.isArray(v)) {
      const simple = v.every((x) => typeof x !== "object");
      rows.push([label, simple ? v.join(", ") : `${v.length} item${v.length === 1 ? "" : "s"}`]);
    } else if (v && typeof v === "object") {
      rows.push([label, JSON.stringify(v)]);
    } else {
      rows.push([label, v === true ? "yes" : v === false ? "no" : String(v)]);
    }
  }
  return rows;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** The customer's wall-clock time now, in their time zone. */
export function localTime(timeZone) {
  try {
    return new Date().toLocaleTimeString([], { timeZone, hour: "2-digit", minute: "2-digit" });
  } catch {
    return "";
  }
}
