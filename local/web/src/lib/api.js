// The one way pages talk to the server: the API key from session storage as X-API-Key
// (sockets: ?api_key=), errors turned into ApiError with the server's code and message.
const KEY = "orchestrator.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message, body, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

// What a person should read for an error; 401 and 429 get their own wording.
export function describeError(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  if (err.status === 401) return "The API key was refused (missing, unknown or revoked). Sign in again.";
  if (err.status === 429) {
    const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "";
    return `Too many requests for this key.${wait}`;
  }
  return `${err.status} ${err.code}: ${err.message}`;
}

export async function api(path, { method = "GET", body, headers = {}, raw = false, signal } = {}) {
  const key = getKey();
  const init = { method, headers: { ...headers }, signal };
  if (key) init.headers["X-API-Key"] = key;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof ArrayBuffer)) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      // not JSON: keep the status line
    }
    const error = (payload && payload.error) || {};
    throw new ApiError(
      response.status,
      error.code || "http_error",
      error.message || response.statusText,
      payload,
      response.headers.get("Retry-After"),
    );
  }
  if (raw) return response;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("application/json") ? response.json() : response.text();
}

// A socket URL on this origin with the key as a query parameter (browsers cannot set
// headers on WebSockets).
export function socketUrl(path, params = {}) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const key = getKey();
  if (key) url.searchParams.set("api_key", key);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  return url.toString();
}

// A protected file (a job's zip, a project's file): fetched with the key header, then
// saved through a blob URL, since a plain link cannot carry X-API-Key.
export async function downloadFile(path, filename) {
  const response = await api(path, { raw: true });
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.style.display = "none";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return blob;
}

// A 202 body ({job_id, status_url, ws_url}) rather than a result.
export function isJobAccepted(body) {
  return Boolean(body && typeof body === "object" && body.job_id && body.status_url);
}
