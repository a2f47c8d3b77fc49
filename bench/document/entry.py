"""An entry of a probe section, typed: each section module (bench/document/sections/) declares
the entries it reads as an Entry, with every field's unit in a comment, and reads them with
`Ceiling.of(document)` instead of through string keys.

from_json refuses an unknown key, a required key that is missing, and a value of the wrong
type, naming the file's section and entry, as Row.from_json does for rows. A field with a
default is one that older results formats lack: there it takes its default (None, mostly).
Nested entries (a hostile probe's attacks, a privilege probe's unprivileged try) are Entries
too, named in NESTED. to_json() gives an entry back as it was written, for what is handed on
whole (headline.json quotes a probe's unprivileged try as measured).
"""
from __future__ import annotations

import dataclasses
import typing
from typing import ClassVar

from bench.document.rows import Document, ResultsError, fits


@dataclasses.dataclass
class Entry:
    SECTION: ClassVar[str] = ""  # the document's section this entry is read from ("" : nested)
    NESTED: ClassVar[dict[str, type]] = {}  # field -> the Entry its value (or each item of it) is

    @classmethod
    def from_json(cls, data, where: str):
        if not isinstance(data, dict):
            raise ResultsError(f"{where} is not an object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = {name for name, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing, unknown = required - set(data), set(data) - set(fields)
        if missing or unknown:
            raise ResultsError(f"{where}: " + "; ".join(
                part for part in (f"missing {', '.join(sorted(missing))}" if missing else "",
                                  f"unknown {', '.join(sorted(unknown))}" if unknown else "") if part))
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in data.items():
            nested = cls.NESTED.get(name)
            if nested is not None and value is not None:
                value = _nested(nested, value, f"{where}, {name}")
            elif not fits(value, hints[name]):
                raise ResultsError(f"{where}: {name} is {value!r}, not {hints[name]}")
            values[name] = value
        entry = cls(**values)
        entry._written = tuple(data)  # to write it back as it was (to_json), absent keys absent
        return entry

    def to_json(self) -> dict:
        """The entry as it was written: the keys it had, nested entries as objects again."""
        names = getattr(self, "_written", None) or [f.name for f in dataclasses.fields(self)]
        return {name: _plain(getattr(self, name)) for name in names}

    @classmethod
    def of(cls, document: Document) -> list:
        """The section's entries, typed (an empty list where the document has none)."""
        return [cls.from_json(entry, f"{cls.SECTION}, entry {index}")
                for index, entry in enumerate(document.section(cls.SECTION))]


def _plain(value):
    if isinstance(value, Entry):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _nested(kind: type[Entry], value, where: str):
    if isinstance(value, list):
        return [kind.from_json(item, f"{where} {index}") for index, item in enumerate(value)]
    return kind.from_json(value, where)
