// Code actions: pick one, give code (pasted or a stored project), run; the answer is
// drawn with highlighting, the diff side by side and the verification. Work that
// becomes a job is followed live and survives a reload (?job=<id> in the URL).
import { describeError, downloadFile } from "../lib/api.js";
import { LANGUAGES, codeBlock, codeEditor, languageOf } from "../lib/code.js";
import { sideBySideDiff } from "../lib/diff.js";
import { badge, byId, clear, h, table } from "../lib/dom.js";
import { jobPanel, runEndpoint } from "../lib/jobs.js";
import { fillProjectPicker } from "../lib/projects.js";
import { attemptsView, filteredFindings, severityBadge, verificationView, verifiedBanner } from "../lib/results.js";
import { mountShell, showMessage } from "../lib/shell.js";

mountShell("actions");

const form = byId("action-form");
const actionSelect = byId("action");
const languageSelect = byId("language");
const result = byId("result");
const jobArea = byId("job-area");
const running = byId("running");

for (const name of LANGUAGES) languageSelect.append(h("option", { value: name }, name));
// The key's projects from the server (and this tab's, should that list fail).
fillProjectPicker(byId("project-pick"));
byId("project-pick").addEventListener("change", (event) => {
  if (event.target.value) byId("project-id").value = event.target.value;
});

const editor = codeEditor(byId("code-editor"), { language: "python", height: "22rem" });
languageSelect.addEventListener("change", () => editor.setLanguage(languageSelect.value || languageOf(byId("path").value) || "python"));
byId("path").addEventListener("change", () => {
  if (!languageSelect.value) editor.setLanguage(languageOf(byId("path").value) || "python");
});

byId("migrate-preset").addEventListener("change", (event) => {
  const [source, target] = event.target.value.split(":");
  if (source) {
    byId("migrate-source").value = source;
    byId("migrate-target").value = target;
  }
});

const params = new URLSearchParams(window.location.search);
if (params.get("action")) actionSelect.value = params.get("action");

function source() {
  return form.querySelector("input[name=source]:checked").value;
}

// Show the fields of the chosen action only.
function refreshFields() {
  const action = actionSelect.value;
  for (const node of form.querySelectorAll("[data-show-for]")) node.hidden = !node.dataset.showFor.split(" ").includes(action);
  for (const node of form.querySelectorAll("[data-hide-for]")) node.hidden = node.dataset.hideFor.split(" ").includes(action);
  const fromProject = source() === "project" && action !== "generate";
  byId("project-area").hidden = !fromProject;
  // explain always needs the code; a project only adds context to it
  if (action !== "generate") byId("paste-area").hidden = fromProject && action !== "explain";
}
actionSelect.addEventListener("change", refreshFields);
for (const radio of form.querySelectorAll("input[name=source]")) radio.addEventListener("change", refreshFields);
refreshFields();

function value(id) {
  return byId(id).value.trim();
}

// The request body of the chosen action, as README's "Code actions" describes it.
function buildBody(action) {
  if (action === "generate") {
    const body = { spec: value("spec"), dockerfile: byId("gen-dockerfile").checked, kubernetes: byId("gen-kubernetes").checked };
    if (value("stack")) body.stack = value("stack");
    body.options = options(action);
    return body;
  }
  const body = {};
  const language = languageSelect.value;
  if (language) body.language = language;
  const fromProject = source() === "project";
  if (action === "explain") {
    body.code = editor.value;
    if (value("question")) body.question = value("question");
    if (fromProject && value("project-id")) body.project_id = value("project-id");
    return body;
  }
  if (fromProject) {
    body.project_id = value("project-id");
    if (value("project-path")) body.path = value("project-path");
  } else {
    body.code = editor.value;
    if (value("path")) body.path = value("path");
  }
  if (value("instructions")) body.instructions = value("instructions");
  body.options = options(action);
  if (action === "fix") {
    if (value("fix-error")) body.error = byId("fix-error").value;
    if (byId("fix-test").value.trim()) body.test = byId("fix-test").value;
  } else if (action === "migrate") {
    body.source = value("migrate-source");
    body.target = value("migrate-target");
    if (value("migrate-target-language")) body.target_language = value("migrate-target-language");
  } else if (action === "optimize") {
    body.goal = byId("optimize-goal").value;
    if (value("bench-function")) {
      body.benchmark = { function: value("bench-function"), args: value("bench-args") ? JSON.parse(value("bench-args")) : [] };
    }
  }
  return body;
}

