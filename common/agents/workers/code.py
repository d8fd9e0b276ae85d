"""The code worker: writes one source file of a plan, parsed and linted."""

from __future__ import annotations

from common.agents import prompts
from common.agents.checked import ask_code
from common.agents.workers import WorkerName, WorkerOutput, WorkTask
from common.code.languages import language_for_path
from common.models.base import Message, ModelClient

# Files the architect gives as context are cut to this many characters each: a
# dependency's interface is at its top, and the window is precious.
MAX_INPUT_CHARS = 6000


class CodeWorker:
    name: WorkerName = "code"

    def run(
        self,
        task: WorkTask,
        *,
        model: ModelClient,
        project: str,
        inputs: dict[str, str],
        feedback: str | None = None,
        max_attempts: int = 3,
    ) -> WorkerOutput:
        language = language_for_path(task.path)
        messages = prompts.render(
            "generate_file",
            project=project,
            path=task.path,
            description=task.description,
            language=language or "",
            feedback=f"\nA previous version failed this check; fix it:\n{feedback}\n"
            if feedback
            else "",
        )
        messages[-1:-1] = input_messages(inputs)
        checked = ask_code(
            model,
            messages,
            task=f"generate {task.path}",
            language=language,
            max_attempts=max_attempts,
        )
        return WorkerOutput(
            files={task.path: checked.value.code},
            checks=checked.value.checks,
            usage=checked.usage,
            attempts=len(checked.attempts),
        )


def input_messages(inputs: dict[str, str]) -> list[Message]:
    """The files a task depends on, as context the window may cut (never the task)."""
    if not inputs:
        return []
    files = "\n\n".join(
        f"`{path}`:\n```\n{content[:MAX_INPUT_CHARS]}\n```" for path, content in inputs.items()
    )
    return [Message(role="user", content=prompts.text("project_files", files=files), context=True)]
