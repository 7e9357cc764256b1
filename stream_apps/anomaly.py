"""Anomaly scores with a robust random cut forest, in the spirit of Kinesis Data Analytics'
RANDOM_CUT_FOREST (AWS, KDA SQL Reference, "RANDOM_CUT_FOREST" and
"RANDOM_CUT_FOREST_WITH_EXPLANATION").

Uses `rrcf` (robust random cut forest). A point is one row's numeric values (one or several
columns); it is shingled with the previous `shingle_size - 1` points and inserted into every tree
of a forest of `num_trees` trees holding at most `tree_size` shingles (the oldest is forgotten).
The score is the mean collusive displacement (CoDisp) over the trees, higher = more anomalous;
each tree's displacement is shared among the columns by how far the point lies outside the
bounding box it is displaced from in each, so a row's attributions sum to its score. Scores are not numerically AWS's.

Deterministic across restarts: every tree draws from its own seeded generator, and every
`tree_size` shingles the forest is rebuilt from the last `tree_size` of them. The scorer's state
(the shingles the forest was last built from, the ones inserted since, and the last raw points) is
part of the app's snapshot; a restored scorer rebuilds the forest and replays the inserts, so the
trees, and the scores after a kill -9, equal an uninterrupted run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stream_apps.spec import AppSpec


@dataclass(frozen=True)
class Score:
    """One point's score and its attribution per column (same order as the point's values)."""

    score: float
    attribution: tuple[float, ...]


class RandomCutForest:
    """A forest over points of any number of numeric values (module docstring)."""

    def __init__(
        self, num_trees: int = 100, tree_size: int = 256, shingle_size: int = 1, seed: int = 7
    ) -> None:
        self.num_trees = num_trees
        self.tree_size = tree_size
        self.shingle_size = shingle_size
        self.seed = seed
        self.recent: list[list[float]] = []  # the last shingle_size - 1 points, oldest first
        self.base: list[list[float]] = []  # shingles the forest was last (re)built from
        self.since: list[list[float]] = []  # shingles inserted after that
        self.next_index = 0  # the index the next shingle gets in every tree
        self._trees: list[Any] | None = None

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain lists and ints for the app's snapshot."""
        return {"recent": [list(p) for p in self.recent], "base": [list(s) for s in self.base],
                "since": [list(s) for s in self.since], "next_index": self.next_index}  # fmt: skip

    def restore(self, state: dict[str, Any] | None) -> None:
        """Take a `state()`; the trees are rebuilt on the next point. None: start empty."""
        state = state or {}
        self.recent = [list(p) for p in state.get("recent", [])]
        self.base = [list(s) for s in state.get("base", [])]
        self.since = [list(s) for s in state.get("since", [])]
        self.next_index = int(state.get("next_index", 0))
        self._trees = None

    # -- scoring -----------------------------------------------------------------------------
    def score(self, point: Sequence[float]) -> Score:
        """Insert `point` and score it; 0 (and zero attributions) until a whole shingle is in and
        while the forest holds a single shingle."""
        values = [float(v) for v in point]
        self.recent.append(values)
        if len(self.recent) < self.shingle_size:
            return Score(0.0, (0.0,) * len(values))
        shingle = [v for p in self.recent for v in p]
        self.recent = self.recent[len(self.recent) - self.shingle_size + 1 :] if self.shingle_size > 1 else []
        trees = self._forest()
        if len(self.since) >= self.tree_size:  # a new epoch: rebuilt, so a restore can rebuild it too
            self.base, self.since = self.since[-self.tree_size :], []
            trees = self._trees = self._build()
        index = self.next_index
        self._insert(trees, shingle)
        columns = len(values)
        total = 0.0
        attribution = [0.0] * columns
        for tree in trees:
            displacement, shares = _codisp(tree, index)
            total += displacement
            for dimension, share in enumerate(shares):
                attribution[dimension % columns] += share
        n = len(trees)
        return Score(total / n, tuple(a / n for a in attribution))

    def _insert(self, trees: list[Any], shingle: list[float]) -> None:
        index = self.next_index
        self.next_index += 1
        self.since.append(shingle)
        for tree in trees:
            if len(tree.leaves) >= self.tree_size:
                tree.forget_point(min(tree.leaves))
            tree.insert_point(shingle, index=index)

    def _forest(self) -> list[Any]:
        if self._trees is None:
            self._trees = self._build()
            since, self.since = self.since, []
            self.next_index -= len(since)
            for shingle in since:  # replay the inserts after the build, as they happened
                self._insert(self._trees, shingle)
        return self._trees

    def _build(self) -> list[Any]:
        """Trees of `base`, each from its own generator seeded by (seed, tree, first index)."""
        import numpy as np
        import rrcf

        first = self.next_index - len(self.since) - len(self.base)
        trees = []
        for number in range(self.num_trees):
            tree = rrcf.RCTree(random_state=np.random.RandomState([self.seed, number, first]))
            for offset, shingle in enumerate(self.base):
                tree.insert_point(shingle, index=first + offset)
            trees.append(tree)
        return trees


def _codisp(tree: Any, index: int) -> tuple[float, list[float]]:
    """rrcf's CoDisp of leaf `index` (the largest ratio of a sibling's size to its own subtree's on
    the path to the root), and that displacement shared among the dimensions in proportion to how
    far the point lies outside the sibling's bounding box in each (how likely a random cut in that
    dimension is to separate them); all of it to the branch's cut dimension when the point lies
    inside the box, none for a lone leaf."""
    import numpy as np

    leaf = tree.leaves[index]
    point = np.asarray(leaf.x, dtype=float).ravel()
    node, best, shares = leaf, 0.0, [0.0] * len(point)
    while node.u is not None:
        parent = node.u
        sibling = parent.r if node is parent.l else parent.l
        ratio = sibling.n / node.n
        if ratio > best or not any(shares):
            box = np.asarray(sibling.b, dtype=float).reshape(-1, len(point))
            gaps = np.maximum(box[0] - point, 0.0) + np.maximum(point - box[-1], 0.0)
            total = float(gaps.sum())
            if total > 0:
                shares = [ratio * float(g) / total for g in gaps]
            else:
                shares = [0.0] * len(point)
                shares[int(parent.q)] = ratio
            best = ratio
        node = parent
    return best, shares


class AnomalyScorer:
    """A TOML app's `[anomaly]` table: adds `anomaly_score` (rounded to 6 places) to each final
    row, scoring its `field` (default `count`, a missing value is 0) as a one-column point."""

    def __init__(self, field: str = "count", num_trees: int = 40, tree_size: int = 256, shingle_size: int = 4,
                 seed: int = 7) -> None:  # fmt: skip
        self.field = field
        self.forest = RandomCutForest(num_trees, tree_size, shingle_size, seed)

    @property
    def values(self) -> list[float]:
        """The recent values the forest holds, oldest first (each shingle's newest value)."""
        shingles = self.forest.base + self.forest.since
        return [s[-1] for s in shingles] + [p[0] for p in self.forest.recent]

    def __call__(self, row: dict[str, Any]) -> None:
        row["anomaly_score"] = round(self.forest.score([float(row.get(self.field) or 0)]).score, 6)

    def state(self) -> dict[str, Any]:
        return self.forest.state()

    def restore(self, state: dict[str, Any] | None) -> None:
        self.forest.restore(state)


def make_row_hook(spec: AppSpec) -> AnomalyScorer | None:
    """The row hook an app's `[anomaly]` table asks for, or None."""
    if not spec.anomaly:
        return None
    return AnomalyScorer(**spec.anomaly)
