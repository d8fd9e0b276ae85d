// Reports drawn as tables: analysis, security (with SARIF), Figma tokens (swatches and
// type samples), Kubernetes manifests with their findings. Each view returns an element.
import { codeBlock } from "./code.js";
import { sideBySideDiff } from "./diff.js";
import { badge, h, saveFile, table } from "./dom.js";
import { attemptsView, filteredFindings, severityBadge } from "./results.js";

function sameText(a, b) {
  const norm = (t) => String(t || "").toLowerCase().replace(/[^a-z0-9]+/g, "");
  return norm(b).startsWith(norm(a)) || norm(a).startsWith(norm(b));
}

function where(f) {
  return f.path ? `${f.path}${f.line ? `:${f.line}` : ""}` : "";
}

function checksTable(checks) {
  if (!checks || !checks.length) return null;
  return h(
    "details",
    { class: "checks" },
    h("summary", {}, `Tools (${checks.filter((c) => c.ran).length} of ${checks.length} ran)`),
    table(
      [
        ["Tool", (c) => h("code", {}, c.name)],
        ["Ran", (c) => (c.ran ? badge("ran", "ok") : badge("did not run", "warn"))],
        ["Findings", (c) => String(c.findings ?? "")],
        ["Note", (c) => c.message || ""],
      ],
      checks,
    ),
  );
}

function summaryBadges(summary) {
  return h(
    "p",
    { class: "summary" },
    Object.entries(summary || {}).map(([severity, count]) => h("span", { class: "summary-item" }, severityBadge(severity), ` ${count} `)),
  );
}

function reportLine(report) {
  if (!report.report_id) return null;
  return h(
    "p",
    { class: "muted report-id" },
    "Report ",
    h("a", { href: `/reports.html?report=${encodeURIComponent(report.report_id)}` }, h("code", {}, report.report_id)),
    report.created_at ? ` · ${new Date(report.created_at).toLocaleString()}` : "",
  );
}

export function analysisView(report) {
  const m = report.metrics;
  return h(
    "div",
    { class: "report analysis" },
    reportLine(report),
    report.summary ? h("p", { class: "report-summary" }, report.summary) : null,
    report.model_error ? h("p", { class: "message error" }, `The model gave no review: ${report.model_error}`) : null,
    m ? h("p", { class: "muted" }, `${m.files} files · ${m.sloc} lines of code · ${m.functions} functions · average complexity ${m.average_complexity} (max ${m.max_complexity})`) : null,
    filteredFindings(
      [
        ["Severity", (f) => severityBadge(f.severity)],
        ["Where", where],
        ["Finding", (f) => h("span", {}, h("strong", {}, f.title), f.rule ? h("code", {}, ` ${f.rule}`) : null)],
        ["Recommendation", (f) => f.recommendation],
        ["Source", (f) => f.source],
      ],
      report.findings || [],
    ),
    checksTable(report.checks),
  );
}

export function securityView(report) {
  const sarif = report.sarif
    ? h(
        "button",
        {
          type: "button",
          class: "secondary download-sarif",
          onclick: () => saveFile(`security-${report.report_id || "scan"}.sarif`, JSON.stringify(report.sarif, null, 2), "application/sarif+json"),
        },
        "Download SARIF",
      )
    : null;
  const fixes = (report.fixes || []).map((fix) =>
    h(
      "section",
      { class: "fix" },
      h("h4", {}, `${fix.finding} · ${fix.path} `, badge(fix.status, fix.status === "confirmed" ? "ok" : "warn")),
      h("p", { class: "muted" }, fix.reason),
      sideBySideDiff(fix.diff),
    ),
  );
  return h(
    "div",
    { class: "report security" },
    reportLine(report),
    h("div", { class: "row" }, summaryBadges(report.summary), h("span", { class: "muted" }, `files scanned: ${report.files_scanned ?? "?"}`), sarif),
    filteredFindings(
      [
        ["Severity", (f) => severityBadge(f.severity)],
        ["Rule", (f) => h("span", {}, h("code", {}, f.rule), h("div", { class: "muted" }, [f.tool, ...(f.also_reported_by || [])].join(", ")))],
        ["Where", where],
        ["Problem", (f) => h("span", {}, h("strong", {}, f.title || f.message), f.title && !sameText(f.title, f.message) ? h("div", {}, f.message) : null)],
        ["Recommendation", (f) => f.recommendation + (f.fixed_in && f.fixed_in.length ? ` (fixed in ${f.fixed_in.join(", ")})` : "")],
      ],
      report.findings || [],
    ),
    fixes.length ? h("section", {}, h("h3", {}, "Proposed fixes"), fixes) : null,
    checksTable(report.checks),
  );
}

// Every token of a DTCG document: [{name, type, value}] (groups flattened with dots).
export function flattenTokens(node, prefix = [], inherited = null, out = []) {
  if (!node || typeof node !== "object") return out;
  const type = node.$type || inherited;
  if ("$value" in node) {
    out.push({ name: prefix.join("."), type, value: node.$value });
    return out;
  }
  for (const [key, child] of Object.entries(node)) {
    if (!key.startsWith("$")) flattenTokens(child, [...prefix, key], type, out);
  }
  return out;
}

