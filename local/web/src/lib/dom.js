// Small DOM helpers, so pages build their markup without a framework.
import "./widgets.css";

// h("div", {class: "x", onclick: fn, dataset: {id: 1}}, "text", child, [more]) -> element.
// A null/undefined/false child is skipped; strings become text nodes (never HTML).
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

// A green/red/amber badge: badge("verified", "ok").
export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

// A labelled <progress> whose label reads "42% step: message".
export function progressBar() {
  const bar = h("progress", { max: 100, value: 0 });
  const label = h("span", { class: "progress-label" }, "0%");
  const box = h("div", { class: "progress" }, bar, label);
  return {
    element: box,
    set(percent, text = "") {
      const value = Math.max(0, Math.min(100, Number(percent) || 0));
      bar.value = value;
      bar.dataset.percent = String(Math.round(value));
      label.textContent = `${Math.round(value)}%${text ? ` · ${text}` : ""}`;
    },
  };
}

// A table from rows: columns = [[header, row => cell (string or node)], ...].
export function table(columns, rows, { rowProps } = {}) {
  const head = h("tr", {}, columns.map(([label]) => h("th", {}, label)));
  const body = rows.map((row) =>
    h("tr", rowProps ? rowProps(row) : {}, columns.map(([, cell]) => h("td", {}, cell(row) ?? ""))),
  );
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

// Save text or a Blob as a file in the browser's downloads.
export function saveFile(name, content, type = "application/octet-stream") {
  const blob = content instanceof Blob ? content : new Blob([content], { type });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, style: { display: "none" } });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function formatBytes(size) {
  if (size === null || size === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(size);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}
