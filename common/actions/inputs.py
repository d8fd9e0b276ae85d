"""The input every code action shares, and the workspace it resolves to.

A caller gives one of ``code`` (one file), ``files`` (``{path: content}``) or
``project_id`` (a stored project's files). Paths are checked by the same rule as
everywhere else (:func:`common.memory.models.check_path`): relative, normalised,
no ``..``, no absolute path, no NUL — a bad one is a 422 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
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
        False,
        alias="async",
        description=(
            "Answer 202 with a job instead of waiting. When not given, analyze and"
            " security scan of a whole project (`project_id` without `path`) are jobs."
        ),
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

    def runs_as_job(self) -> bool:
        """For actions over every file (analyze, security scan): ``options.async`` when
        given; otherwise a job for a whole project, whose work outlives a request."""
        if "run_async" in self.options.model_fields_set:
            return self.options.run_async
        return self.project_id is not None and self.path is None

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


@dataclass(frozen=True)
class Repository:
    """A stored project an action works in: its whole tree on disk, where the checks
    and the repository's own tests run (the model sees only the named files and the
    index's closest chunks)."""

    project_id: UUID
    tree: Path


@dataclass
class Workspace:
    """The files an action works on, and which of them it is about.

    With a ``repository``, ``files`` holds the named file and the tests that touch it
    (what the model reads and the action may change), not the whole tree.
    """

    files: dict[str, str]
    primary: str
    language: str | None
    options: ActionOptions = field(default_factory=ActionOptions)
    repository: Repository | None = None

    @property
    def tests(self) -> list[str]:
        return sorted(p for p in self.files if is_test_path(p))

    @property
    def sources(self) -> list[str]:
        return sorted(p for p in self.files if not is_test_path(p))


def load_workspace(
    request: CodeInput, *, owner_key_id: UUID | None, whole: bool = False
) -> Workspace:
    """The files of ``request`` and its primary file.

    The primary file is ``path`` when given, else the only (or first) source file in
    the request's language. A stored project gives its named file and the tests that
    touch it; with ``whole`` and no ``path`` (a scan, an analysis of the repository),
    every file it reads as code.

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
        if request.project_id is None or owner_key_id is None:
            raise NotFound("no such project")
        return _project_workspace(request, request.project_id, owner_key_id, whole=whole)
    if request.path is not None:
        if request.path not in files:
            raise InvalidInput(
                "`path` names a file that is not among the files",
                details={"fields": [_field("body.path", "unknown_file", "not among the files")]},
            )
        primary = request.path
    else:
        primary = _guess_primary(files, request.language)
    language = detect_language(files[primary], path=primary, hint=request.language)
    return Workspace(files, primary, language, request.options)


# The tests beside the named file that the model reads with it.
MAX_RELATED_TESTS = 4


def _project_workspace(
    request: CodeInput, project_id: UUID, owner_key_id: UUID, *, whole: bool
) -> Workspace:
    """The named file of a stored project (and the tests that touch it), with the tree."""
    from common.environments.testplan import discover_tests, tests_for
    from common.errors import InvalidInput
    from common.memory.project_index import StoredFiles
    from common.projects import get_project
    from common.storage.tree import local_tree
    from common.stores.projects_store import get_project_store

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=get_project_store())
    stored = StoredFiles(project_id)
    paths = sorted(stored.hashes())
    if not paths:
        raise InvalidInput(
            "the project has no stored files: upload, link a git remote or index files first",
            details={"fields": [_field("body.project_id", "no_files", "no stored files")]},
        )
    if request.path is not None:
        if request.path not in paths:
            raise InvalidInput(
                "`path` names a file that is not among the project's files read as code",
                details={"fields": [_field("body.path", "unknown_file", "not among the files")]},
            )
        primary = request.path
    else:
        primary = _guess_primary(dict.fromkeys(paths, ""), request.language)
    tree = local_tree(project_id)
    if whole and request.path is None:
        files = dict(stored.read(paths))
        language = detect_language(files[primary], path=primary, hint=request.language)
        return Workspace(files, primary, language, request.options, Repository(project_id, tree))
    related = [
        p for p in tests_for(discover_tests(tree), tree, [primary]) if p in paths and p != primary
    ][:MAX_RELATED_TESTS]
    files = dict(stored.read([primary, *related]))
    language = detect_language(files[primary], path=primary, hint=request.language)
    return Workspace(files, primary, language, request.options, Repository(project_id, tree))


def _field(path: str, kind: str, message: str) -> dict[str, str]:
    return {"path": path, "type": kind, "message": message}


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
