"""The input every code action shares, and the workspace it resolves to.

A caller gives one of ``code`` (one file), ``files`` (``{path: content}``) or
``project_id`` (a stored project's files). Paths are checked by the same rule as
everywhere else (:func:`common.memory.models.check_path`): relative, normalised,
no ``..``, no absolute path, no NUL — a bad one is a 422 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.code.languages import LANGUAGES, detect_language, language_for_path
from common.memory.models import MAX_FILE_CHARS, MAX_FILES, FileContent, ProjectPath

MAX_INSTRUCTIONS_CHARS = 8000


class ActionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_attempts: int | None = Field(
        None, ge=1, le=10, description="Model attempts before giving up (default MAX_ATTEMPTS)."
    )
    run_tests: bool = Field(True, description="Run the tests in the sandbox (when there are any).")
    timeout_s: float = Field(
        60, gt=0, le=600, description="Wall time for one sandbox run (tests, timings)."
    )
    run_async: bool = Field(
        False, alias="async", description="Answer 202 with a job instead of waiting."
    )


class CodeInput(BaseModel):
    """``code``, ``files`` or ``project_id`` (exactly one), and what to do with it."""

    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(None, max_length=MAX_FILE_CHARS, description="One file's content.")
    files: dict[ProjectPath, FileContent] | None = Field(
        None, max_length=MAX_FILES, description="Relative POSIX path -> content."
    )
    project_id: UUID | None = Field(None, description="A stored (indexed) project of this key.")
    path: ProjectPath | None = Field(
        None,
        description="The file to work on (with `files`/`project_id`), or the name `code` gets.",
    )
    language: str | None = Field(None, max_length=40, description="Detected when absent.")
    instructions: str = Field("", max_length=MAX_INSTRUCTIONS_CHARS)
    options: ActionOptions = Field(default_factory=ActionOptions)

    @model_validator(mode="after")
    def _one_source(self) -> CodeInput:
        given = [
            n for n in ("code", "files", "project_id") if getattr(self, n) not in (None, {}, "")
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of `code`, `files` or `project_id`"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.code is not None and not self.code.strip():
            raise ValueError("`code` must contain code, not only whitespace")
        return self


_TEST_DIRS = {"tests", "test", "__tests__", "spec"}


def is_test_path(path: str) -> bool:
    """A test file by the usual conventions of pytest and node:test/jest."""
    pure = PurePosixPath(path)
    name = pure.name
    if any(part in _TEST_DIRS for part in pure.parts[:-1]):
        return language_for_path(path) is not None
    if name == "conftest.py" or (name.startswith("test_") and name.endswith(".py")):
        return True
    if name.endswith("_test.py"):
        return True
    stem_parts = name.split(".")
    return len(stem_parts) >= 3 and stem_parts[-2] in ("test", "spec")


def default_filename(language: str | None, stem: str = "solution") -> str:
    lang = LANGUAGES.get(language or "")
    return stem + (lang.extensions[0] if lang and lang.extensions else ".txt")


@dataclass
class Workspace:
    """The files an action works on, and which of them it is about."""

    files: dict[str, str]
    primary: str
    language: str | None
    options: ActionOptions = field(default_factory=ActionOptions)

    @property
    def tests(self) -> list[str]:
        return sorted(p for p in self.files if is_test_path(p))

    @property
    def sources(self) -> list[str]:
        return sorted(p for p in self.files if not is_test_path(p))


def load_workspace(request: CodeInput, *, owner_key_id: UUID | None) -> Workspace:
    """The files of ``request`` and its primary file.

    The primary file is ``path`` when given, else the only (or first) source file in
    the request's language.

    Raises
    ------
    NotFound
        ``project_id`` is not a project of this key.
    InvalidInput
        ``path`` names a file that is not there; a project with no stored files.
    """
    from common.errors import InvalidInput, NotFound

    if request.code is not None:
        language = detect_language(request.code, path=request.path, hint=request.language)
        name = request.path or default_filename(language)
        return Workspace({name: request.code}, name, language, request.options)
    if request.files:
        files = dict(request.files)
    else:
        from common.projects import load_project_files

        if request.project_id is None or owner_key_id is None:
            raise NotFound("no such project")
        files = load_project_files(project_id=request.project_id, owner_key_id=owner_key_id)
        if not files:
            raise InvalidInput(
                "the project has no stored files: index its files first",
                details={
                    "fields": [
                        {
                            "path": "body.project_id",
                            "type": "no_files",
                            "message": "no stored files",
                        }
                    ]
                },
            )
    if request.path is not None:
        if request.path not in files:
            raise InvalidInput(
                "`path` names a file that is not among the files",
                details={
                    "fields": [
                        {
                            "path": "body.path",
                            "type": "unknown_file",
                            "message": "not among the files",
                        }
                    ]
                },
            )
        primary = request.path
    else:
        primary = _guess_primary(files, request.language)
    language = detect_language(files[primary], path=primary, hint=request.language)
    return Workspace(files, primary, language, request.options)


def _guess_primary(files: dict[str, str], hint: str | None) -> str:
    sources = sorted(p for p in files if not is_test_path(p)) or sorted(files)
    wanted = detect_language("", hint=hint)
    if wanted:
        same = [p for p in sources if language_for_path(p) == wanted]
        if same:
            return same[0]
    known = [p for p in sources if language_for_path(p) is not None]
    return (known or sources)[0]


def job_input(request: BaseModel) -> dict[str, Any]:
    """``request`` as the JSON a job carries (aliases kept, so it validates back)."""
    return request.model_dump(mode="json", by_alias=True, exclude_none=True)
