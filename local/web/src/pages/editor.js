// Shared editor: CodeMirror 6 on a Yjs document that y-websocket keeps in step with
// /ws/collaboration/{sid}. yCollab binds the text, and draws the others' cursors and
// selections from the awareness states (each tab announces its name and colour).
// Behind API Gateway, which refuses binary frames from clients, the socket is a
// Base64Socket: the same messages as base64 text frames (?frames=base64).
import "../live.css";
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import { Compartment, EditorState } from "@codemirror/state";
import { EditorView, basicSetup } from "codemirror";
import { yCollab } from "y-codemirror.next";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import {
  Base64Socket,
  collaborationEndpoint,
  describeClose,
  keepInUrl,
  newSid,
  setStatus,
} from "../lib/live.js";
import { mountShell, showMessage } from "../lib/shell.js";

mountShell("editor");

const SID = /^[A-Za-z0-9_.:-]{1,128}$/;
const NAME_KEY = "orchestrator.editorName";
// Text name shared with the other clients of the route (the Python tests use "text").
const TEXT = "text";
const COLOURS = ["#2457c5", "#b42318", "#1f7a3d", "#a15c00", "#7a3fc4", "#0f7c8c", "#c2185b", "#5d6b00"];
const LANGUAGES = { python: () => python(), javascript: () => javascript(), text: () => [] };

const params = new URLSearchParams(window.location.search);
const sidInput = document.getElementById("sid");
const nameInput = document.getElementById("user-name");
const languageSelect = document.getElementById("language");
const status = document.getElementById("status");
const people = document.getElementById("people");
const shareLink = document.getElementById("share-link");
const language = new Compartment();
// The others' names on their cursors all the time, not only on hover.
const namesShown = EditorView.theme({
  ".cm-ySelectionInfo": {
    opacity: 1,
    fontFamily: "system-ui, sans-serif",
    borderRadius: "3px 3px 3px 0",
    padding: "0 4px",
  },
});

let name = sessionStorage.getItem(NAME_KEY) || `Guest ${Math.floor(100 + Math.random() * 900)}`;
nameInput.value = name;
if (params.get("lang") in LANGUAGES) languageSelect.value = params.get("lang");

let session = null; // {sid, doc, provider, view}

function colourOf(clientId) {
  return COLOURS[clientId % COLOURS.length];
}

function announce() {
  if (!session) return;
  const color = colourOf(session.doc.clientID);
  session.provider.awareness.setLocalStateField("user", { name, color, colorLight: `${color}33` });
}

function showPeople() {
  if (!session) return;
  const { awareness } = session.provider;
  const items = [];
  for (const [clientId, state] of awareness.getStates()) {
    if (!state || !state.user) continue;
    const item = document.createElement("li");
    item.dataset.client = String(clientId);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = state.user.color || "#999";
    const label = document.createElement("span");
    label.textContent = state.user.name || "Anonymous";
    item.append(swatch, label);
    if (clientId === awareness.clientID) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "(you)";
      item.append(you);
    }
    items.push(item);
  }
  people.replaceChildren(...items);
}

function close() {
  if (!session) return;
  session.provider.destroy(); // tells the others this tab left
  session.view.destroy();
  session.doc.destroy();
  session = null;
}

async function open(sid) {
  if (!SID.test(sid)) {
    showMessage("A document id is 1 to 128 letters, digits, . : - or _.");
    return;
  }
  const endpoint = await collaborationEndpoint(sid);
  close(); // after the await: of two quick opens, the last one stays
  showMessage("");
  sidInput.value = sid;
  keepInUrl("sid", sid);
  shareLink.value = new URL(`/editor.html?sid=${encodeURIComponent(sid)}`, window.location.href).href;
  setStatus(status, "connecting", "connecting…");

  const doc = new Y.Doc();
  const provider = new WebsocketProvider(endpoint.serverUrl, endpoint.room, doc, {
    params: endpoint.params,
    // 4401/4403/4404... are for a person to act on; y-websocket stops on 44xx by itself.
    maxBackoffTime: 10_000,
    // API Gateway closes on binary frames (1003): there the messages go as base64 text.
    WebSocketPolyfill: endpoint.door === "aws" ? Base64Socket : WebSocket,
  });
  const ytext = doc.getText(TEXT);
  const undoManager = new Y.UndoManager(ytext);
  const view = new EditorView({
    parent: document.getElementById("editor"),
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        basicSetup,
        language.of(LANGUAGES[languageSelect.value]()),
        yCollab(ytext, provider.awareness, { undoManager }),
        namesShown,
      ],
    }),
  });
  session = { sid, doc, provider, view };
  announce();

  provider.on("status", ({ status: state }) => {
    if (session?.provider !== provider) return;
    if (state === "connected") setStatus(status, "open", "connected, syncing…");
    else if (state === "connecting") setStatus(status, "connecting", "connecting…");
  });
  provider.on("sync", (synced) => {
    if (session?.provider !== provider || !synced) return;
    setStatus(status, "open", `editing ${sid}`);
    view.contentDOM.dataset.synced = "true";
  });
  provider.on("connection-close", (event) => {
    if (session?.provider !== provider || !event) return;
    if (event.code === 1003) {
      // API Gateway's WebSocket APIs refuse binary frames. Behind it this page sends
      // base64 text (it knows the door from /config.json), so a 1003 means a gateway
      // that the page took for the local server.
      showMessage(
        "The socket closed with 1003: the server refused binary frames. Behind API Gateway " +
          'the editor sends text frames only when /config.json says {"door": "aws"} ' +
          "(make deploy-console writes it).",
      );
    }
    setStatus(status, "retrying", `closed ${describeClose(event.code, event.reason)}; reconnecting`);
  });
  provider.on("closed", ({ code, reason }) => {
    if (session?.provider !== provider) return;
    setStatus(status, "closed", `closed ${describeClose(code, reason)}`);
    showMessage(`The shared document closed with ${describeClose(code, reason)}.`);
  });
  provider.awareness.on("change", showPeople);
  showPeople();
}

document.getElementById("document").addEventListener("submit", (event) => {
  event.preventDefault();
  open(sidInput.value.trim());
});
document.getElementById("new-document").addEventListener("click", () => open(newSid("doc-")));
nameInput.addEventListener("input", () => {
  name = nameInput.value.trim() || "Anonymous";
  sessionStorage.setItem(NAME_KEY, name);
  announce();
});
languageSelect.addEventListener("change", () => {
  keepInUrl("lang", languageSelect.value);
  if (session) {
    session.view.dispatch({
      effects: language.reconfigure(LANGUAGES[languageSelect.value]()),
    });
  }
});
document.getElementById("copy-link").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(shareLink.value);
    showMessage("Link copied.", "ok");
  } catch {
    shareLink.select(); // the clipboard is not ours here: let the person copy it
  }
});

const first = params.get("sid");
open(first && SID.test(first) ? first : newSid("doc-"));
