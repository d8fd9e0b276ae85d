// Sockets for the live pages (terminal, monitoring, shared editor), behind either door.
//
// The local server answers /ws/<route> itself. On AWS the pages come from CloudFront,
// which sends /ws (the WebSocket API's stage) to API Gateway on the same origin; that
// API has no paths of its own, so the route goes in the query: /ws?path=/ws/<route>.
// `make deploy-console` writes /config.json saying so; without it (the local server
// has none) the pages use the local form.
import { getKey, socketUrl } from "./api.js";

const LOCAL = Object.freeze({ door: "local", socketBase: null });
let loaded = null;

// {door: "local"|"aws", socketBase}: read once per page.
export function consoleConfig() {
  if (!loaded) loaded = readConfig();
  return loaded;
}

async function readConfig() {
  try {
    const response = await fetch("/config.json", { cache: "no-store" });
    if (!response.ok) return LOCAL;
    const body = await response.json();
    if (body && body.door === "aws" && typeof body.socketBase === "string") {
      return { door: "aws", socketBase: body.socketBase };
    }
  } catch {
    // no config (the local server), or not JSON: the local form
  }
  return LOCAL;
}

function gatewayUrl(config, path, params = {}) {
  const url = new URL(config.socketBase, window.location.href);
  if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol === "http:") url.protocol = "ws:";
  const key = getKey();
  if (key) url.searchParams.set("api_key", key);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  // Last, so that y-websocket's "/<room>" can follow it (see collaborationEndpoint).
  url.searchParams.set("path", path);
  return url.toString();
}

// The URL of a socket route (path starts with /ws/), the key and params in the query.
export async function liveSocketUrl(path, params = {}) {
  const config = await consoleConfig();
  return config.door === "aws" ? gatewayUrl(config, path, params) : socketUrl(path, params);
}

// y-websocket connects to `${serverUrl}/${room}?${params}`; behind API Gateway the room
// must end the `path` query parameter instead, so the key goes in serverUrl there.
export async function collaborationEndpoint(sid) {
  const config = await consoleConfig();
  if (config.door === "aws") {
    return { serverUrl: gatewayUrl(config, "/ws/collaboration"), room: sid, params: {} };
  }
  const base = socketUrl("/ws/collaboration");
  const url = new URL(base);
  url.search = "";
  return { serverUrl: url.toString(), room: sid, params: { api_key: getKey() || "" } };
}

// What the server's close codes mean (README "WebSockets"), for a person.
const CLOSES = {
  1000: "closed normally",
  1001: "the server is stopping or this client fell behind; reconnecting catches up",
  1006: "the connection dropped (server unreachable, or the handshake was refused)",
  4400: "a malformed request or repeated bad frames",
  4401: "the API key was refused (missing, unknown or revoked): sign in again",
  4403: "this session id belongs to another API key: pick another one",
  4404: "no such route, job or project",
  4408: "closed after too long without input",
  4429: "too many requests for this key: wait a little",
  4503: "not available on this server (the terminal runs on the local server only, or it is turned off)",
};

export function describeClose(code, reason) {
  const meaning = CLOSES[code] || "closed";
  const told = reason && reason !== meaning ? ` (server: ${reason})` : "";
  return `${code}: ${meaning}${told}`;
}

// Codes after which reconnecting by itself cannot help: the person must act.
export function isFinalClose(code) {
  return code === 1000 || (code >= 4400 && code < 4500 && code !== 4429) || code === 4503;
}

// A small status line: <span class="live-status" data-state=...>.
export function setStatus(element, state, text) {
  element.dataset.state = state;
  element.textContent = text;
}

// A short random id for a new session or document.
export function newSid(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The page's URL with ?name=value set (kept on reload and shareable), without reloading.
export function keepInUrl(name, value) {
  const url = new URL(window.location.href);
  if (value) url.searchParams.set(name, value);
  else url.searchParams.delete(name);
  window.history.replaceState(null, "", url);
}
