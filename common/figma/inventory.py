"""The component inventory: sets with their variant properties, components, instance counts.

Sources, merged by node id: the COMPONENT_SET and COMPONENT nodes found in the tree
(their ``componentPropertyDefinitions``, their variants' names such as
``"Size=Large, State=Hover"``, what their layers use), the file's ``components``
and ``componentSets`` maps (keys, descriptions, and library components that are
only used here, ``remote``), and the INSTANCE nodes' ``componentId``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from common.figma.collect import Collected, ComponentRecord, ValueRef
from common.figma.models import (
    ComponentEntry,
    ComponentProperty,
    Inventory,
    InventoryCounts,
    Variant,
)
from common.figma.tokens import TokenSet

MAX_LISTED = 2000
MAX_TOKENS_LISTED = 40


def variant_values(name: str) -> dict[str, str]:
    """``"Size=Large, State=Hover"`` → ``{"Size": "Large", "State": "Hover"}``."""
    values: dict[str, str] = {}
    for part in name.split(","):
        prop, sep, value = part.partition("=")
        if sep and prop.strip():
            values[prop.strip()] = value.strip()
    return values


def properties_of(
    definitions: dict[str, Any], variants: list[Variant] | None = None
) -> list[ComponentProperty]:
    """The properties of a set or component, from its definitions or else its variants' names."""
    found: list[ComponentProperty] = []
    for key, definition in definitions.items():
        if not isinstance(definition, dict):
            continue
        options = definition.get("variantOptions")
        found.append(
            ComponentProperty(
                name=key.split("#", 1)[0],
                key=key,
                type=str(definition.get("type") or ""),
                default=definition.get("defaultValue"),
                options=[str(o) for o in options] if isinstance(options, list) else None,
            )
        )
    if not found and variants:
        # Older files have no definitions: the variants' names say the same.
        options_by_prop: dict[str, list[str]] = {}
        for variant in variants:
            for prop, value in variant.values.items():
                listed = options_by_prop.setdefault(prop, [])
                if value not in listed:
                    listed.append(value)
        found = [
            ComponentProperty(name=prop, key=prop, type="VARIANT", default=opts[0], options=opts)
            for prop, opts in options_by_prop.items()
        ]
    return found


def _tokens(uses: Counter[ValueRef], tokens: TokenSet) -> list[str]:
    named: Counter[str] = Counter()
    for ref, n in uses.items():
        name = tokens.name_of(ref)
        if name is not None:
            named[name] += n
    return [name for name, _ in named.most_common(MAX_TOKENS_LISTED)]


def _meta(table: Any, node_id: str) -> dict[str, Any]:
    if isinstance(table, dict):
        entry = table.get(node_id)
        if isinstance(entry, dict):
            return entry
    return {}


def _entry(record: ComponentRecord, kind: str, meta: dict[str, Any]) -> ComponentEntry:
    return ComponentEntry(
        id=record.id,
        key=meta.get("key") if isinstance(meta.get("key"), str) else None,
        name=record.name,
        kind="set" if kind == "set" else "component",
        description=str(meta.get("description") or ""),
        page=record.page,
        width=record.width,
        height=record.height,
        layout=record.layout,
        texts=record.texts,
    )


def build_inventory(found: Collected, file_meta: dict[str, Any], tokens: TokenSet) -> Inventory:
    """Sets and components of the file, most used first."""
    components_meta = file_meta.get("components")
    sets_meta = file_meta.get("componentSets")
    instances = found.instances
    sets = [r for r in found.components if r.type == "COMPONENT_SET"]
    set_ids = {r.id for r in sets}
    variants_of: dict[str, list[ComponentRecord]] = {}
    singles: list[ComponentRecord] = []
    for record in found.components:
        if record.type != "COMPONENT":
            continue
        set_id = record.set_id or _meta(components_meta, record.id).get("componentSetId")
        if isinstance(set_id, str) and set_id in set_ids:
            variants_of.setdefault(set_id, []).append(record)
        else:
            singles.append(record)

    entries: list[ComponentEntry] = []
    variant_count = 0
    for record in sets:
        entry = _entry(record, "set", _meta(sets_meta, record.id))
        uses: Counter[ValueRef] = Counter(record.uses)
        variants = []
        for variant in variants_of.get(record.id, []):
            uses.update(variant.uses)
            if not entry.texts:
                entry.texts = variant.texts
            variants.append(
                Variant(
                    id=variant.id,
                    name=variant.name,
                    values=variant_values(variant.name),
                    instances=instances.get(variant.id, 0),
                )
            )
        variant_count += len(variants)
        if variants_of.get(record.id):
            # The set itself is a canvas for its variants; their layout is the component's.
            first = variants_of[record.id][0]
            entry.layout, entry.width, entry.height = first.layout, first.width, first.height
        entry.variants = variants
        entry.properties = properties_of(record.definitions, variants)
        entry.instances = sum(v.instances for v in variants)
        entry.tokens = _tokens(uses, tokens)
        entries.append(entry)
    for record in singles:
        entry = _entry(record, "component", _meta(components_meta, record.id))
        entry.properties = properties_of(record.definitions)
        entry.instances = instances.get(record.id, 0)
        entry.tokens = _tokens(record.uses, tokens)
        entries.append(entry)

    # Library components: known from the components map and from instances only.
    local = {r.id for r in found.components}
    remote = 0
    if isinstance(components_meta, dict):
        for component_id, meta in components_meta.items():
            if component_id in local or not isinstance(meta, dict):
                continue
            remote += 1
            set_name = _meta(sets_meta, str(meta.get("componentSetId") or "")).get("name")
            name = str(meta.get("name") or component_id)
            entries.append(
                ComponentEntry(
                    id=component_id,
                    key=meta.get("key") if isinstance(meta.get("key"), str) else None,
                    name=f"{set_name}/{name}" if set_name else name,
                    kind="component",
                    description=str(meta.get("description") or ""),
                    remote=True,
                    instances=instances.get(component_id, 0),
                )
            )

    entries.sort(key=lambda e: (e.remote, -e.instances, e.name.lower(), e.id))
    counts = InventoryCounts(
        sets=len(sets),
        variants=variant_count,
        components=len(singles),
        remote=remote,
        instances=sum(instances.values()),
        listed_limit_reached=len(entries) > MAX_LISTED,
    )
    return Inventory(components=entries[:MAX_LISTED], counts=counts)
