// Terminal: xterm.js on /ws/ide/terminal/{sid}. Keystrokes go as input frames, the
// window size as resize frames; output frames are numbered, so a reconnect asks for
// what came after the last one it wrote (?since=) and the screen has no gap or repeat.
import "@xterm/xterm/css/xterm.css";
import "../live.css";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import {
  consoleConfig,
  describeClose,
  isFinalClose,
  keepInUrl,
  liveSocketUrl,
  newSid,
  setStatus,
} from "../lib/live.js";
import { mountShell, showMessage } from "../lib/shell.js";

mountShell("terminal");

const SID = /^[A-Za-z0-9_-]{1,64}$/;
const PING_MS = 30_000;
const RETRY_MS = [500, 1000, 2000, 4000, 8000];

const params = new URLSearchParams(window.location.search);
const projectId = params.get("project_id") || null;
const sidInput = document.getElementById("sid");
const status = document.getElementById("status");
const sizeNote = document.getElementById("size");

const term = new Terminal({
  cursorBlink: true,
  convertEol: false,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
  fontSize: 14,
  scrollback: 5000,
  theme: { background: "#1d1f23", foreground: "#e6e6e6", cursor: "#8fb3ff" },
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById("terminal"));

let sid = params.get("sid");
if (!sid || !SID.test(sid)) sid = newSid("t-");
let socket = null;
let lastSeq = null; // of the output written for this sid
let retries = 0;
let retryTimer = null;
let pingTimer = null;

function showSize() {
  sizeNote.textContent = `${term.cols}×${term.rows}`;
  sizeNote.dataset.cols = String(term.cols);
  sizeNote.dataset.rows = String(term.rows);
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

function hangUp() {
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  if (socket) {
    const old = socket;
    socket = null; // its close event is then ignored
    old.close(1000);
  }
}

async function connect() {
  clearTimeout(retryTimer);
  sidInput.value = sid;
  keepInUrl("sid", sid);
  setStatus(status, "connecting", "connecting…");
  const url = await liveSocketUrl(`/ws/ide/terminal/${encodeURIComponent(sid)}`, {
    cols: term.cols,
    rows: term.rows,
    project_id: projectId,
    since: lastSeq,
  });
  hangUp(); // after the await: of two quick calls, the last one's socket stays
  const ws = new WebSocket(url);
  socket = ws;
  ws.addEventListener("open", () => {
    if (socket !== ws) return;
    retries = 0;
    send({ type: "resize", cols: term.cols, rows: term.rows });
    pingTimer = setInterval(() => send({ type: "ping" }), PING_MS);
  });
  ws.addEventListener("message", (event) => {
    if (socket !== ws) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === "close") {
      // API Gateway's way to close with a code; the socket's own close then says nothing.
      hangUp();
      onClose(frame.code, frame.reason);
      return;
    }
    onFrame(frame);
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return; // closed on purpose (another session, a reconnect)
    socket = null;
    clearInterval(pingTimer);
    onClose(event.code, event.reason);
  });
}

function onFrame(frame) {
  if (typeof frame.seq === "number") {
    if (lastSeq !== null && frame.seq <= lastSeq) return; // already on screen
    lastSeq = frame.seq;
  }
  switch (frame.type) {
    case "ready":
      // A new shell numbers on from wherever its sid's counter is: nothing to skip.
      if (!frame.reattached) lastSeq = null;
      setStatus(
        status,
        "open",
        frame.reattached ? `attached to session ${sid}` : `connected: session ${sid}`,
      );
      showMessage("");
      term.focus();
      break;
    case "output":
      term.write(frame.data);
      break;
    case "exit":
      term.write(`\r\n\x1b[2m[the shell exited with code ${frame.code}]\x1b[0m\r\n`);
      setStatus(status, "closed", `the shell exited with code ${frame.code}`);
      break;
    case "error":
      showMessage(`The server did not take a frame: ${frame.message || frame.code}`);
      break;
    default:
      break; // pong and anything newer
  }
}

function onClose(code, reason) {
  const text = describeClose(code, reason);
  if (code === 1000 && status.dataset.state === "closed") return; // after "exit": said already
  if (isFinalClose(code)) {
    setStatus(status, "closed", `closed ${text}`);
    if (code !== 1000) showMessage(`The terminal closed with ${text}.`);
    return;
  }
  if (retries >= RETRY_MS.length) {
    setStatus(status, "closed", `closed ${text}`);
    showMessage(`The terminal closed with ${text}. Use Reconnect to try again.`);
    return;
  }
  const wait = RETRY_MS[retries++];
  setStatus(status, "retrying", `closed ${text}; reconnecting in ${(wait / 1000).toFixed(1)} s`);
  retryTimer = setTimeout(connect, wait);
}

function openSession(next) {
  if (!SID.test(next)) {
    showMessage("A session id is 1 to 64 letters, digits, - or _.");
    return;
  }
  if (next !== sid) {
    sid = next;
    lastSeq = null;
    term.reset();
  }
  retries = 0;
  connect();
}

term.onData((data) => send({ type: "input", data }));
term.onResize(({ cols, rows }) => {
  showSize();
  send({ type: "resize", cols, rows });
});

let fitQueued = false;
window.addEventListener("resize", () => {
  if (fitQueued) return;
  fitQueued = true;
  requestAnimationFrame(() => {
    fitQueued = false;
    fit.fit();
  });
});

document.getElementById("session").addEventListener("submit", (event) => {
  event.preventDefault();
  openSession(sidInput.value.trim());
});
document.getElementById("new-session").addEventListener("click", () => openSession(newSid("t-")));
document.getElementById("reconnect").addEventListener("click", () => {
  retries = 0;
  connect();
});

if (projectId) {
  document.getElementById("project-note").textContent = ` It starts with project ${projectId}'s files.`;
}

fit.fit();
showSize();
sidInput.value = sid;
const config = await consoleConfig();
if (config.door === "aws") {
  // Lambda cannot hold a process: the route answers 503 there.
  setStatus(status, "closed", "not available");
  showMessage(
    "The terminal runs on the local server only: on AWS the route refuses with 503 (4503).",
    "info",
  );
} else {
  connect();
}
