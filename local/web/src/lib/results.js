// How answers are drawn: verification, attempts, findings tables with a severity filter.
import { badge, h, table } from "./dom.js";

export const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const SEVERITY_KIND = { critical: "bad", high: "bad", error: "bad", medium: "warn", warning: "warn", low: "", info: "" };

export function severityBadge(severity) {
  return badge(severity || "?", `sev-${severity} ${SEVERITY_KIND[severity] ?? ""}`);
}

// A big, unmissable verified / not verified line.
export function verifiedBanner(verified, detail = "") {
  return h(
    "div",
    { class: `verdict ${verified ? "ok" : "bad"}`, dataset: { verified: String(Boolean(verified)) } },
    h("strong", {}, verified ? "✓ Verified" : "✗ Not verified"),
    detail ? h("span", {}, ` — ${detail}`) : null,
  );
}

function outcome(check) {
  if (!check) return h("span", { class: "muted" }, "—");
  if (check.ran === false) return badge("not run", "");
  return check.ok ? badge("pass", "ok") : badge("fail", "bad");
}

// verification {before, after, still_failing, attempts, tests_ran, no_tests_reason,
// isolation}: one row
// per check with its outcome before and after the change.
export function verificationView(verification) {
  if (!verification) return null;
  const names = [];
  const before = new Map();
  const after = new Map();
  for (const check of verification.before || []) {
    if (!names.includes(check.name)) names.push(check.name);
    before.set(check.name, check);
  }
  for (const check of verification.after || []) {
    if (!names.includes(check.name)) names.push(check.name);
    after.set(check.name, check);
  }
  const failing = new Set((verification.still_failing || []).map((c) => c.name));
  const rows = names.map((name) => ({ name, before: before.get(name), after: after.get(name), failing: failing.has(name) }));
  const message = (row) => {
    const check = row.failing ? (verification.still_failing || []).find((c) => c.name === row.name) : row.after || row.before;
    return check && !check.ok && check.message ? check.message + (check.line ? ` (line ${check.line})` : "") : "";
  };
  return h(
    "div",
    { class: "verification" },
    h(
      "p",
      { class: "facts" },
      `Attempts: ${verification.attempts ?? "?"} · tests ran: ${verification.tests_ran ? "yes" : "no"}`,
      verification.no_tests_reason ? ` (${verification.no_tests_reason})` : "",
      verification.isolation ? ` · sandbox: ${verification.isolation}` : "",
      ` · still failing: ${(verification.still_failing || []).length}`,
    ),
    rows.length
      ? table(
          [
            ["Check", (r) => h("code", {}, r.name)],
            ["Before", (r) => outcome(r.before)],
            ["After", (r) => (r.failing ? badge("still failing", "bad") : outcome(r.after))],
            ["Message", message],
          ],
          rows,
          { rowProps: (r) => ({ class: r.failing ? "failing" : "" }) },
        )
      : h("p", { class: "muted" }, "No checks ran."),
  );
}

// attempts [{number, ok, problems, duration_ms, cached}]
export function attemptsView(attempts) {
  if (!attempts || !attempts.length) return null;
  return h(
    "details",
    { class: "attempts" },
    h("summary", {}, `Model attempts (${attempts.length})`),
    h(
      "ol",
      {},
      attempts.map((a) =>
        h(
          "li",
          {},
          a.ok ? badge("ok", "ok") : badge("rejected", "bad"),
          a.duration_ms != null ? ` ${a.duration_ms} ms` : "",
          a.cached ? " (cached)" : "",
          a.problems && a.problems.length ? h("ul", {}, a.problems.map((p) => h("li", {}, p))) : null,
        ),
      ),
    ),
  );
}

// A findings table with a checkbox per severity present (with counts); unticking
// hides that severity's rows. columns as for dom.table; rows carry .severity.
export function filteredFindings(columns, findings, { severities = SEVERITIES, title = "Findings" } = {}) {
  const counts = {};
  for (const f of findings) counts[f.severity] = (counts[f.severity] || 0) + 1;
  const order = [...severities, ...Object.keys(counts).filter((s) => !severities.includes(s))];
  const grid = table(columns, findings, { rowProps: (f) => ({ dataset: { severity: f.severity } }) });
  const empty = h("p", { class: "muted", hidden: findings.length > 0 }, "No findings.");
  const shown = h("span", { class: "muted shown-count" });
  const apply = () => {
    const on = new Set([...filter.querySelectorAll("input:checked")].map((box) => box.value));
    let visible = 0;
    for (const row of grid.tBodies[0].rows) {
      row.hidden = !on.has(row.dataset.severity);
      if (!row.hidden) visible += 1;
    }
    shown.textContent = `${visible} of ${findings.length} shown`;
  };
  const filter = h(
    "fieldset",
    { class: "severity-filter" },
    h("legend", {}, "Severity"),
    order
      .filter((s) => counts[s] || severities.includes(s))
      .map((s) =>
        h(
          "label",
          { class: "inline" },
          h("input", { type: "checkbox", value: s, checked: true, name: `severity-${s}`, onchange: apply }),
          ` ${s} (${counts[s] || 0})`,
        ),
      ),
    shown,
  );
  apply();
  return h("section", { class: "findings" }, h("h3", {}, title), filter, grid, empty);
}
