"""Results stored per machine, as asv stores them: results/machines/<id>/ holds that machine's
machine.json (its fingerprint), latest.json and previous.json (its last two full sweeps) and
baseline.json (the quick sweep its gate compares with). Results measured elsewhere (a CI
matrix over kernels and CPUs) come in with `tapbench merge`, exactly as tapbench wrote them.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.machine import IDENTITY_KEYS, machine_id
from bench.results import ResultsError, load_json, metadata, write_json

MACHINES = "machines"


def machine_dir(results: Path, meta: dict) -> Path:
    return results / MACHINES / (meta.get("machine_id") or machine_id(meta))


def this_machine_dir(results: Path) -> Path:
    return machine_dir(results, metadata())


def _describe_machine(folder: Path, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    described = {key: meta.get(key) for key in ("machine_id", "machine", *IDENTITY_KEYS, "python", "bcc", "go")}
    (folder / "machine.json").write_text(json.dumps(described, indent=1) + "\n")


def store_full(results: Path, found: dict) -> Path:
    """A full sweep's sections into its machine's latest.json, the sweep before it kept as
    previous.json (the report shows the run-to-run spread between the two)."""
    found = dict(found)
    runs, meta, skipped = found.pop("runs"), found.pop("meta"), found.pop("skipped")
    folder = machine_dir(results, meta)
    _describe_machine(folder, meta)
    latest = folder / "latest.json"
    if latest.exists():
        os.replace(latest, folder / "previous.json")
    write_json(latest, runs, skipped, meta, **found)
    return latest


def store_quick(results: Path, found: dict, as_baseline: bool = False) -> Path:
    """A quick sweep: results/quick.json (what the gate judges), or this machine's baseline."""
    found = dict(found)
    runs, meta, skipped = found.pop("runs"), found.pop("meta"), found.pop("skipped")
    path = results / "quick.json"
    if as_baseline:
        folder = machine_dir(results, meta)
        _describe_machine(folder, meta)
        path = folder / "baseline.json"
    write_json(path, runs, skipped, meta, **found)
    return path


def latest_sweeps(results: Path) -> dict[str, dict]:
    """Machine id -> its latest full sweep, for every machine stored."""
    found = {}
    for latest in sorted((results / MACHINES).glob("*/latest.json")):
        try:
            found[latest.parent.name] = load_json(latest)
        except ResultsError:
            continue
    return found


def current_sweep(results: Path) -> Path:
    """The sweep results/README.md details: this machine's, else the most recent of any."""
    mine = this_machine_dir(results) / "latest.json"
    if mine.exists():
        return mine
    stored = sorted((results / MACHINES).glob("*/latest.json"),
                    key=lambda p: load_json(p)["metadata"].get("date", ""))
    if not stored:
        raise ResultsError(f"no sweep is stored under {results / MACHINES}: run `make bench`")
    return stored[-1]


def baseline_for(results: Path, meta: dict) -> tuple[Path, str | None]:
    """The baseline the gate compares with: the one of the machine that measured `meta`, or,
    when it has none, the most recent of another machine, with a sentence saying so."""
    own = machine_dir(results, meta) / "baseline.json"
    if own.exists():
        return own, None
    others = sorted((results / MACHINES).glob("*/baseline.json"),
                    key=lambda p: load_json(p)["metadata"].get("date", ""))
    if not others:
        raise ResultsError(f"no baseline is stored under {results / MACHINES}: "
                           "run `tapbench sweep --quick --baseline` on a clean commit")
    return others[-1], (f"this machine ({meta.get('machine_id')}) has no baseline: comparing with "
                        f"{others[-1].parent.name}'s; speed is compared as ratios only and not failed")


def merge(results: Path, sources: list[str]) -> list[str]:
    """Import results files written by tapbench elsewhere (files, or folders searched for
    *.json): each goes under its machine, a full sweep as latest.json (the one before it kept
    as previous.json), a quick one as quick.json. Returns one line per file imported."""
    files = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json") if p.name != "machine.json")
        elif path.exists():
            files.append(path)
        else:
            raise ResultsError(f"{source}: no such file or folder")
    if not files:
        raise ResultsError(f"nothing to merge in {', '.join(sources)}")
    imported = []
    for path in files:
        document = load_json(path)  # refuses a file of an unknown format, in one line
        meta = document["metadata"]
        if meta.get("dirty") or str(meta.get("commit", "")).endswith("-dirty"):
            raise ResultsError(f"{path}: measured with uncommitted changes ({meta.get('commit')}), so nobody "
                               "can reproduce it; measure again from a clean commit")
        folder = machine_dir(results, meta)
        _describe_machine(folder, meta)
        name = "quick.json" if meta.get("profile") == "quick" else "latest.json"
        target = folder / name
        if target.exists() and name == "latest.json":
            if load_json(target)["metadata"].get("date", "") > meta.get("date", ""):
                target = folder / "previous.json"  # older than what is stored: the one before
            else:
                os.replace(target, folder / "previous.json")
        shutil.copyfile(path, target)
        imported.append(f"{path} -> {target}")
    return imported
