"""A regression forest as plain arrays: what a fitted random forest is, without the library.

`TreeEnsemble` holds every tree's nodes (children, split feature, threshold, leaf value) in
flat arrays and predicts with numpy, giving exactly what scikit-learn's `RandomForestRegressor`
gives for the same trees: inputs are rounded to float32 and compared with the float64
thresholds as its trees do, and the trees' outputs are summed in order and then averaged as its
`predict` does. A forest stored this way loads in any scikit-learn version (or none) and reading
it runs no code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, cast

import numpy as np

from ..errors import SupernasError

LEAF = -1          # scikit-learn's TREE_LEAF: a node whose children are both this is a leaf
_ROWS_PER_CHUNK = 4096


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Trees concatenated: tree t owns nodes offsets[t]:offsets[t+1], its root first; children are
    indices within the tree (LEAF for none), as scikit-learn numbers them."""

    left: np.ndarray        # int64 (nodes,)
    right: np.ndarray       # int64 (nodes,)
    feature: np.ndarray     # int64 (nodes,)
    threshold: np.ndarray   # float64 (nodes,)
    value: np.ndarray       # float64 (nodes,): the node's mean target (used at leaves)
    offsets: np.ndarray     # int64 (trees + 1,)
    n_features: int

    ARRAYS = ("left", "right", "feature", "threshold", "value", "offsets")

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n_trees(self) -> int:
        return len(self.offsets) - 1

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_trees(cls, trees: Sequence[Mapping[str, np.ndarray]], n_features: int) -> "TreeEnsemble":
        """From per-tree arrays `left`, `right`, `feature`, `threshold`, `value` (one value a node)."""
        if not trees:
            raise SupernasError("a forest needs at least one tree")
        sizes = [len(np.asarray(t["left"])) for t in trees]
        join = lambda key, dtype: np.concatenate([np.asarray(t[key], dtype=dtype).reshape(-1)  # noqa: E731
                                                  for t in trees])
        return cls(join("left", np.int64), join("right", np.int64), join("feature", np.int64),
                   join("threshold", np.float64), join("value", np.float64),
                   np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), int(n_features))

    @classmethod
    def from_sklearn(cls, forest: Any) -> "TreeEnsemble":
        """A fitted scikit-learn RandomForestRegressor (single output), through its public `tree_`."""
        trees = []
        for est in forest.estimators_:
            t = est.tree_
            if t.n_outputs != 1:
                raise SupernasError("only single-output forests can be stored as arrays")
            trees.append({"left": t.children_left, "right": t.children_right, "feature": t.feature,
                          "threshold": t.threshold, "value": t.value[:, 0, 0]})
        return cls.from_trees(trees, forest.n_features_in_)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], n_features: int) -> "TreeEnsemble":
        missing = [k for k in cls.ARRAYS if k not in arrays]
        if missing:
            raise SupernasError(f"the forest lacks the arrays {', '.join(missing)}")
        # one array per name in ARRAYS, the six fields in order (the type checker cannot count a generator)
        return cls(*cast("tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]",
                         (np.asarray(arrays[k]) for k in cls.ARRAYS)), n_features=int(n_features))

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """A forest whose prediction terminates and reads only its own nodes and the input's
        columns: every child comes after its parent, inside the parent's tree."""
        n = len(self.left)
        if self.n_features < 1:
            raise SupernasError(f"a forest needs at least one feature, got {self.n_features}")
        for name, want in (("left", np.int64), ("right", np.int64), ("feature", np.int64),
                           ("threshold", np.float64), ("value", np.float64), ("offsets", np.int64)):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype != want:
                raise SupernasError(f"the forest's '{name}' must be a 1-d {np.dtype(want).name} array")
            if name != "offsets" and len(arr) != n:
                raise SupernasError(f"the forest's '{name}' holds {len(arr)} nodes, not {n}")
        off = self.offsets
        if len(off) < 2 or off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 1):
            raise SupernasError("the forest's tree offsets do not split its nodes into non-empty trees")
        tree_end = np.repeat(off[1:] - off[:-1], np.diff(off))      # each node's tree size
        local = np.arange(n) - np.repeat(off[:-1], np.diff(off))    # each node's index in its tree
        leaf = (self.left == LEAF) & (self.right == LEAF)
        inner = ~leaf
        for child in (self.left, self.right):
            if np.any(inner & ((child <= local) | (child >= tree_end))):
                raise SupernasError("the forest's trees are malformed (a child that is not after its parent "
                                    "in the same tree)")
        if np.any(inner & ((self.feature < 0) | (self.feature >= self.n_features))):
            raise SupernasError(f"the forest splits on a feature outside 0..{self.n_features - 1}")
        if not np.all(np.isfinite(self.value[leaf])):
            raise SupernasError("the forest has leaves whose value is not finite")

    # ------------------------------------------------------------------ prediction
    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N,) float64 predictions for an (N, n_features) input."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise SupernasError(f"the forest takes (N, {self.n_features}) inputs, got shape {tuple(x.shape)}")
        # scikit-learn's trees read their input as float32 (then compare it with float64 thresholds)
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty(len(x), dtype=np.float64)
        left, right, feature, threshold, depth = self._walkable()
        roots = self.offsets[:-1, None]
        for start in range(0, len(x), _ROWS_PER_CHUNK):
            xs = x[start:start + _ROWS_PER_CHUNK]
            flat, base = xs.reshape(-1), (np.arange(len(xs)) * self.n_features)[None, :]
            node = np.repeat(roots, len(xs), axis=1)        # (trees, rows)
            for _ in range(depth):
                go_left = flat[base + feature[node]] <= threshold[node]
                node = np.where(go_left, left[node], right[node])
            leaves = self.value[node]
            acc = np.zeros(len(xs), dtype=np.float64)
            for t in range(self.n_trees):                   # in order, as the library accumulates
                acc += leaves[t]
            out[start:start + len(xs)] = acc / self.n_trees
        return out

    def _walkable(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """Global child indices, with leaves pointing at themselves (so every row can take the
        same number of steps), and the deepest path's length."""
        cached = self.__dict__.get("_walk")
        if cached is not None:
            return cached
        n = len(self.left)
        start = np.repeat(self.offsets[:-1], np.diff(self.offsets))
        leaf = (self.left == LEAF) & (self.right == LEAF)
        me = np.arange(n)
        left = np.where(leaf, me, self.left + start)
        right = np.where(leaf, me, self.right + start)
        feature = np.where(leaf, 0, self.feature)
        # For a float32 input, x <= t (t float64) exactly when x <= the largest float32 not above t:
        # the same decisions as the library's, at half the memory traffic.
        t64 = np.where(leaf, np.inf, self.threshold)
        t32 = t64.astype(np.float32)
        threshold = np.where(t32.astype(np.float64) > t64, np.nextafter(t32, np.float32(-np.inf)), t32)
        depth = np.zeros(n, dtype=np.int64)
        for i in range(n):  # parents come before children, so one pass in order fills every depth
            if not leaf[i]:
                depth[left[i]] = depth[right[i]] = depth[i] + 1
        walk = (left, right, feature, threshold, int(depth.max()))
        object.__setattr__(self, "_walk", walk)
        return walk
