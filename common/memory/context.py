"""Context for an agent from a project's semantic memory."""

from __future__ import annotations

from uuid import UUID

from common.agents.universal import ContextSnippet

# The query embeds the question and the code; the model only reads the first
# 128 tokens of it anyway.
MAX_QUERY_CHARS = 2000


def project_context(
    *, project_id: UUID, owner_key_id: UUID, query: str, k: int = 5
) -> list[ContextSnippet]:
    """The ``k`` indexed chunks of the caller's project closest to ``query``.

    Raises
    ------
    NotFound
        Not the caller's project (or no such project).
    """
    return project_context_at(project_id=project_id, owner_key_id=owner_key_id, query=query, k=k)[0]


def project_context_at(
    *, project_id: UUID, owner_key_id: UUID, query: str, k: int = 5
) -> tuple[list[ContextSnippet], str | None]:
    """:func:`project_context` and the revision of the completed index it came from."""
    from common.projects import search_project
    from common.stores.projects_store import get_project_store

    found = search_project(
        project_id=project_id,
        owner_key_id=owner_key_id,
        query=query.strip()[:MAX_QUERY_CHARS] or "code",
        k=k,
        store=get_project_store(),
    )
    snippets = [
        ContextSnippet(path=h.path, start_line=h.start_line, end_line=h.end_line, text=h.text)
        for h in found.hits
    ]
    return snippets, found.revision
