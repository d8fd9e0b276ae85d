// Code actions: pick one, give code (pasted or a stored project), run; the answer is
// drawn with highlighting, the diff side by side and the verification. Work that
// becomes a job is followed live and survives a reload (?job=<id> in the URL).
import { hasActionView, renderActionResult } from "../lib/actionviews.js";
import { describeError } from "../lib/api.js";
import { LANGUAGES, codeEditor, languageOf } from "../lib/code.js";
import { byId, clear, h } from "../lib/dom.js";
import { jobPanel, runEndpoint } from "../lib/jobs.js";
import { fillProjectPicker } from "../lib/projects.js";
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
      actionSelect.value = hasActionView(job.kind) ? job.kind : actionSelect.value;
      refreshFields();
      if (job.status === "succeeded" && job.result) render(job.kind, job.result, job);
    },
  });
}

// -- results: drawn by the shared views (src/lib/actionviews.js) -------------------

function render(action, answer, job) {
  renderActionResult(result, action, answer, job);
}