function options(action) {
  const opts = { run_tests: byId("opt-tests").checked };
  if (value("opt-attempts")) opts.max_attempts = Number(value("opt-attempts"));
  if (value("opt-timeout")) opts.timeout_s = Number(value("opt-timeout"));
  if (byId("opt-async").checked && action !== "generate" && action !== "migrate") opts.async = true;
  return opts;
}

// Keep the job id in the URL so a reload (or a shared link in this tab) reattaches.
function setJobInUrl(id) {
  const url = new URL(window.location.href);
  if (id) url.searchParams.set("job", id);
  else url.searchParams.delete("job");
  window.history.replaceState(null, "", url);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const action = actionSelect.value;
  showMessage("");
  clear(result);
  clear(jobArea);
  setJobInUrl(null);
  let body;
  try {
    body = buildBody(action);
  } catch (err) {
    showMessage(`The benchmark arguments are not a JSON list: ${err.message}`);
    return;
  }
  byId("run").disabled = true;
  running.textContent = `running ${action}…`;
  try {
    await runEndpoint(`/api/${action}`, body, {
      jobArea,
      kind: action,
      label: action === "generate" ? body.spec.slice(0, 60) : body.path || "",
      onJob: setJobInUrl,
      onResult: (answer, job) => render(action, answer, job),
    });
  } catch (err) {
    showMessage(describeError(err));
  } finally {
    byId("run").disabled = false;
    running.textContent = "";
  }
});

// ?job=<id>: reattach to a job started earlier (in this tab or before a reload).
const jobId = params.get("job");
if (jobId) {
  jobPanel(jobArea, jobId, {
    onFinished: (job) => {
      actionSelect.value = job.kind in RENDER ? job.kind : actionSelect.value;
      refreshFields();
      if (job.status === "succeeded" && job.result) render(job.kind, job.result, job);
    },
  });
}

// -- results -----------------------------------------------------------------------

function render(action, answer, job) {
  clear(result);
  const draw = RENDER[action] || renderRaw;
  result.append(h("h2", {}, `Result: ${action}`));
  draw(answer, job);
  const meta = [answer.model && `model ${answer.model}`, answer.usage && `${answer.usage.total_tokens} tokens`, answer.duration_ms != null && `${answer.duration_ms} ms`];
  result.append(h("p", { class: "muted meta" }, meta.filter(Boolean).join(" · ")));
  result.append(h("details", {}, h("summary", {}, "Raw JSON"), h("pre", {}, JSON.stringify(answer, null, 2))));
}

function section(title, ...children) {
  const node = h("section", { class: "result-part" }, h("h3", {}, title), ...children);
  result.append(node);
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
  let block = null;
  const show = () => {
    clear(holder);
    block = codeBlock(holder, files[pick.value], languageOf(pick.value) || language);
  };
  pick.addEventListener("change", show);
  const box = h("div", { class: "files" }, paths.length > 1 ? pick : h("p", {}, h("code", {}, paths[0])), holder);
  queueMicrotask(show);
  return box;
}

function renderExplain(answer) {
  section("Explanation", proseWithCode(answer.explanation, answer.language)).classList.add("explanation");
  if (answer.sources && answer.sources.length) {
    section("Sources", h("ul", {}, answer.sources.map((s) => h("li", {}, h("code", {}, s.path || JSON.stringify(s))))));
  }
}

function renderChange(answer) {
  result.append(verifiedBanner(answer.verified, answer.verified ? `${answer.path} passes its checks` : "the last candidate did not pass its checks"));
  const diff = answer.verified ? answer.diff : answer.candidate_diff;
  section(answer.verified ? "Diff" : "Last candidate (unverified)", sideBySideDiff(diff)).classList.add("diff-part");
  section("Verification", verificationView(answer.verification)).classList.add("verification-part");
  if (answer.timings) section("Timings", h("pre", {}, JSON.stringify(answer.timings, null, 2)));
  if (answer.timing_problem) result.append(h("p", { class: "message error" }, answer.timing_problem));
  if (answer.verified && Object.keys(answer.files || {}).length) section("Files", filesView(answer.files, answer.language));
  const attempts = attemptsView(answer.attempts);
  if (attempts) result.append(attempts);
}

