// Sockets for the live pages (terminal, monitoring, shared editor), behind either door.
//
// The local server answers /ws/<route> itself. On AWS the pages come from CloudFront,
// which sends /ws (the WebSocket API's stage) to API Gateway on the same origin; that
// API has no paths of its own, so the route goes in the query: /ws?path=/ws/<route>.
// `make deploy-console` writes /config.json saying so; without it (the local server
// has none) the pages use the local form. API Gateway refuses binary frames from
// clients: the shared editor's socket there is a Base64Socket (below).
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
// `door` says which: behind API Gateway the socket must be a Base64Socket.
export async function collaborationEndpoint(sid) {
  const config = await consoleConfig();
  if (config.door === "aws") {
    return {
      door: "aws",
      serverUrl: gatewayUrl(config, "/ws/collaboration"),
      room: sid,
      params: {},
    };
  }
  const base = socketUrl("/ws/collaboration");
  const url = new URL(base);
  url.search = "";
  return {
    door: "local",
    serverUrl: url.toString(),
    room: sid,
    params: { api_key: getKey() || "" },
  };
}

// -- binary messages as base64 text ------------------------------------------------
//
// API Gateway's WebSocket APIs refuse binary frames from clients (they close with
// 1003), and y-websocket sends nothing else. The server takes each message as a text
// frame holding its base64 instead when the socket opens with ?frames=base64, and
// then sends its own messages that way too (README "WebSockets").

const CHUNK = 0x8000; // String.fromCharCode takes this many arguments safely

export function bytesToBase64(bytes) {
  let binary = "";
  for (let at = 0; at < bytes.length; at += CHUNK) {
    binary += String.fromCharCode.apply(null, bytes.subarray(at, at + CHUNK));
  }
  return btoa(binary);
}

export function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// `url` with frames=base64 first in its query: the `path` parameter stays last, as
// y-websocket's room must end it (see collaborationEndpoint).
export function withBase64Frames(url) {
  const parsed = new URL(url);
  const rest = parsed.search.slice(1);
  parsed.search = `frames=base64${rest ? `&${rest}` : ""}`;
  return parsed.toString();
}

// A WebSocket for y-websocket's `WebSocketPolyfill` option behind API Gateway: it
// opens the URL with frames=base64, sends every binary message (ArrayBuffer or typed
// array) as a base64 text frame, and hands the server's base64 text frames on as
// binary `message` events (an ArrayBuffer with binaryType "arraybuffer", which
// y-websocket sets; a Blob otherwise). The gateway's own frames are handled here:
// parts of a message over 128 KB are joined, and {"type":"close","code","reason"}
// (API Gateway cannot close with a code) becomes the close event's code and reason.
// Strings are sent as they are ({"action":"sync"}).
export class Base64Socket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url, protocols) {
    super();
    this.binaryType = "blob";
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.onclose = null;
    this._parts = new Map();
    this._told = null; // the gateway's close frame, if one came
    const ws = new WebSocket(withBase64Frames(url), protocols);
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    ws.addEventListener("open", () => this._emit(new Event("open")));
    ws.addEventListener("error", () => this._emit(new Event("error")));
    ws.addEventListener("message", (event) => this._receive(event.data));
    ws.addEventListener("close", (event) => {
      const told = this._told;
      this._emit(
        new CloseEvent("close", {
          code: told ? told.code : event.code,
          reason: told ? told.reason : event.reason,
          wasClean: told ? true : event.wasClean,
        }),
      );
    });
  }

  get CONNECTING() {
    return 0;
  }
  get OPEN() {
    return 1;
  }
  get CLOSING() {
    return 2;
  }
  get CLOSED() {
    return 3;
  }
  get readyState() {
    return this._ws.readyState;
  }
  get url() {
    return this._ws.url;
  }
  get protocol() {
    return this._ws.protocol;
  }
  get extensions() {
    return this._ws.extensions;
  }
  get bufferedAmount() {
    return this._ws.bufferedAmount;
  }

  send(data) {
    if (typeof data === "string") {
      this._ws.send(data);
    } else if (data instanceof ArrayBuffer) {
      this._ws.send(bytesToBase64(new Uint8Array(data)));
    } else if (ArrayBuffer.isView(data)) {
      this._ws.send(bytesToBase64(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
    } else {
      throw new TypeError("Base64Socket sends strings, ArrayBuffers and typed arrays");
    }
  }

  close(code, reason) {
    this._ws.close(code, reason);
  }

  _emit(event) {
    const handler = this[`on${event.type}`];
    if (typeof handler === "function") handler.call(this, event);
    this.dispatchEvent(event);
  }

  _deliver(bytes) {
    const data =
      this.binaryType === "arraybuffer"
        ? bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
        : new Blob([bytes]);
    this._emit(new MessageEvent("message", { data, origin: new URL(this._ws.url).origin }));
  }

  _receive(data) {
    if (typeof data !== "string") {
      this._deliver(new Uint8Array(data)); // a binary frame: as it is
      return;
    }
    if (data.startsWith("{")) {
      // Never base64 (no "{" in its alphabet): one of the gateway's JSON frames.
      let frame;
      try {
        frame = JSON.parse(data);
      } catch {
        return;
      }
      if (frame.type === "close") {
        this._told = { code: Number(frame.code) || 1000, reason: String(frame.reason || "") };
        this._ws.close(1000); // API Gateway drops the connection next anyway
      } else if (frame.type === "part") {
        this._part(frame);
      }
      return;
    }
    let bytes;
    try {
      bytes = base64ToBytes(data);
    } catch {
      console.warn("Base64Socket: a text frame that is not base64 was dropped");
      return;
    }
    this._deliver(bytes);
  }

  // {"type":"part","id","part","parts","encoding","data"}: see common/ws/frames.py.
  _part(frame) {
    const parts = this._parts.get(frame.id) || new Map();
    this._parts.set(frame.id, parts);
    parts.set(Number(frame.part), frame);
    if (parts.size < Number(frame.parts)) return;
    this._parts.delete(frame.id);
    const ordered = Array.from({ length: Number(frame.parts) }, (_, i) => parts.get(i));
    if (ordered.some((part) => !part)) return;
    if (frame.encoding === "base64") {
      const pieces = ordered.map((part) => base64ToBytes(part.data));
      const joined = new Uint8Array(pieces.reduce((n, piece) => n + piece.length, 0));
      let at = 0;
      for (const piece of pieces) {
        joined.set(piece, at);
        at += piece.length;
      }
      this._deliver(joined);
    } else {
      this._receive(ordered.map((part) => part.data).join(""));
    }
  }
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
