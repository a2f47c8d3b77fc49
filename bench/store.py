"""Results stored per machine, as asv stores them: results/machines/<id>/ holds that machine's
machine.json (its fingerprint), latest.json and previous.json (its last two full sweeps) and
baseline.json (the quick sweep its gate compares with). Results measured elsewhere (a CI
matrix over kernels and CPUs) come in with `tapbench merge`, exactly as tapbench wrote them.
Reads and writes documents only: it knows nothing of how they were measured.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.document.rows import Document, ResultsError
from bench.machine import IDENTITY_KEYS, fingerprint, machine_id

MACHINES = "machines"
# JSON files beside the results that are not results documents: a machine's fingerprint and
# what `tapbench report` writes beside each README.
NOT_RESULTS = ("machine.json", "headline.json")


def machine_dir(results: Path, meta: dict) -> Path:
    return results / MACHINES / (meta.get("machine_id") or machine_id(meta))


def this_machine_dir(results: Path) -> Path:
    return machine_dir(results, fingerprint())


def _describe_machine(folder: Path, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    described = {key: meta.get(key) for key in ("machine_id", "machine", *IDENTITY_KEYS, "python", "bcc", "go")}
    (folder / "machine.json").write_text(json.dumps(described, indent=1) + "\n")


def store_full(results: Path, document: Document) -> Path:
    """A full sweep into its machine's latest.json, the sweep before it kept as previous.json
    (the report shows the run-to-run spread between the two)."""
    folder = machine_dir(results, document.metadata)
    _describe_machine(folder, document.metadata)
    latest = folder / "latest.json"
    if latest.exists():
        os.replace(latest, folder / "previous.json")
    document.write(latest)
    return latest


def store_quick(results: Path, document: Document, as_baseline: bool = False) -> Path:
    """A quick sweep: results/quick.json (what the gate judges), or this machine's baseline."""
    path = results / "quick.json"
    if as_baseline:
        folder = machine_dir(results, document.metadata)
        _describe_machine(folder, document.metadata)
        path = folder / "baseline.json"
    document.write(path)
    return path


def latest_sweeps(results: Path) -> dict[str, Document]:
    """Machine id -> its latest full sweep, for every machine stored."""
    found = {}
    for latest in sorted((results / MACHINES).glob("*/latest.json")):
        try:
            found[latest.parent.name] = Document.load(latest)
        except ResultsError:
            continue
    return found


def _date(path: Path) -> str:
    return Document.load(path).metadata.get("date", "")


def current_sweep(results: Path) -> Path:
    """The sweep results/README.md details: this machine's, else the most recent of any."""
    mine = this_machine_dir(results) / "latest.json"
    if mine.exists():
        return mine
    stored = sorted((results / MACHINES).glob("*/latest.json"), key=_date)
    if not stored:
        raise ResultsError(f"no sweep is stored under {results / MACHINES}: run `make bench`")
    return stored[-1]


def baseline_for(results: Path, meta: dict) -> tuple[Path, str | None]:
    """The baseline the gate compares with: the one of the machine that measured `meta`, or,
    when it has none, the most recent of another machine, with a sentence saying so."""
    own = machine_dir(results, meta) / "baseline.json"
    if own.exists():
        return own, None
    others = sorted((results / MACHINES).glob("*/baseline.json"), key=_date)
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
            files += sorted(p for p in path.rglob("*.json") if p.name not in NOT_RESULTS)
        elif path.exists():
            files.append(path)
        else:
            raise ResultsError(f"{source}: no such file or folder")
    if not files:
        raise ResultsError(f"nothing to merge in {', '.join(sources)}")
    imported = []
    for path in files:
        meta = Document.load(path).metadata  # refuses a file of an unknown format, in one line
        if meta.get("dirty") or str(meta.get("commit", "")).endswith("-dirty"):
            raise ResultsError(f"{path}: measured with uncommitted changes ({meta.get('commit')}), so nobody "
                               "can reproduce it; measure again from a clean commit")
        folder = machine_dir(results, meta)
        _describe_machine(folder, meta)
        name = "quick.json" if meta.get("profile") == "quick" else "latest.json"
        target = folder / name
        if target.exists() and name == "latest.json":
            if _date(target) > meta.get("date", ""):
                target = folder / "previous.json"  # older than what is stored: the one before
            else:
                os.replace(target, folder / "previous.json")
        shutil.copyfile(path, target)
        imported.append(f"{path} -> {target}")
    return imported
