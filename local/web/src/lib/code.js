// CodeMirror 6 editors: an editable one for pasted code, read-only ones for answers.
import { basicSetup } from "codemirror";
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import { Compartment, EditorState } from "@codemirror/state";
import { EditorView } from "@codemirror/view";

export const LANGUAGES = [
  "python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "csharp",
  "ruby", "php", "bash", "kotlin", "html", "css", "json", "yaml", "dockerfile",
];

const BY_EXTENSION = {
  py: "python", js: "javascript", mjs: "javascript", cjs: "javascript", jsx: "javascript",
  ts: "typescript", tsx: "tsx", json: "json",
};

// The language of a path or a name; highlighting exists for Python and JS/TS (JSON
// reads well as JavaScript); every other language is shown plain.
export function languageOf(nameOrPath) {
  if (!nameOrPath) return null;
  if (LANGUAGES.includes(nameOrPath)) return nameOrPath;
  const ext = String(nameOrPath).split(".").pop().toLowerCase();
  return BY_EXTENSION[ext] || null;
}

function highlighting(language) {
  switch (language) {
    case "python":
      return python();
    case "javascript":
    case "json":
      return javascript();
    case "typescript":
      return javascript({ typescript: true });
    case "tsx":
      return javascript({ typescript: true, jsx: true });
    default:
      return [];
  }
}

const theme = EditorView.theme({
  "&": { border: "1px solid var(--line)", background: "#fff", fontSize: "0.9rem" },
  ".cm-scroller": { fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace' },
});

// An editor in `parent`: {view, value (get/set), setLanguage(name)}.
export function codeEditor(parent, { doc = "", language = null, readOnly = false, height = null } = {}) {
  const lang = new Compartment();
  const extensions = [basicSetup, theme, lang.of(highlighting(language))];
  if (readOnly) extensions.push(EditorState.readOnly.of(true), EditorView.editable.of(false));
  if (height) extensions.push(EditorView.theme({ ".cm-scroller": { maxHeight: height, minHeight: "6rem" } }));
  const view = new EditorView({ parent, state: EditorState.create({ doc, extensions }) });
  // Built before layout settled (a result drawn in one go): measure again once painted.
  requestAnimationFrame(() => view.requestMeasure());
  return {
    view,
    get value() {
      return view.state.doc.toString();
    },
    set value(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setLanguage(name) {
      view.dispatch({ effects: lang.reconfigure(highlighting(name)) });
    },
  };
}

// A read-only, highlighted block of code (an answer, a generated file).
export function codeBlock(parent, text, language, { height = "28rem" } = {}) {
  return codeEditor(parent, { doc: text, language, readOnly: true, height });
}
