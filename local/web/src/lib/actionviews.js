// A code action's answer drawn into a container: explain's prose with highlighted code,
// fix/optimize's verdict, side-by-side diff and verification table, the tests written,
// analyze's findings, a migration, a generated project. The Actions page and the
// Projects page's file actions both draw their answers with renderActionResult.
import { describeError, downloadFile } from "./api.js";
import { codeBlock, languageOf } from "./code.js";
import { sideBySideDiff } from "./diff.js";
import { badge, clear, h, table } from "./dom.js";
import { applyPart } from "./changes.js";
import { attemptsView, filteredFindings, severityBadge, verificationView, verifiedBanner } from "./results.js";
import { showMessage } from "./shell.js";

// The actions that have their own view (anything else is shown as its JSON).
export function hasActionView(action) {
  return Object.prototype.hasOwnProperty.call(RENDER, action);
}

// Replace what `out` shows with the answer of `action` (job: the finished job, if any).
// options.onApplied(change) runs when a fix/optimize/test result has been applied to
// its project (see changes.js).
export function renderActionResult(out, action, answer, job = null, options = {}) {
  clear(out);
  const draw = RENDER[action] || renderRaw;
  out.append(h("h2", {}, `Result: ${action}`));
  draw(out, answer, job, options);
  const meta = [answer.model && `model ${answer.model}`, answer.usage && `${answer.usage.total_tokens} tokens`, answer.duration_ms != null && `${answer.duration_ms} ms`];
  out.append(h("p", { class: "muted meta" }, meta.filter(Boolean).join(" · ")));
  out.append(h("details", {}, h("summary", {}, "Raw JSON"), h("pre", {}, JSON.stringify(answer, null, 2))));
}

function section(out, title, ...children) {
  const node = h("section", { class: "result-part" }, h("h3", {}, title), ...children);
  out.append(node);
  return node;
}

// Prose with ``` fences: text as paragraphs, code blocks highlighted.
function proseWithCode(text, language) {
  const box = h("div", { class: "prose" });
  const parts = String(text).split(/```([\w+-]*)\n([\s\S]*?)```/g);
  for (let i = 0; i < parts.length; i += 3) {
    if (parts[i].trim()) box.append(h("div", { class: "text" }, parts[i].trim()));
    if (i + 2 < parts.length) {
      const holder = h("div", { class: "code-holder" });
      box.append(holder);
      codeBlock(holder, parts[i + 2].replace(/\n$/, ""), languageOf(parts[i + 1]) || language);
    }
  }
  return box;
}

function filesView(files, language) {
  const paths = Object.keys(files || {});
  if (!paths.length) return h("p", { class: "muted" }, "No files.");
  const holder = h("div", { class: "code-holder" });
  const pick = h("select", { class: "file-pick" }, paths.map((p) => h("option", { value: p }, p)));
  const show = () => {
    clear(holder);
    codeBlock(holder, files[pick.value], languageOf(pick.value) || language);
  };
  pick.addEventListener("change", show);
  const box = h("div", { class: "files" }, paths.length > 1 ? pick : h("p", {}, h("code", {}, paths[0])), holder);
  queueMicrotask(show);
  return box;
}

function renderExplain(out, answer) {
  section(out, "Explanation", proseWithCode(answer.explanation, answer.language)).classList.add("explanation");
  if (answer.sources && answer.sources.length) {
    section(out, "Sources", h("ul", {}, answer.sources.map((s) => h("li", {}, h("code", {}, s.path || JSON.stringify(s))))));
  }
  if (answer.revision) out.append(h("p", { class: "muted context-revision" }, "Project context from revision ", h("code", { title: answer.revision }, answer.revision.slice(0, 12))));
}

// A job of a project: its result can go back to the project (a branch, a revision).
function appendApply(out, answer, job, options) {
  const part = applyPart(job, { verified: Boolean(answer.verified), onApplied: options.onApplied });
  if (part) out.append(part);
}

function renderChange(out, answer, job, options) {
  out.append(verifiedBanner(answer.verified, answer.verified ? `${answer.path} passes its checks` : "the last candidate did not pass its checks"));
  const diff = answer.verified ? answer.diff : answer.candidate_diff;
  section(out, answer.verified ? "Diff" : "Last candidate (unverified)", sideBySideDiff(diff)).classList.add("diff-part");
  section(out, "Verification", verificationView(answer.verification)).classList.add("verification-part");
  if (answer.timings) section(out, "Timings", h("pre", {}, JSON.stringify(answer.timings, null, 2)));
  if (answer.timing_problem) out.append(h("p", { class: "message error" }, answer.timing_problem));
  if (answer.verified && Object.keys(answer.files || {}).length) section(out, "Files", filesView(answer.files, answer.language));
  const attempts = attemptsView(answer.attempts);
  if (attempts) out.append(attempts);
  appendApply(out, answer, job, options);
}

