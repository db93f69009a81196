"""Paths a brain supplies stay inside the run folder.

A brain (an LLM, a script) names files and folders in its tool calls: where
activations or an SAE are written, which SAE or corpus file is read. Every such
path is resolved inside `<run_dir>/artifacts/`: a relative path is taken
relative to it, an absolute one must already lie in it, and `..` or a symbolic
link that leads out is refused with an error the brain sees. The paths the user
gave on the command line (`--sae DIR`) may be read as given, never written.
Direction ids name files too, so they must have the form steer gives them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from agent.run_folder import RunFolder, confined
from tools.errors import UserError

ARTIFACTS = RunFolder.ARTIFACTS

# tool -> (dotted field path, `*` for each item of a list; True when the tool writes there)
PATH_FIELDS: dict[str, list[tuple[str, bool]]] = {
    "activations": [("out", True)],
    "sae_train": [("out", True), ("corpus.file", False)],
    "sae_stats": [("sae", False), ("corpus.file", False)],
    "sae_features": [("sae", False)],
    "sae_contexts": [("sae", False), ("corpus.file", False)],
    "steer": [("sae", False)],
    "attribute": [("sae", False)],
    "circuit": [("components.*.sae", False)],
    "transcoder_train": [("out", True), ("corpus.file", False)],
    "graph": [("out", True), ("transcoders", False), ("transcoders.*", False)],
    "ablate": [(f"{group}.*.sae", False) for group in ("components", "background", "control_exclude")],
}
ID_FIELDS: dict[str, list[str]] = {
    "steer": ["direction_id"],
    "ablate": [f"{group}.*.direction_id" for group in ("components", "background", "control_exclude")],
}
_DIRECTION_ID = re.compile(r"^dir-[0-9a-f]{1,64}$")


def user_refs(question: dict[str, Any]) -> list[str]:
    """The paths the user gave for this run (--sae), which a brain may read as they are."""
    refs = [r for r in question.get("sae") or [] if isinstance(r, str)]
    comp = question.get("component") or {}
    if isinstance(comp.get("sae_id"), str):
        refs.append(comp["sae_id"])
    return refs


def _is_user(ref: str, users: list[str]) -> bool:
    if ref in users:
        return True
    try:
        return any(Path(ref).expanduser().resolve() == Path(u).expanduser().resolve() for u in users)
    except (OSError, RuntimeError):  # a symbolic-link loop is nobody's folder
        return False


def resolve(ref: str, run_dir: Path, users: Sequence[str] = (), writes: bool = False, where: str = "path") -> str:
    """`ref` as the path a tool may use: a user's own path unchanged (for reading), otherwise the
    absolute path it names inside the run's artifacts folder; UserError when it leads outside."""
    root = RunFolder(run_dir).artifacts.resolve()
    if not ref.strip() or "\x00" in ref:
        raise UserError(
            f"{where}: {ref!r} is not a path; give a relative path such as 'sae/blocks.0' "
            f"(it is placed in the run's artifacts folder {root})"
        )
    if not writes and _is_user(ref, list(users)):
        return ref
    user = "; the user's own paths are read-only" if writes and _is_user(ref, list(users)) else ""
    return str(confined(root, ref, where, user))


def _walk(node: object, parts: list[str], label: str) -> Iterator[tuple[Any, int | str, str]]:
    """(container, key, label) for every string at `parts` under `node` (the container is a JSON
    list or object, indexed by `key`)."""
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    items = (
        list(enumerate(node))
        if head == "*" and isinstance(node, list)
        else ([(head, node.get(head))] if isinstance(node, dict) and head != "*" else [])
    )
    for key, child in items:
        name = f"{label}[{key}]" if head == "*" else (f"{label}.{key}" if label else str(key))
        if not rest:
            if isinstance(child, str):
                yield node, key, name
        else:
            yield from _walk(child, rest, name)


@overload
def confine(tool: str, payload: dict[str, Any], run_dir: Path, users: Sequence[str] = ()) -> dict[str, Any]: ...
@overload
def confine(tool: str, payload: object, run_dir: Path, users: Sequence[str] = ()) -> object: ...
def confine(tool: str, payload: object, run_dir: Path, users: Sequence[str] = ()) -> object:
    """The call's input with every path it names resolved inside the run folder (a copy), or a
    UserError naming the field that leads outside. Inputs of other shapes pass through for the
    tool's own validation to report."""
    if not isinstance(payload, dict):
        return payload
    out = copy.deepcopy(payload)
    for field, writes in PATH_FIELDS.get(tool, []):
        for node, key, name in list(_walk(out, field.split("."), "")):
            node[key] = resolve(node[key], run_dir, users, writes, f"{tool} {name}")
    for field in ID_FIELDS.get(tool, []):
        for node, key, name in list(_walk(out, field.split("."), "")):
            if not _DIRECTION_ID.match(node[key]):
                raise UserError(
                    f"{tool} {name}: {node[key]!r} is not a direction id; give the direction_id an "
                    "earlier steer call returned (dir- followed by hex digits)"
                )
    return out