function renderTests(answer) {
  result.append(verifiedBanner(answer.verified, `${answer.passed.length} test(s) pass with ${answer.framework}`));
  const holder = h("div", { class: "code-holder" });
  section(`Tests: ${answer.test_path}`, holder);
  codeBlock(holder, answer.test_code, answer.language);
  if (answer.coverage_total != null) section("Coverage", h("p", {}, `${answer.coverage_total.toFixed(1)}% of lines`));
  if (answer.dropped && answer.dropped.length) {
    section("Dropped tests", table([["Test", (d) => h("code", {}, d.name)], ["Why", (d) => d.reason]], answer.dropped));
  }
  const attempts = attemptsView(answer.attempts);
  if (attempts) result.append(attempts);
}

function renderAnalyze(answer) {
  if (answer.summary) section("Summary", h("p", {}, answer.summary));
  if (answer.model_error) result.append(h("p", { class: "message error" }, `The model gave no review: ${answer.model_error}`));
  result.append(
    filteredFindings(
      [
        ["Severity", (f) => severityBadge(f.severity)],
        ["Where", (f) => (f.path ? `${f.path}${f.line ? `:${f.line}` : ""}` : "")],
        ["Finding", (f) => h("span", {}, h("strong", {}, f.title), f.rule ? h("code", {}, ` ${f.rule}`) : null)],
        ["Recommendation", (f) => f.recommendation],
        ["Source", (f) => f.source],
      ],
      answer.findings,
    ),
  );
  const m = answer.metrics;
  if (m) section("Metrics", h("p", {}, `${m.files} files, ${m.sloc} lines of code, ${m.functions} functions, average complexity ${m.average_complexity}, max ${m.max_complexity}`));
  if (answer.report_id) result.append(h("p", {}, h("a", { href: `/reports.html?report=${encodeURIComponent(answer.report_id)}` }, `Open report ${answer.report_id}`)));
}

function renderMigrate(answer) {
  result.append(verifiedBanner(answer.verified, `${answer.source} → ${answer.target}${answer.preset ? ` (${answer.preset})` : ""}`));
  section("Diff", sideBySideDiff(answer.diff)).classList.add("diff-part");
  if (answer.behaviours && answer.behaviours.length) {
    const outcome = (o) => badge(o, o === "passed" ? "ok" : o === "failed" ? "bad" : "");
    section(
      "Behaviours (each test on the source and on the result)",
      table([["Test", (b) => h("code", {}, b.name)], ["Source", (b) => outcome(b.source)], ["Migrated", (b) => outcome(b.migrated)], ["Note", (b) => b.message]], answer.behaviours),
    );
  }
  if (answer.tests && answer.tests.note) result.append(h("p", { class: "muted" }, answer.tests.note));
  section("Verification", verificationView(answer.verification)).classList.add("verification-part");
  section("Files", filesView(answer.files, null));
  const attempts = attemptsView(answer.attempts);
  if (attempts) result.append(attempts);
}

function renderGenerate(answer, job) {
  result.append(verifiedBanner(answer.verified, `${answer.name}: ${answer.tests.ran ? `${answer.tests.passed} passed, ${answer.tests.failed} failed` : "tests did not run"}`));
  if (answer.summary) result.append(h("p", {}, answer.summary));
  if (answer.error) result.append(h("p", { class: "message error" }, `${answer.error.code || "error"}: ${answer.error.message || ""}`));
  const url = answer.download_url || (job && `/api/jobs/${job.id}/files.zip`);
  if (url && Object.keys(answer.files || {}).length) {
    result.append(
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
  section("Files", filesView(answer.files, null));
  section(
    "Checks per file",
    table(
      [
        ["File", (f) => h("code", {}, f.path)],
        ["Checks", (f) => f.checks.map((c) => badge(`${c.name} ${c.ok ? "✓" : "✗"}`, c.ok ? "ok" : "bad"))],
      ],
      answer.verification || [],
    ),
  ).classList.add("verification-part");
  if (answer.failing && answer.failing.length) result.append(h("p", { class: "message error" }, `Still failing: ${answer.failing.join(", ")}`));
}

function renderRaw(answer) {
  result.append(h("pre", {}, JSON.stringify(answer, null, 2)));
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
