"""Schema validation of manifests against one Kubernetes version, offline.

The schemas come from the ``kubernetes-validate`` package (Apache-2.0), which ships
the OpenAPI-derived JSON schemas of every Kubernetes minor version it knows (1.25
to 1.37 in 1.37.0), so nothing is downloaded. They are its "strict" variants: an
unknown field (``replica:`` for ``replicas:``) is an error, as ``kubectl apply
--validate=strict`` would say.

It is 108 MB installed (the schemas, twice per version), so it lives in the
``local`` extra and not in the Lambda layer (about 235 of 250 MB used already). Where
it is not installed, :func:`validate_schema` says so (``ran: false``) instead of
pretending, and the versions accepted are :data:`KNOWN_VERSIONS`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

DEFAULT_VERSION = "1.30"
# The minor versions kubernetes-validate 1.37 ships: the ones accepted where it is
# not installed (the Lambda functions), so a version means the same on both doors.
KNOWN_VERSIONS = tuple(f"1.{minor}" for minor in range(25, 38))
NOT_INSTALLED = (
    "kubernetes-validate is not installed here (it is in the `local` extra: its 108 MB"
    " of schemas do not fit the Lambda layer), so the schema was not checked"
)
_VERSION = re.compile(r"^v?(1\.\d{1,3})(\.\d{1,3})?$")
MAX_MESSAGE_CHARS = 300


class SchemaError(BaseModel):
    object: str = Field(description="`Kind/name`, or `document N`.")
    path: str = Field(description="Where in the object, e.g. `spec.replicas`.")
    message: str
    line: int | None = None


class SchemaReport(BaseModel):
    ran: bool
    version: str
    ok: bool | None = Field(description="None when the schema could not be checked here.")
    errors: list[SchemaError] = []
    reason: str | None = Field(None, description="Why it did not run, when it did not.")


@lru_cache(maxsize=1)
def available() -> bool:
    """Is kubernetes-validate installed (and are its schemas there)?"""
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def supported_versions() -> tuple[str, ...]:
    """The ``major.minor`` versions a schema can be checked against here, oldest first."""
    if not available():
        return KNOWN_VERSIONS
    from kubernetes_validate.utils import all_versions

    found = {".".join(v.split(".")[:2]) for v in all_versions()}
    return tuple(sorted(found, key=lambda v: tuple(int(p) for p in v.split("."))))


def check_version(version: str) -> str:
    """``version`` as ``major.minor`` ("v1.30.2" → "1.30").

    Raises
    ------
    ValueError
        Not a version, or one there are no schemas for; the message lists the
        supported ones.
    """
    match = _VERSION.match(version.strip())
    supported = supported_versions()
    if match is None or match.group(1) not in supported:
        raise ValueError(
            f"Kubernetes {version!r} is not supported; supported versions:"
            f" {', '.join(supported)} (default {DEFAULT_VERSION})"
        )
    return match.group(1)


def validate_schema(yaml_text: str, version: str) -> SchemaReport:
    """Validate every document of ``yaml_text`` against the schema of ``version``.

    A document of a kind (or apiVersion) the version does not have is an error too:
    ``autoscaling/v2beta2`` on 1.30 does not exist, whatever its fields. Errors carry
    the line of the field they are about. YAML that does not parse is one error
    (the best-practice review reports it in detail).
    """
    import yaml

    from common.agents.workers.kubernetes import line_of, load_documents

    version = check_version(version)
    if not available():
        return SchemaReport(ran=False, version=version, ok=None, reason=NOT_INSTALLED)
    try:
        documents = [(d, n) for d, n in load_documents(yaml_text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        error = SchemaError(
            object="the text",
            path="",
            message=f"the YAML does not parse: {getattr(exc, 'problem', None) or exc}",
            line=mark.line + 1 if mark is not None else None,
        )
        return SchemaReport(ran=True, version=version, ok=False, errors=[error])
    errors: list[SchemaError] = []
    for index, (data, node) in enumerate(documents, start=1):
        for path, message in _document_errors(data, version):
            errors.append(
                SchemaError(
                    object=_name_of(data, index),
                    path=".".join(str(p) for p in path),
                    message=message[:MAX_MESSAGE_CHARS],
                    line=line_of(node, *path),
                )
            )
    return SchemaReport(ran=True, version=version, ok=not errors, errors=errors)


def _document_errors(data: Any, version: str) -> list[tuple[list[str | int], str]]:
    import kubernetes_validate
    from kubernetes_validate.utils import VersionNotSupportedError

    if not isinstance(data, dict):
        return [([], "a manifest must be a mapping with apiVersion, kind and metadata")]
    if not isinstance(data.get("apiVersion"), str) or not isinstance(data.get("kind"), str):
        return [([], "apiVersion and kind must be set (strings)")]
    try:
        kubernetes_validate.validate(data, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [(list(exc.absolute_path), str(exc.message))]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            (
                ["apiVersion"],
                f"Kubernetes {version} has no {data['kind']} in {data['apiVersion']}",
            )
        ]
    except (kubernetes_validate.InvalidSchemaError, VersionNotSupportedError) as exc:
        # A broken install, not the manifest's fault; still nothing passes unchecked.
        return [([], f"the schema could not be read: {getattr(exc, 'message', exc)}")]
    except Exception as exc:  # jsonschema/referencing raise assorted errors on odd input
        return [([], f"the document could not be validated: {exc}")]
    return []


def _name_of(data: Any, index: int) -> str:
    if isinstance(data, dict):
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if data.get("kind") and name:
            return f"{data['kind']}/{name}"
    return f"document {index}"