function renderTests(out, answer, job, options) {
  out.append(verifiedBanner(answer.verified, `${answer.passed.length} test(s) pass with ${answer.framework}`));
  const holder = h("div", { class: "code-holder" });
  section(out, `Tests: ${answer.test_path}`, holder);
  codeBlock(holder, answer.test_code, answer.language);
  if (answer.coverage_total != null) section(out, "Coverage", h("p", {}, `${answer.coverage_total.toFixed(1)}% of lines`));
  if (answer.dropped && answer.dropped.length) {
    section(out, "Dropped tests", table([["Test", (d) => h("code", {}, d.name)], ["Why", (d) => d.reason]], answer.dropped));
  }
  const attempts = attemptsView(answer.attempts);
  if (attempts) out.append(attempts);
  appendApply(out, answer, job, options);
}

function renderAnalyze(out, answer) {
  if (answer.summary) section(out, "Summary", h("p", {}, answer.summary));
  if (answer.model_error) out.append(h("p", { class: "message error" }, `The model gave no review: ${answer.model_error}`));
  out.append(
    filteredFindings(
      [
        ["Severity", (f) => severityBadge(f.severity)],
        ["Where", (f) => (f.path ? `${f.path}${f.line ? `:${f.line}` : ""}` : "")],
        ["Finding", (f) => h("span", {}, h("strong", {}, f.title), f.rule ? h("code", {}, ` ${f.rule}`) : null)],
        ["Recommendation", (f) => f.recommendation],
        ["Source", (f) => f.source],
      ],
      answer.findings || [],
    ),
  );
  const m = answer.metrics;
  if (m) section(out, "Metrics", h("p", {}, `${m.files} files, ${m.sloc} lines of code, ${m.functions} functions, average complexity ${m.average_complexity}, max ${m.max_complexity}`));
  if (answer.report_id) out.append(h("p", {}, h("a", { href: `/reports.html?report=${encodeURIComponent(answer.report_id)}` }, `Open report ${answer.report_id}`)));
}

function renderMigrate(out, answer) {
  out.append(verifiedBanner(answer.verified, `${answer.source} → ${answer.target}${answer.preset ? ` (${answer.preset})` : ""}`));
  section(out, "Diff", sideBySideDiff(answer.diff)).classList.add("diff-part");
  if (answer.behaviours && answer.behaviours.length) {
    const outcome = (o) => badge(o, o === "passed" ? "ok" : o === "failed" ? "bad" : "");
    section(
      out,
      "Behaviours (each test on the source and on the result)",
      table([["Test", (b) => h("code", {}, b.name)], ["Source", (b) => outcome(b.source)], ["Migrated", (b) => outcome(b.migrated)], ["Note", (b) => b.message]], answer.behaviours),
    );
  }
  if (answer.tests && answer.tests.note) out.append(h("p", { class: "muted" }, answer.tests.note));
  section(out, "Verification", verificationView(answer.verification)).classList.add("verification-part");
  section(out, "Files", filesView(answer.files, null));
  const attempts = attemptsView(answer.attempts);
  if (attempts) out.append(attempts);
}

function renderGenerate(out, answer, job) {
  out.append(verifiedBanner(answer.verified, `${answer.name}: ${answer.tests.ran ? `${answer.tests.passed} passed, ${answer.tests.failed} failed` : "tests did not run"}`));
  if (answer.summary) out.append(h("p", {}, answer.summary));
  if (answer.error) out.append(h("p", { class: "message error" }, `${answer.error.code || "error"}: ${answer.error.message || ""}`));
  const url = answer.download_url || (job && `/api/jobs/${job.id}/files.zip`);
  if (url && Object.keys(answer.files || {}).length) {
    out.append(
      h(
        "p",
        {},
        h(
          "button",
          {
            type: "button",
            id: "download-zip",
            onclick: () => downloadFile(url, `${answer.name || "project"}.zip`).catch((err) => showMessage(describeError(err))),
          },
          "Download the files (zip)",
        ),
      ),
    );
  }
  section(out, "Files", filesView(answer.files, null));
  section(
    out,
    "Checks per file",
    table(
      [
        ["File", (f) => h("code", {}, f.path)],
        ["Checks", (f) => f.checks.map((c) => badge(`${c.name} ${c.ok ? "✓" : "✗"}`, c.ok ? "ok" : "bad"))],
      ],
      answer.verification || [],
    ),
  ).classList.add("verification-part");
  if (answer.failing && answer.failing.length) out.append(h("p", { class: "message error" }, `Still failing: ${answer.failing.join(", ")}`));
}

function renderRaw(out, answer) {
  out.append(h("pre", {}, JSON.stringify(answer, null, 2)));
}

const RENDER = {
  explain: renderExplain,
  fix: renderChange,
  optimize: renderChange,
  test: renderTests,
  analyze: renderAnalyze,
  migrate: renderMigrate,
  generate: renderGenerate,
};
