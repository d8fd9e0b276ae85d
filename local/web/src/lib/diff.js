// A unified diff (as `git apply` takes it) parsed and drawn side by side: the old file
// on the left, the new on the right, removed and added lines paired up.
import { h } from "./dom.js";

export function parseUnifiedDiff(text) {
  const files = [];
  let file = null;
  let hunk = null;
  let oldLine = 0;
  let newLine = 0;
  let oldLeft = 0; // lines of the current hunk still to read (its header's counts)
  let newLeft = 0;
  for (const line of String(text || "").split("\n")) {
    if (hunk && (oldLeft > 0 || newLeft > 0)) {
      const mark = line[0];
      const body = line.slice(1);
      if (mark === "-") {
        hunk.rows.push({ type: "del", old: oldLine++, text: body });
        oldLeft -= 1;
      } else if (mark === "+") {
        hunk.rows.push({ type: "add", new: newLine++, text: body });
        newLeft -= 1;
      } else if (mark === " " || line === "") {
        hunk.rows.push({ type: "same", old: oldLine++, new: newLine++, text: body });
        oldLeft -= 1;
        newLeft -= 1;
      }
      // "\ No newline at end of file" carries nothing to show
      continue;
    }
    if (line.startsWith("diff --git ")) {
      file = { oldPath: null, newPath: null, hunks: [] };
      files.push(file);
      hunk = null;
    } else if (line.startsWith("--- ")) {
      if (!file || file.hunks.length) {
        file = { oldPath: null, newPath: null, hunks: [] };
        files.push(file);
      }
      file.oldPath = cleanPath(line.slice(4));
      hunk = null;
    } else if (line.startsWith("+++ ") && file) {
      file.newPath = cleanPath(line.slice(4));
    } else if (line.startsWith("@@")) {
      const match = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
      if (!match) continue;
      if (!file) {
        file = { oldPath: null, newPath: null, hunks: [] };
        files.push(file);
      }
      oldLine = Number(match[1]);
      newLine = Number(match[3]);
      oldLeft = match[2] === undefined ? 1 : Number(match[2]);
      newLeft = match[4] === undefined ? 1 : Number(match[4]);
      hunk = { header: line, rows: [] };
      file.hunks.push(hunk);
    }
  }
  return files.filter((f) => f.hunks.length);
}

function cleanPath(raw) {
  const path = raw.split("\t")[0].trim();
  if (path === "/dev/null") return null;
  return path.replace(/^[ab]\//, "");
}

// Removed and added runs side by side: [[left, right], ...] where either may be null.
function pairRows(rows) {
  const pairs = [];
  let i = 0;
  while (i < rows.length) {
    if (rows[i].type === "same") {
      pairs.push([rows[i], rows[i]]);
      i += 1;
      continue;
    }
    const dels = [];
    const adds = [];
    while (i < rows.length && rows[i].type === "del") dels.push(rows[i++]);
    while (i < rows.length && rows[i].type === "add") adds.push(rows[i++]);
    for (let k = 0; k < Math.max(dels.length, adds.length); k += 1) {
      pairs.push([dels[k] || null, adds[k] || null]);
    }
  }
  return pairs;
}

function cells(row, side) {
  if (!row) return [h("td", { class: "ln empty" }), h("td", { class: "code empty" })];
  const kind = row.type === "same" ? "same" : row.type;
  return [h("td", { class: `ln ${kind}` }, String(side === "old" ? row.old : row.new)), h("td", { class: `code ${kind}` }, row.text)];
}

// The element showing `diffText` side by side; "No changes" when it is empty.
export function sideBySideDiff(diffText) {
  const files = parseUnifiedDiff(diffText);
  if (!files.length) return h("p", { class: "muted" }, "No changes.");
  return h(
    "div",
    { class: "diff" },
    files.map((file) => {
      const title =
        file.oldPath && file.newPath && file.oldPath !== file.newPath
          ? `${file.oldPath} → ${file.newPath}`
          : file.newPath || file.oldPath || "(file)";
      const body = [];
      for (const hunk of file.hunks) {
        body.push(h("tr", { class: "hunk" }, h("td", { colspan: 4 }, hunk.header)));
        for (const [left, right] of pairRows(hunk.rows)) {
          body.push(h("tr", {}, cells(left, "old"), cells(right, "new")));
        }
      }
      return h(
        "section",
        { class: "diff-file" },
        h("h4", {}, title),
        h(
          "table",
          { class: "diff-table" },
          h("colgroup", {}, h("col", { class: "ln-col" }), h("col"), h("col", { class: "ln-col" }), h("col")),
          h("tbody", {}, body),
        ),
      );
    }),
  );
}
