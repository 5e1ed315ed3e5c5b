// The agent's login: a 15-minute bearer token in sessionStorage, refreshed before it expires.

const KEY = "tandem.console.auth";
const REFRESH_BEFORE_MS = 90_000;

let current = load();
let timer = 0;
const listeners = new Set();

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return saved && Date.parse(saved.expiresAt) > Date.now() ? saved : null;
  } catch {
    return null;
  }
}

function save(value) {
  current = value;
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
  schedule();
  for (const fn of listeners) fn(current);
}

function schedule() {
  clearTimeout(timer);
  if (!current) return;
  const wait = Date.parse(current.expiresAt) - Date.now() - REFRESH_BEFORE_MS;
  timer = setTimeout(() => refresh().catch(() => {}), Math.max(wait, 5_000));
}

/** @returns {{token: string, expiresAt: string, agent: {id: string, name: string, email: string, role: string}} | null} */
export const session = () => current;
export const token = () => (current ? current.token : null);
export const onChange = (fn) => listeners.add(fn);

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

export async function login(email, password) {
  const res = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, body);
  save(body);
  return body;
}

export async function refresh() {
  if (!current) return null;
  const res = await fetch("/api/auth/refresh", {
    method: "POST",
    headers: { Authorization: `Bearer ${current.token}` },
  });
  if (res.status === 401) {
    logout("Your session expired. Please sign in again.");
    return null;
  }
  if (!res.ok) {
    timer = setTimeout(() => refresh().catch(() => {}), 15_000); // server busy: try again soon
    return current;
  }
  save(await res.json());
  return current;
}

/** The Sign out button: end the sign-in session on the server (its tokens and sockets die
 * there), then forget it here even if the server could not be reached. */
export async function signOut() {
  const token = current && current.token;
  if (token) {
    await fetch("/api/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
  }
  logout();
}

export let logoutReason = "";
export function logout(reason = "") {
  logoutReason = reason;
  save(null);
}

/** GET/POST JSON with the bearer token; a 401 signs the agent out. */
export async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { ...(options.headers || {}), Authorization: `Bearer ${token()}` },
  });
  if (res.status === 401) {
    logout("Your session expired. Please sign in again.");
    throw new ApiError(401, null);
  }
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  return options.raw ? res : res.json();
}

/** An attachment as a blob: URL (<img> cannot send the Authorization header). */
export async function blobUrl(path) {
  const res = await api(path, { raw: true });
  return URL.createObjectURL(await res.blob());
}

schedule();
