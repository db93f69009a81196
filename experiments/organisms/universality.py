"""Universality organisms: one task trained from several seeds, and the measured matching of heads across them.

A universality spec (`specs/universality/*.yaml`) names a base organism spec (inline) and a list of
seeds. Each seed is an ordinary organism (`base.with_seed(s)`: its own hash, cache folder, training and
manifest), so nothing about training changes. What is new is measured after all seeds are trained:

- each head's **role**, from that seed's own manifest: the induction (copying) and previous-token
  (feeding) heads verification found by mean-ablation (experiments/organisms/verify_induction.py);
- each pair of heads' **similarity**: the Pearson correlation of their attention patterns on the same
  held-out repeated sequences (every real query and the keys it may attend to), fed to every seed.

The ground-truth correspondence is every cross-seed pair of heads with the same measured role. It is
only trusted if the similarities agree with it: the checks ask that same-role pairs are on average
more alike than pairs of different roles (or of a role head and an unnamed one) by `SIMILARITY_MARGIN`,
and that each role head's most similar role head in every other seed has its role at least
`NEAREST_AGREEMENT` of the time. Only the induction base task is supported: its roles are measured by
ablation, so a match is more than equal labels.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from experiments.organisms.manifest import Check
from experiments.organisms.spec import OrganismSpec, read_yaml, validate_mapping
from tools import deadline
from tools.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

MATCHING_FILE = "universality.json"
ROLES = ("induction", "previous_token")
SIMILARITY_MARGIN = 0.2
"""Mean pattern correlation of same-role pairs must exceed that of other pairs by this much."""
NEAREST_AGREEMENT = 0.75
"""Share of role heads whose most similar role head in another seed has the same role."""
SIMILARITY_EXAMPLES = 200
"""Held-out repeated sequences the attention patterns are compared on."""

Head = tuple[int, int]


class UniversalitySpec(BaseModel):
    """Several seeds of one organism spec, compared head by head."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")
    """Slug for the command line and the matching's cache folder."""
    description: str = ""
    """One line for `interp organism list`."""
    kind: Literal["universality"]
    """Marks the file as a universality spec (not a single organism)."""
    base: OrganismSpec
    """The organism trained once per seed (its own `seed` is replaced by each of `seeds`)."""
    seeds: list[int] = Field(min_length=2, max_length=8)
    """Seeds to train and compare; distinct."""

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or min(v) < 0:
            raise ValueError(f"seeds must be distinct and >= 0, got {v}")
        return v

    @field_validator("base")
    @classmethod
    def _induction(cls, v: OrganismSpec) -> OrganismSpec:
        if v.task.kind != "induction":
            raise ValueError(f"base.task.kind must be 'induction' (roles measured by ablation), not {v.task.kind!r}")
        return v

    def members(self) -> list[OrganismSpec]:
        """The organism of each seed, in `seeds` order."""
        return [self.base.with_seed(s) for s in self.seeds]

    def spec_hash(self) -> str:
        """Covers every member's weights (their spec hashes) and how they are compared."""
        import hashlib

        blob = json.dumps(
            {"members": [m.spec_hash() for m in self.members()], "examples": SIMILARITY_EXAMPLES}, sort_keys=True
        ).encode()
        return hashlib.sha256(blob).hexdigest()


class HeadPair(BaseModel):
    """Two heads of two seeds and how alike they are."""

    seed_a: int
    """Seed of the first head."""
    head_a: Head
    """(layer, head) in seed_a."""
    seed_b: int
    """Seed of the second head (> seed_a in `seeds` order)."""
    head_b: Head
    """(layer, head) in seed_b."""
    role: str
    """The role both carry (`induction` / `previous_token`), or `-` when they differ or one has none."""
    similarity: float
    """Pearson correlation of their attention patterns on the same held-out inputs."""


class SeedRoles(BaseModel):
    """One member organism and the roles its manifest measured."""

    seed: int
    """Spec seed."""
    path: str
    """Its cache folder."""
    organism_id: str
    """Its opaque id."""
    verified: bool
    """Its own manifest verified."""
    train_seconds: float
    """Its training wall clock (from its manifest)."""
    roles: dict[str, list[Head]]
    """Role -> heads measured in that role."""


class UniversalityManifest(BaseModel):
    """The measured cross-seed matching of a universality spec."""

    name: str
    """Spec name."""
    spec_hash: str
    """`UniversalitySpec.spec_hash`."""
    seeds: list[SeedRoles]
    """Every member, in seed order."""
    matches: list[HeadPair]
    """The ground truth: every cross-seed pair of heads with the same measured role."""
    pairs: list[HeadPair]
    """Every cross-seed pair of heads (for reading the similarities)."""
    same_role_similarity: float
    """Mean similarity over `matches`."""
    other_similarity: float
    """Mean similarity over pairs of a role head with a head of another role or none."""
    nearest_agreement: float
    """Share of (role head, other seed) whose most similar role head there has the same role."""
    checks: list[Check]
    """Acceptance checks."""
    verified: bool
    """Every member verified and every check passed."""
    seconds: float
    """Wall clock for training (or loading) every member and measuring."""

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def _spec_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("experiments.organisms") / "specs" / "universality"))


