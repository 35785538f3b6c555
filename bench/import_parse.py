"""Benchmark: reading import documents (broker.mapping.document_parse), hostile and legitimate. Prints JSON.

Each document is parsed ``--repeat`` times; the outcome is "ok" or the refusal's first words.
Before the caps, a 40 KB deeply nested YAML document took ~26 s and a 1 MiB flat one ~5 s,
on the event loop.

Usage: python bench/import_parse.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from broker.errors import InvalidImport
from broker.mapping.document_parse import parse_document

MIB = 1024 * 1024


def documents() -> dict[str, tuple[bytes, str]]:
    export = {
        "version": 1,
        "accounts": [{"id": f"{100000000000 + i}", "alias": f"acct-{i}",
                      "roles": [{"name": f"Role{j}", "max_session_duration": 3600} for j in range(5)]} for i in range(200)],
        "mappings": [{"group": f"team-{i:05d}", "account": f"{100000000000 + i % 200}", "role": "Role1",
                      "console": True, "cli": True, "session_duration": None} for i in range(7000)],
    }
    flat = b"description: [" + b",".join([b"1"] * (MIB // 2 - 16)) + b"]\n"
    return {
        "yaml_deep_flow_40KB": (b"accounts: " + b"[" * 20000 + b"]" * 20000, "yaml"),
        "yaml_deep_block_40KB": (b"".join(b" " * i + b"a:\n" for i in range(280)), "yaml"),
        "yaml_flat_1MiB": (flat, "yaml"),
        "json_flat_1MiB": (flat.replace(b"description: ", b'{"description": ').rstrip() + b"}", "json"),
        "json_deep_40KB": (b"[" * 20000 + b"]" * 20000, "json"),
        "yaml_export_7000_mappings": (yaml.safe_dump(export, sort_keys=False).encode(), "yaml"),
        "json_export_7000_mappings": (json.dumps(export).encode(), "json"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    results = []
    for name, (raw, syntax) in documents().items():
        samples, outcome = [], "ok"
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            try:
                parse_document(raw, syntax)
            except InvalidImport as exc:
                outcome = exc.message[:60]
            samples.append((time.perf_counter() - t0) * 1000)
        results.append({"document": name, "bytes": len(raw), "outcome": outcome,
                        "p50_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)})
    print(json.dumps({"benchmark": "import_parse", "results": results}, indent=2))


if __name__ == "__main__":
    main()