function cssValue(value) {
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

export function figmaView(report) {
  const tokens = flattenTokens(report.tokens || {});
  const colors = tokens.filter((t) => t.type === "color");
  const type = tokens.filter((t) => t.type === "typography");
  const others = tokens.filter((t) => t.type !== "color" && t.type !== "typography");
  const name = (report.document && report.document.name) || "tokens";
  const download = (label, file, content, mime) =>
    h("button", { type: "button", class: "secondary", onclick: () => saveFile(file, content, mime) }, label);
  const inv = report.inventory || {};
  return h(
    "div",
    { class: "report figma" },
    reportLine(report),
    h(
      "p",
      { class: "downloads" },
      download("Download tokens (JSON)", `${name}.tokens.json`, JSON.stringify(report.tokens, null, 2), "application/json"),
      " ",
      report.css ? download("CSS variables", `${name}.tokens.css`, report.css, "text/css") : null,
      " ",
      report.tailwind_config ? download("tailwind.config.js", "tailwind.config.js", report.tailwind_config, "text/javascript") : null,
    ),
    h("h3", {}, `Colours (${colors.length})`),
    h(
      "div",
      { class: "swatches" },
      colors.map((t) =>
        h(
          "div",
          { class: "swatch", title: t.name },
          h("div", { class: "chip", style: { background: String(t.value) } }),
          h("div", { class: "name" }, t.name),
          h("div", { class: "value muted" }, String(t.value)),
        ),
      ),
    ),
    h("h3", {}, `Typography (${type.length})`),
    type.map((t) => {
      const v = t.value || {};
      const style = {
        fontFamily: Array.isArray(v.fontFamily) ? v.fontFamily.join(", ") : v.fontFamily || "",
        fontSize: v.fontSize || "",
        fontWeight: String(v.fontWeight || ""),
        lineHeight: v.lineHeight ? String(v.lineHeight) : "",
        letterSpacing: v.letterSpacing || "",
      };
      return h(
        "div",
        { class: "type-sample" },
        h("div", { style }, "The quick brown fox jumps over the lazy dog"),
        h("div", { class: "meta" }, `${t.name} · ${style.fontFamily} ${v.fontSize || ""} / ${v.fontWeight || ""}${v.lineHeight ? ` · line ${v.lineHeight}` : ""}`),
      );
    }),
    others.length
      ? h(
          "section",
          {},
          h("h3", {}, `Other tokens (${others.length})`),
          table(
            [
              ["Token", (t) => h("code", {}, t.name)],
              ["Type", (t) => t.type || ""],
              ["Value", (t) => cssValue(t.value)],
            ],
            others,
          ),
        )
      : null,
    h(
      "p",
      { class: "muted" },
      inv.counts
        ? `Components: ${inv.counts.components} · sets: ${inv.counts.sets} (${inv.counts.variants} variants) · library: ${inv.counts.remote} · instances: ${inv.counts.instances}`
        : "",
    ),
  );
}

export function kubernetesView(answer) {
  const v = answer.validation || {};
  const schema = v.schema || {};
  const bp = v.best_practices || {};
  const yamlHolder = h("div", { class: "code-holder" });
  const view = h(
    "div",
    { class: "report kubernetes" },
    h(
      "p",
      { class: "row" },
      schema.ran ? badge(schema.ok ? `schema ${schema.version} valid` : `schema ${schema.version}: ${(schema.errors || []).length} errors`, schema.ok ? "ok" : "bad") : badge("schema not checked", "warn"),
      badge(`best practices: ${bp.errors ?? 0} errors, ${bp.warnings ?? 0} warnings, ${bp.info ?? 0} info`, bp.ok ? "ok" : "bad"),
      answer.refined ? badge("refined by the model", "ok") : badge("deterministic base", ""),
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => saveFile(`${(answer.objects && answer.objects[0] && answer.objects[0].name) || "manifests"}.yaml`, answer.yaml, "application/yaml") },
        "Download YAML",
      ),
    ),
    (answer.notes || []).length ? h("ul", { class: "notes" }, answer.notes.map((n) => h("li", {}, n))) : null,
    h("p", {}, "Objects: ", (answer.objects || []).map((o) => h("code", { class: "object" }, `${o.kind}/${o.name} `))),
    filteredFindings(
      [
        ["Severity", (f) => severityBadge(f.severity)],
        ["Object", (f) => h("code", {}, f.object)],
        ["Rule", (f) => h("code", {}, f.rule)],
        ["Problem", (f) => f.message + (f.line ? ` (line ${f.line})` : "")],
        ["Fix", (f) => f.fix],
      ],
      answer.findings || [],
      { severities: ["error", "warning", "info"] },
    ),
    (answer.external_refs || []).length
      ? h("section", {}, h("h3", {}, "Create these first"), table([["Kind", (r) => r.kind], ["Name", (r) => h("code", {}, r.name)], ["Keys", (r) => (r.keys || []).join(", ")]], answer.external_refs))
      : null,
    Object.keys(answer.inferred || {}).length
      ? h("details", {}, h("summary", {}, "Inferred fields"), table([["Field", (r) => h("code", {}, r[0])], ["From", (r) => r[1]]], Object.entries(answer.inferred)))
      : null,
    h("h3", {}, "Manifests"),
    yamlHolder,
    attemptsView(answer.attempts),
  );
  queueMicrotask(() => codeBlock(yamlHolder, answer.yaml || "", "yaml", { height: "32rem" }));
  return view;
}

// Any stored report, by its kind.
export function reportView(report) {
  if (report.kind === "security") return securityView(report);
  if (report.kind === "analysis") return analysisView(report);
  if (report.kind === "figma") return figmaView(report);
  if (report.yaml !== undefined && report.validation) return kubernetesView(report);
  return h("pre", {}, JSON.stringify(report, null, 2));
}
