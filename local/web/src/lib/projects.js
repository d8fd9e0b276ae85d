// The projects this tab created or opened (there is no "list my projects" endpoint):
// kept in session storage so the Actions page can offer them.
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
