"""The report's sections, one module each, in the order bench/document/report.py lists them.

A section module declares the typed entries of the JSON it reads (an Entry, bench/document/
entry.py: every field with its unit, `Ceiling.of(document)` instead of string keys) and a
`section(...)` that returns a Section (bench/document/section.py): a title, the anchor the
README links to, prose from its template in bench/document/prose/<name>.md, tables of cells,
figures. It formats cells, never a whole table: bench/document/as_markdown.py writes the
Markdown, bench/document/html.py report.html.

Adding a section: its module here, its template in prose/, and its name in report.py's list.
This package imports none of its modules, so that headline.py can read the entries it judges
from them without a circle.
"""
