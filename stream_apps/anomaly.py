"""Anomaly scores on a window's count, in the spirit of Kinesis Data Analytics' RANDOM_CUT_FOREST.

Uses `rrcf` (robust random cut forest): each final row's numeric field (default `count`) is shingled
with the previous `shingle_size - 1` values and inserted into every tree of a forest of
`num_trees` trees of at most `tree_size` points; the score is the mean collusive displacement
(CoDisp), higher = more anomalous. Scores are not numerically AWS's. The recent values are part of
the app's snapshot and the forest is rebuilt from them (with a fixed seed) after a restart.
"""

from __future__ import annotations

from typing import Any

from stream_apps.spec import AppSpec


class AnomalyScorer:
    """Adds `anomaly_score` to each final row, scoring the shingle that ends with it."""

    def __init__(self, field: str = "count", num_trees: int = 40, tree_size: int = 256, shingle_size: int = 4,
                 seed: int = 7) -> None:  # fmt: skip
        self.field = field
        self.num_trees = num_trees
        self.tree_size = tree_size
        self.shingle_size = shingle_size
        self.seed = seed
        self.values: list[float] = []
        self.index = 0
        self._forest: list[Any] | None = None

    def _build(self) -> list[Any]:
        import numpy as np
        import rrcf

        np.random.seed(self.seed)
        forest = [rrcf.RCTree() for _ in range(self.num_trees)]
        shingles = self._shingles()
        start = max(0, len(shingles) - self.tree_size)
        for index in range(start, len(shingles)):
            for tree in forest:
                tree.insert_point(shingles[index], index=index)
        return forest

    def _shingles(self) -> list[list[float]]:
        size = self.shingle_size
        return [self.values[i - size + 1 : i + 1] for i in range(size - 1, len(self.values))]

    def __call__(self, row: dict[str, Any]) -> None:
        value = row.get(self.field)
        self.values.append(float(value or 0))
        self.values = self.values[-(self.tree_size + self.shingle_size) :]
        if self._forest is None:
            self._forest = self._build()
            self.index = len(self._shingles())
            row["anomaly_score"] = 0.0
            return
        if len(self.values) < self.shingle_size:
            row["anomaly_score"] = 0.0
            return
        point = self.values[-self.shingle_size :]
        index = self.index
        self.index += 1
        scores = []
        for tree in self._forest:
            if len(tree.leaves) >= self.tree_size:
                tree.forget_point(min(tree.leaves))
            tree.insert_point(point, index=index)
            scores.append(tree.codisp(index))
        row["anomaly_score"] = round(sum(scores) / len(scores), 6)

    def state(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def restore(self, state: dict[str, Any] | None) -> None:
        if state:
            self.values = list(state["values"])
            self._forest = None


def make_row_hook(spec: AppSpec) -> AnomalyScorer | None:
    """The row hook an app's `[anomaly]` table asks for, or None."""
    if not spec.anomaly:
        return None
    return AnomalyScorer(**spec.anomaly)
