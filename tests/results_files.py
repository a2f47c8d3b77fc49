"""The stored results the report tests read: the newest sweep of any stored machine, in today's
format (a stored file of an older one is converted in memory, as `tapbench upgrade` would)."""
from bench.document.rows import RESULTS_FORMAT, Document, read_json
from bench.run.targets import ROOT


def newest_stored_results():
    """The path of the results/machines/*/latest.json measured last (by the date it records)."""
    found = sorted(ROOT.glob("results/machines/*/latest.json"),
                   key=lambda path: str(read_json(path)["metadata"].get("date", "")))
    return found[-1] if found else None


def newest_document() -> Document | None:
    path = newest_stored_results()
    if path is None:
        return None
    data = read_json(path)
    if data.get("format") == RESULTS_FORMAT:
        return Document.from_json(data, str(path))
    from bench import plan
    from bench.run.results import upgrade_document

    groups = [(group.name, group.workload, group.lineup) for group in plan.full_groups() + plan.QUICK_GROUPS]
    return upgrade_document(data, groups, plan.primary_groups())
