"""A static transform tree (what /tf_static says): the transform between any two connected frames.

Edges are added as ``parent -> child`` poses (T_parent_child maps child coordinates into the parent);
``lookup(target, source)`` returns T_target_source by walking the tree through a common ancestor
(breadth-first over the undirected edges, so lidar <- base_link -> camera_optical works). Re-adding an
edge replaces it. Thread-safe enough for one writer and readers: the edge dict is swapped, not mutated.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import NDArray


class StaticTransforms:
    def __init__(self) -> None:
        self._edges: dict[tuple[str, str], NDArray[np.float64]] = {}

    def __len__(self) -> int:
        return len(self._edges)

    def add(self, parent: str, child: str, t_parent_child: NDArray) -> None:
        edges = dict(self._edges)
        edges[(parent.lstrip("/"), child.lstrip("/"))] = np.asarray(t_parent_child, dtype=np.float64)
        self._edges = edges

    def frames(self) -> set[str]:
        return {f for e in self._edges for f in e}

    def lookup(self, target: str, source: str) -> NDArray[np.float64] | None:
        """T_target_source (4, 4), or None when the frames are not connected."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        edges = self._edges
        graph: dict[str, list[tuple[str, NDArray[np.float64]]]] = {}
        for (parent, child), t in edges.items():
            graph.setdefault(child, []).append((parent, t))  # child -> parent: T_parent_child
            graph.setdefault(parent, []).append((child, np.linalg.inv(t)))
        # BFS from source; T accumulates T_frame_source
        seen = {source: np.eye(4)}
        queue = deque([source])
        while queue:
            frame = queue.popleft()
            for nxt, t_next_frame in graph.get(frame, []):
                if nxt in seen:
                    continue
                seen[nxt] = t_next_frame @ seen[frame]
                if nxt == target:
                    return seen[nxt]
                queue.append(nxt)
        return None
