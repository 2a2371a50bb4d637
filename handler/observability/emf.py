"""CloudWatch's embedded metric format: one JSON document per line on stdout, which Lambda ships to
CloudWatch Logs and CloudWatch turns into metrics (no API call, no extra permission).

Hand-written rather than Powertools Metrics: these few lines are the whole format, and the function
emits one document per decision with per-document dimension values, which Powertools' single metric
set per invocation would have to flush and re-create for each.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

# The units this service uses (a subset of the specification's).
COUNT = "Count"
MILLISECONDS = "Milliseconds"


def document(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, tuple[float, str]],
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One EMF document: `metrics` (name -> (value, unit)) under one dimension set."""
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }
            ],
        },
        **dict(properties or {}),
        **dimensions,
        **{name: value for name, (value, _) in metrics.items()},
    }


def write(doc: Mapping[str, Any], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(doc, separators=(",", ":"), default=str) + "\n")
    out.flush()
