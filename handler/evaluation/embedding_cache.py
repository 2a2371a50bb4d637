"""An on-disk cache of image embeddings, keyed by the image file's sha256 and the backbone.

One SQLite file per backbone fingerprint and precision (`<fingerprint>-<precision>.sqlite`), so
embeddings from other weights are never mixed in. SQLite gives atomic writes and safe concurrent readers
for free, and keeps thousands of embeddings in one file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

Embedding = npt.NDArray[np.float32]


def default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clip-moderation" / "embeddings"


class EmbeddingCache:
    def __init__(self, directory: Path, fingerprint: str, precision: str = "fp32") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{fingerprint}-{precision}.sqlite"
        self._db = sqlite3.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (sha256 TEXT PRIMARY KEY, dim INTEGER NOT NULL, "
            "data BLOB NOT NULL)"
        )
        self._db.commit()

    def get_many(self, hashes: Iterable[str]) -> dict[str, Embedding]:
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, Embedding] = {}
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT sha256, dim, data FROM embeddings WHERE sha256 IN ({marks})"
            for sha, dim, data in self._db.execute(query, chunk):
                vector = np.frombuffer(data, dtype=np.float32)
                if vector.size == dim:
                    found[sha] = vector.copy()
        return found

    def put_many(self, items: Mapping[str, Embedding]) -> None:
        rows = [(sha, int(v.size), np.asarray(v, dtype=np.float32).tobytes()) for sha, v in items.items()]
        self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        self._db.close()
