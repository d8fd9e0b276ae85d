// A finished fix/optimize/test job's result applied to its project
// (POST /api/projects/{id}/changes): a pushed branch, and a pull or merge request,
// on a project linked to git; a new revision of the stored files on an uploaded one.
// The change itself is a job (project_change), followed like the console's others.
import { api, describeError } from "./api.js";
import { badge, h } from "./dom.js";
import { jobPanel, rememberJob } from "./jobs.js";
import { showMessage } from "./shell.js";

// Whether the project is linked to git. GET /api/projects/{id} says so in `git` (null:
// not linked); a server whose answer has no `git` is asked for its git status instead.
async function isLinked(projectId) {
  const project = await api(`/api/projects/${encodeURIComponent(projectId)}`);
  if ("git" in project) return Boolean(project.git);
  try {
    const status = await api(`/api/projects/${encodeURIComponent(projectId)}/git/status`);
    return Boolean(status.link && status.link.remote_url);
  } catch {
    return project.source && project.source.kind === "git";
  }
}

function shortSha(sha) {
  return h("code", { class: "rev", title: sha, dataset: { revision: sha } }, sha.length > 12 ? sha.slice(0, 12) : sha);
}

function field(label, input, cls = "") {
  return h("div", { class: cls }, h("label", {}, label, input));
}

// What the change became (ChangeOutput).
function changeView(out) {
  const rows = [];
  const row = (label, value, key) => rows.push(h("dt", {}, label), h("dd", { dataset: { fact: key } }, value));
  if (out.target === "git") {
    row("Branch", h("code", {}, out.branch), "branch");
    if (out.base) row("For", h("code", {}, out.base), "base");
    row("Commit", shortSha(out.commit || out.revision), "commit");
  } else {
    row("Revision", shortSha(out.revision), "revision");
  }
  row("Files", h("ul", {}, (out.files || []).map((p) => h("li", {}, h("code", {}, p)))), "files");
  if (out.pull_request) {
    const pr = out.pull_request;
    const label = pr.kind === "merge_request" ? `Merge request !${pr.number}` : `Pull request #${pr.number}`;
    row(pr.kind === "merge_request" ? "Merge request" : "Pull request", h("a", { href: pr.url, class: "pull-request", target: "_blank", rel: "noopener" }, label), "pull-request");
  }
  return h(
    "div",
    { class: "change-result", dataset: { target: out.target, revision: out.revision } },
    h(
      "p",
      {},
      out.target === "git" ? `Pushed as branch ${out.branch}` : "Saved as a new revision of the stored files",
      " ",
      out.forced ? badge("unverified (forced)", "bad") : badge("verified", "ok"),
    ),
    h("dl", { class: "facts-list" }, rows),
    out.message ? h("details", { class: "change-message" }, h("summary", {}, "Commit message"), h("pre", {}, out.message)) : null,
  );
}

// The "Apply" part of a result, or null when there is nothing to apply it to (no job,
// not finished, no project). verified: whether the result passed its checks.
// onApplied(output) runs once the change job has succeeded.
export function applyPart(job, { verified, onApplied = () => {} } = {}) {
  if (!job || !job.project_id || job.status !== "succeeded") return null;
  const projectId = job.project_id;
  const branch = h("input", { class: "apply-branch", name: "branch", placeholder: "derived: ao/<kind>-<file>-…", size: 28 });
  const message = h("input", { class: "apply-message", name: "message", placeholder: "unset: the model writes one from the diff" });
  const open = h("input", { type: "checkbox", class: "apply-open", name: "open" });
  const force = h("input", { type: "checkbox", class: "apply-force", name: "force" });
  const run = h("button", { type: "submit", class: "apply-run", disabled: true }, "Apply");
  const branchField = field("Branch (optional)", branch);
  const openField = h("label", { class: "inline apply-open-label" }, open, " Open pull request");
  const forceField = verified
    ? null
    : h(
        "div",
        { class: "apply-force-box" },
        h("label", { class: "inline apply-force-label" }, force, " Apply anyway (force)"),
        h("p", { class: "muted apply-force-note" }, "The result did not pass its checks: the commit will say it is unverified."),
      );
  const where = h("p", { class: "muted apply-where" }, "Finding out where the project's files come from…");
  const error = h("p", { class: "message error apply-error", hidden: true });
  const jobs = h("div", { class: "apply-jobs" });
  const result = h("div", { class: "apply-result" });
  const form = h(
    "form",
    { class: "apply-form" },
    h("div", { class: "row" }, branchField, field("Commit message (optional)", message, "grow")),
    openField,
    forceField,
    h("p", {}, run),
  );
  const part = h("section", { class: "result-part apply-part", dataset: { state: "loading", projectId } }, h("h3", {}, "Apply"), where, form, error, jobs, result);
  let linked = false;

  isLinked(projectId).then(
    (isGit) => {
      linked = isGit;
      part.dataset.target = isGit ? "git" : "stored";
      branchField.hidden = !isGit;
      openField.hidden = !isGit;
      run.textContent = isGit ? "Apply as branch" : "Save as new revision";
      where.textContent = isGit
        ? "The change goes on a new branch of the linked repository, pushed there (and, if asked, a pull or merge request)."
        : "The project's files were uploaded: the change becomes a new revision of them (the old one stays downloadable).";
      run.disabled = false;
      part.dataset.state = "ready";
    },
    (err) => {
      where.textContent = "";
      error.textContent = describeError(err);
      error.hidden = false;
      part.dataset.state = "failed";
    },
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    showMessage("");
    const body = { job_id: job.id };
    if (linked && branch.value.trim()) body.branch = branch.value.trim();
    if (message.value.trim()) body.message = message.value.trim();
    if (linked && open.checked) body.open = "pull_request";
    if (!verified && force.checked) body.force = true;
    run.disabled = true;
    part.dataset.state = "applying";
    let accepted;
    try {
      accepted = await api(`/api/projects/${encodeURIComponent(projectId)}/changes`, { method: "POST", body });
    } catch (err) {
      // 409: unverified without force; 422: a PR on an uploaded project, nothing to apply…
      const text = describeError(err);
      error.textContent = text;
      error.hidden = false;
      showMessage(text);
      run.disabled = false;
      part.dataset.state = "refused";
      return;
    }
    rememberJob(accepted.job_id, "project_change", job.kind || "");
    jobs.replaceChildren();
    result.replaceChildren();
    jobPanel(jobs, accepted.job_id, {
      kind: "project_change",
      onFinished: (done) => {
        run.disabled = false;
        if (done.status === "succeeded" && done.result) {
          result.replaceChildren(changeView(done.result));
          part.dataset.state = "applied";
          onApplied(done.result);
        } else {
          const why = done.error ? `${done.error.code || "failed"}: ${done.error.message || ""}` : `The change job ${done.status}.`;
          error.textContent = why;
          error.hidden = false;
          part.dataset.state = "failed";
        }
      },
    });
  });
  return part;
}
