// The key's projects: listed by the server (GET /api/projects, newest first, paged by a
// cursor). The projects this tab created or opened are also kept in session storage,
// so a picker still offers them when the list cannot be read.
import { api } from "./api.js";

const LIST = "orchestrator.projects";

export function rememberedProjects() {
  try {
    return JSON.parse(sessionStorage.getItem(LIST) || "[]");
  } catch {
    return [];
  }
}

export function rememberProject(id, name) {
  const projects = rememberedProjects().filter((p) => p.id !== id);
  projects.unshift({ id, name });
  sessionStorage.setItem(LIST, JSON.stringify(projects.slice(0, 50)));
}

export function forgetProject(id) {
  sessionStorage.setItem(LIST, JSON.stringify(rememberedProjects().filter((p) => p.id !== id)));
}

// One page of the key's projects: {items, next_cursor}.
export function listProjects({ limit = 20, cursor = null } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (cursor) query.set("cursor", cursor);
  return api(`/api/projects?${query}`);
}

// Fill a <select> with the key's projects (the newest 100), then any of this tab's
// the list did not include. Resolves to the error when the server's list failed.
export async function fillProjectPicker(select, { blank = "—" } = {}) {
  const seen = new Set();
  const options = [];
  let failure = null;
  try {
    const page = await listProjects({ limit: 100 });
    for (const p of page.items) {
      seen.add(p.id);
      options.push([p.id, `${p.name} (${p.id.slice(0, 8)})`]);
    }
  } catch (err) {
    failure = err;
  }
  for (const p of rememberedProjects()) {
    if (!seen.has(p.id)) options.push([p.id, `${p.name} (${p.id.slice(0, 8)})`]);
  }
  const keep = select.value;
  select.replaceChildren(new Option(blank, ""), ...options.map(([id, label]) => new Option(label, id)));
  if (keep && options.some(([id]) => id === keep)) select.value = keep;
  select.dataset.loaded = failure ? "tab" : "server";
  return failure;
}
