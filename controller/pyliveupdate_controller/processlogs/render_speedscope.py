"""speedscope JSON: one sampled profile per process+thread, weights = self time in ns."""
from __future__ import annotations

import json

from .model import Node, Report

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def render_speedscope(report: Report) -> str:
    frames: list[dict] = []
    frame_ids: dict[tuple, int] = {}

    def frame_id(node: Node) -> int:
        key = (node.function, node.file, node.line)
        if key not in frame_ids:
            frame_ids[key] = len(frames)
            entry = {"name": node.function}
            if node.file:
                entry["file"] = node.file
                entry["line"] = node.line
            frames.append(entry)
        return frame_ids[key]

    profiles = []
    for p in report.processes:
        for t in p.threads:
            samples, weights = [], []

            for path, node in t.root.paths():
                if node.self > 0:
                    samples.append([frame_id(n) for n in path])
                    weights.append(node.self)
            profiles.append({"type": "sampled", "name": t.key, "unit": "nanoseconds",
                             "startValue": 0, "endValue": sum(weights),
                             "samples": samples, "weights": weights})
    doc = {"$schema": SCHEMA, "shared": {"frames": frames}, "profiles": profiles,
           "name": "pyliveupdate", "exporter": "pylu-processlogs", "activeProfileIndex": 0}
    return json.dumps(doc) + "\n"