def universality_names() -> list[str]:
    """Built-in universality specs."""
    return sorted(p.stem for p in _spec_dir().glob("*.yaml"))


def parse_universality(data: object, source: str) -> UniversalitySpec:
    """Validate parsed YAML; errors name each bad field."""
    return validate_mapping(
        UniversalitySpec,
        data,
        source,
        "universality spec",
        "`name`, `kind`, `base`, `seeds`",
        {"extra_forbidden": "unknown field (see experiments/organisms/specs/universality/)"},
    )


def is_universality_file(path: Path) -> bool:
    """Whether a YAML file is a universality spec (top-level `kind: universality`)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # not one: the organism spec reader then says what is wrong with the file
    return isinstance(data, dict) and data.get("kind") == "universality"


def resolve_universality(name_or_file: str) -> UniversalitySpec | None:
    """A built-in universality name or a universality spec file; None when it is neither."""
    path = Path(name_or_file)
    if name_or_file in universality_names():
        path = _spec_dir() / f"{name_or_file}.yaml"
    elif not (path.suffix in (".yaml", ".yml") and path.is_file() and is_universality_file(path)):
        return None
    return parse_universality(read_yaml(path, "a universality spec"), str(path))


def matching_dir(spec: UniversalitySpec) -> Path:
    """Where the matching of exactly this spec is kept."""
    from experiments.organisms.cache import cache_root

    return cache_root() / "universality" / f"{spec.name}-{spec.spec_hash()[:12]}"


def load_matching(folder: Path) -> UniversalityManifest:
    path = folder / MATCHING_FILE
    if not path.is_file():
        raise UserError(f"{folder} has no {MATCHING_FILE}; run `interp organism train` on the universality spec")
    return UniversalityManifest.model_validate_json(path.read_text())


def patterns(model, tokens: np.ndarray) -> dict[Head, np.ndarray]:
    """Each head's attention weights on `tokens`, flattened over the real causal (query, key) entries."""
    import torch

    from experiments.organisms.tasks import PAD

    real = tokens != PAD
    causal = np.tril(np.ones((tokens.shape[1],) * 2, dtype=bool))
    keep = real[:, :, None] & real[:, None, :] & causal[None]
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.from_numpy(tokens), names_filter=names)
    out = {}
    for l in range(model.cfg.n_layers):
        pat = cache[names[l]].numpy()  # [batch, head, query, key]
        for h in range(model.cfg.n_heads):
            out[l, h] = pat[:, h][keep]
    return out


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation (0 where either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def role_of(roles: dict[str, list[Head]], head: Head) -> str | None:
    return next((r for r in ROLES if head in roles.get(r, [])), None)


def match(
    seeds: list[int], roles: dict[int, dict[str, list[Head]]], pats: dict[int, dict[Head, np.ndarray]]
) -> tuple[list[HeadPair], list[HeadPair], dict[str, float]]:
    """(ground-truth matches, every pair, summary numbers) from each seed's roles and head patterns."""
    pairs, matches = [], []
    same, other = [], []
    nearest_ok, nearest_n = 0, 0
    for a, b in itertools.combinations(seeds, 2):
        for ha, hb in itertools.product(sorted(pats[a]), sorted(pats[b])):
            deadline.check("comparing heads across seeds")
            ra, rb = role_of(roles[a], ha), role_of(roles[b], hb)
            p = HeadPair(
                seed_a=a,
                head_a=ha,
                seed_b=b,
                head_b=hb,
                role=ra if ra and ra == rb else "-",
                similarity=round(similarity(pats[a][ha], pats[b][hb]), 4),
            )
            pairs.append(p)
            if p.role != "-":
                matches.append(p)
                same.append(p.similarity)
            elif ra or rb:
                other.append(p.similarity)
    sim = {(p.seed_a, p.head_a, p.seed_b, p.head_b): p.similarity for p in pairs}
    for x, y in itertools.permutations(seeds, 2):
        there = [h for r in ROLES for h in roles[y].get(r, [])]
        for r in ROLES:
            for h in roles[x].get(r, []):
                if not there:
                    continue
                key = (
                    (lambda g, x=x, h=h, y=y: sim[x, h, y, g])
                    if seeds.index(x) < seeds.index(y)
                    else (lambda g, x=x, h=h, y=y: sim[y, g, x, h])
                )
                nearest_n += 1
                nearest_ok += role_of(roles[y], max(there, key=key)) == r
    numbers = {
        "same_role_similarity": round(float(np.mean(same)), 4) if same else 0.0,
        "other_similarity": round(float(np.mean(other)), 4) if other else 0.0,
        "nearest_agreement": round(nearest_ok / nearest_n, 4) if nearest_n else 0.0,
    }
    return matches, pairs, numbers


def _check(name: str, measured: float, op: str, threshold: float, hint: str) -> Check:
    ok = measured >= threshold if op == ">=" else measured <= threshold
    return Check(name=name, measured=round(measured, 4), op=op, threshold=threshold, passed=ok, hint="" if ok else hint)


def _remeasure(member: OrganismSpec, path: Path):
    """Train `member` again into its cache folder (under its lock) and return the new manifest."""
    import fcntl

    from experiments.organisms.cache import load_manifest, train_into

    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        m = load_manifest(path)
        if next(x for x in m.mechanisms if x.kind == "induction").method != "ablation":
            train_into(member, path)
    return load_manifest(path)


def train_universality(
    spec: UniversalitySpec, force: bool = False, on_member: Callable[[int, int], None] | None = None
) -> UniversalityManifest:
    """Train (or load) every seed, measure the matching, write it to `matching_dir(spec)`."""
    from experiments.organisms.cache import ensure_trained, load_manifest
    from experiments.organisms.tasks import make_family
    from tools.checkpoint import load_checkpoint

    folder = matching_dir(spec)
    if (folder / MATCHING_FILE).is_file() and not force:
        return load_matching(folder)
    start = time.perf_counter()
    members = spec.members()
    batch = make_family(members[0]).sample(np.random.default_rng([spec.seeds[0], 23]), SIMILARITY_EXAMPLES)
    roles: dict[int, dict[str, list[Head]]] = {}
    pats: dict[int, dict[Head, np.ndarray]] = {}
    seeds_out = []
    checks: list[Check] = []
    for i, member in enumerate(members):
        if on_member:
            on_member(i, len(members))
        path = ensure_trained(member)
        m = load_manifest(path)
        truth = next(x for x in m.mechanisms if x.kind == "induction")
        if truth.method != "ablation":
            # Written before roles were measured by ablation: the same spec retrains to the same weights,
            # and its new manifest measures the roles the way every other member's does.
            m = _remeasure(member, path)
            truth = next(x for x in m.mechanisms if x.kind == "induction")
        roles[member.seed] = {
            "induction": [(h.layer, h.head) for h in truth.induction_heads],
            "previous_token": [(h.layer, h.head) for h in truth.previous_token_heads],
        }
        pats[member.seed] = patterns(load_checkpoint(path), batch.tokens)
        seeds_out.append(
            SeedRoles(
                seed=member.seed,
                path=str(path),
                organism_id=m.organism_id,
                verified=m.verified,
                train_seconds=m.train_seconds,
                roles=roles[member.seed],
            )
        )
        checks.append(
            _check(
                f"seed {member.seed}: its own organism verified ({len(m.failed_checks())} failed "
                f"checks; see `interp organism show {path}`)",
                float(m.verified),
                ">=",
                1,
                "its own failed checks (`interp organism show` on its folder) say what to change "
                "in `base`; roles from an unverified seed are not trusted",
            )
        )
    matches, pairs, numbers = match(spec.seeds, roles, pats)
    checks.append(
        _check(
            "same-role head pairs across seeds (the matching is not empty)",
            len(matches),
            ">=",
            1,
            "no role is measured in every seed: train longer (train.steps) so every seed forms the circuit",
        )
    )
    checks.append(
        _check(
            f"mean attention-pattern correlation of same-role pairs minus other pairs (>= {SIMILARITY_MARGIN:g})",
            numbers["same_role_similarity"] - numbers["other_similarity"],
            ">=",
            SIMILARITY_MARGIN,
            "the heads named in one role do not attend alike across seeds: train longer so the "
            "circuit settles, or use fewer heads per layer (model.n_heads) so roles are not spread",
        )
    )
    checks.append(
        _check(
            "share of role heads whose most similar role head in another seed has its role",
            numbers["nearest_agreement"],
            ">=",
            NEAREST_AGREEMENT,
            "similarity and measured roles disagree: train longer (train.steps) or use fewer heads",
        )
    )
    out = UniversalityManifest(
        name=spec.name,
        spec_hash=spec.spec_hash(),
        seeds=seeds_out,
        matches=matches,
        pairs=pairs,
        checks=checks,
        verified=all(c.passed for c in checks),
        seconds=round(time.perf_counter() - start, 1),
        **numbers,
    )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MATCHING_FILE}.tmp"
    tmp.write_text(out.model_dump_json(indent=2))
    tmp.rename(folder / MATCHING_FILE)
    return out
