// The jobs this tab started, each with its status, a live progress bar and Cancel;
// a finished one links to its result on the Actions page (or Reports/Projects).
import { byId, h } from "../lib/dom.js";
import { FINISHED, forgetJob, jobPanel, rememberJob, rememberedJobs } from "../lib/jobs.js";
import { mountShell } from "../lib/shell.js";

mountShell("jobs");

const list = byId("jobs");
const panels = new Map();

// Where a finished job's result is drawn.
function resultLink(job) {
  const actions = ["explain", "fix", "analyze", "test", "optimize", "migrate", "generate"];
  if (actions.includes(job.kind)) return `/actions.html?job=${job.id}`;
  if (["security_scan", "figma", "kubernetes"].includes(job.kind)) return `/reports.html?job=${job.id}`;
  if (job.project_id) return `/projects.html?project=${job.project_id}`;
  return null;
}

function show(entry) {
  if (panels.has(entry.id)) return;
  const holder = h("div", { class: "job-entry" });
  list.append(holder);
  const panel = jobPanel(holder, entry.id, {
    kind: entry.kind,
    onFinished: (job) => {
      const href = resultLink(job);
      if (href) panel.element.append(h("p", {}, h("a", { href, class: "open-result" }, "Open the result")));
    },
  });
  if (entry.label) panel.element.querySelector(".job-head").append(h("span", { class: "muted" }, entry.label));
  panels.set(entry.id, panel);
  byId("no-jobs").hidden = true;
}

const jobs = rememberedJobs();
for (const entry of jobs) show(entry);
byId("no-jobs").hidden = jobs.length > 0;

byId("open-job").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = byId("job-id").value.trim();
  if (!id) return;
  rememberJob(id, "", "");
  show({ id, kind: "" });
  byId("job-id").value = "";
});

byId("clear-finished").addEventListener("click", () => {
  for (const [id, panel] of panels) {
    if (FINISHED.includes(panel.element.dataset.status)) {
      forgetJob(id);
      panel.close();
      panel.element.parentElement.remove();
      panels.delete(id);
    }
  }
  byId("no-jobs").hidden = panels.size > 0;
});
