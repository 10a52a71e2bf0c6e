"""Small self-contained HTML pages for Snakemake's report: tables rendered as tables, not raw TSV."""

from __future__ import annotations

import html
import os

import pandas as pd

from .io import write_text

_STYLE = """<style>
body{font-family:sans-serif;margin:1em;font-size:14px}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}
td:first-child,th:first-child{text-align:left}
p.note{color:#555}
</style>"""


def _cell(value, max_items: int = 8) -> str:
    """A readable cell: long lists and mappings (e.g. 1700 labels without an image) are counted, not dumped."""
    if isinstance(value, dict):
        value = [f"{k}: {v}" for k, v in value.items()]
    if not isinstance(value, (list, tuple)):
        return str(value)
    more = f"{len(value)} in all: " if len(value) > max_items else ""
    return more + ", ".join(map(str, value[:max_items])) + (", ..." if more else "")


def _section(heading: str, content) -> str:
    if isinstance(content, dict):
        content = pd.DataFrame({"item": list(content), "value": [_cell(v) for v in content.values()]})
    if isinstance(content, pd.DataFrame):
        body = content.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}") \
            if len(content) else '<p class="note">none</p>'
    else:
        body = f'<p class="note">{html.escape(str(content))}</p>'
    return f"<h2>{html.escape(heading)}</h2>\n{body}"


def write_html_tables(title: str, sections: list[tuple[str, object]], path: str | os.PathLike) -> None:
    """One page with a heading per section; a section is a DataFrame, a dict (two-column table) or text."""
    parts = "\n".join(_section(h, c) for h, c in sections)
    write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{_STYLE}"
               f"</head><body><h1>{html.escape(title)}</h1>\n{parts}\n</body></html>\n", path)


def write_html_fragment(sections: list[tuple[str, object]], path: str | os.PathLike, css_class: str) -> None:
    """The sections as an HTML fragment (no page around it) whose style reaches only inside it: a report item
    that the report's first page also embeds, without restyling that page. Long values (digests) wrap."""
    style = (f".{css_class}{{font-family:sans-serif;font-size:13px}}"
             f".{css_class} table{{border-collapse:collapse;margin-bottom:1em}}"
             f".{css_class} th,.{css_class} td{{border:1px solid #bbb;padding:2px 6px;text-align:left;"
             f"vertical-align:top;overflow-wrap:anywhere}}"
             f".{css_class} th{{background:#eee}}.{css_class} p.note{{color:#555}}")
    parts = "\n".join(_section(h, c) for h, c in sections)
    write_text(f'<div class="{css_class}"><meta charset="utf-8"><style>{style}</style>\n{parts}\n</div>\n', path)
