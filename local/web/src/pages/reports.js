// Reports: run a security scan, an analysis, a Figma token extraction or Kubernetes
// manifests here, or open a stored report by id (?report=<id>); jobs reattach (?job=).
import { api, describeError } from "../lib/api.js";
import { codeEditor, languageOf } from "../lib/code.js";
import { byId, clear, h } from "../lib/dom.js";
import { jobPanel, runEndpoint } from "../lib/jobs.js";
import { analysisView, figmaView, kubernetesView, reportView, securityView } from "../lib/reportviews.js";
import { mountShell, showMessage } from "../lib/shell.js";

mountShell("reports");

const out = byId("report");
const jobArea = byId("job-area");
const editor = codeEditor(byId("code-editor"), { language: "python", height: "18rem" });
byId("code-path").addEventListener("change", () => editor.setLanguage(languageOf(byId("code-path").value) || "python"));

let tab = "security";
function selectTab(name) {
  tab = name;
  for (const button of document.querySelectorAll(".tabs button")) button.setAttribute("aria-selected", String(button.dataset.tab === name));
  for (const node of document.querySelectorAll("[data-tabs]")) node.hidden = !node.dataset.tabs.split(" ").includes(name);
  byId("run-code").textContent = name === "analysis" ? "Analyze" : "Scan";
  const url = new URL(window.location.href);
  url.searchParams.set("tab", name);
  window.history.replaceState(null, "", url);
}
for (const button of document.querySelectorAll(".tabs button")) button.addEventListener("click", () => selectTab(button.dataset.tab));

const VIEWS = { security_scan: securityView, analyze: analysisView, figma: figmaView, kubernetes: kubernetesView };

function show(view) {
  clear(out);
  out.append(view);
}

function setJobInUrl(id) {
  const url = new URL(window.location.href);
  url.searchParams.set("job", id);
  window.history.replaceState(null, "", url);
}

async function run(path, body, kind, button) {
  showMessage("");
  clear(out);
  clear(jobArea);
  button.disabled = true;
  try {
    await runEndpoint(path, body, {
      jobArea,
      kind,
      onJob: setJobInUrl,
      onResult: (answer) => show(VIEWS[kind](answer)),
    });
  } catch (err) {
    showMessage(describeError(err));
  } finally {
    button.disabled = false;
  }
}

byId("form-code").addEventListener("submit", (event) => {
  event.preventDefault();
  const body = {};
  const project = byId("code-project").value.trim();
  if (project) body.project_id = project;
  else body.code = editor.value;
  if (byId("code-path").value.trim()) body.path = byId("code-path").value.trim();
  if (tab === "security") {
    body.fix = byId("scan-fix").checked;
    run("/api/security/scan", body, "security_scan", byId("run-code"));
  } else {
    run("/api/analyze", body, "analyze", byId("run-code"));
  }
});

byId("form-figma").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = byId("figma-file").files[0];
  const key = byId("figma-key").value.trim();
  if (!file && !key) {
    showMessage("Choose a Figma JSON file, or give a file key and a token.");
    return;
  }
  // The file goes as the body itself (the server parses it as it streams in).
  const body = file ? new Blob([file], { type: "application/json" }) : { file_key: key, token: byId("figma-token").value };
  run("/api/figma/analyze", body, "figma", byId("run-figma"));
});

byId("form-kubernetes").addEventListener("submit", (event) => {
  event.preventDefault();
  const app = {};
  const text = (id) => byId(id).value.trim();
  if (text("k8s-name")) app.name = text("k8s-name");
  if (text("k8s-image")) app.image = text("k8s-image");
  if (text("k8s-ports")) app.ports = text("k8s-ports").split(/[\s,]+/).filter(Boolean).map(Number);
  if (text("k8s-replicas")) app.replicas = Number(text("k8s-replicas"));
  if (text("k8s-host")) app.host = text("k8s-host");
  const body = { app, kubernetes_version: text("k8s-version") || "1.30", refine: byId("k8s-refine").checked };
  if (text("k8s-dockerfile")) body.dockerfile = byId("k8s-dockerfile").value;
  if (text("k8s-compose")) body.compose = byId("k8s-compose").value;
  if (text("k8s-instructions")) body.instructions = text("k8s-instructions");
  run("/api/kubernetes/generate", body, "kubernetes", byId("run-kubernetes"));
});

async function openReport(id) {
  showMessage("");
  clear(out);
  try {
    const report = await api(`/api/reports/${encodeURIComponent(id)}`);
    show(reportView(report));
  } catch (err) {
    showMessage(describeError(err));
  }
}

byId("form-open").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = byId("report-id").value.trim();
  if (id) openReport(id);
});

const params = new URLSearchParams(window.location.search);
selectTab(params.get("report") ? "open" : params.get("tab") || "security");
if (params.get("report")) {
  byId("report-id").value = params.get("report");
  openReport(params.get("report"));
}
if (params.get("job")) {
  jobPanel(jobArea, params.get("job"), {
    onFinished: (job) => {
      if (job.status === "succeeded" && job.result && VIEWS[job.kind]) show(VIEWS[job.kind](job.result));
    },
  });
}
