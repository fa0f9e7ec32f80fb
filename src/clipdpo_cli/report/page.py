"""The report page: one HTML file that needs nothing else (figures and thumbnails as base64 data URLs,
styles inline, system fonts), so it opens offline, from a mail attachment or a cluster's scratch disk."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Figure:
    name: str  # file name stem for --png-dir
    png: bytes
    alt: str
    width_px: int  # shown size (the PNG has more pixels, for sharp text)


@dataclass
class Section:
    key: str  # anchor
    title: str
    intro: str = ""  # HTML
    figures: list[Figure] = field(default_factory=list)
    body: list[str] = field(default_factory=list)  # HTML blocks: tables, cards, notes


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    numeric_from: int = 1,
    caption: str = "",
    highlight: Sequence[tuple[int, int]] = (),
) -> str:
    """An HTML table; columns from `numeric_from` on are right-aligned; `highlight` (row, col) cells bold."""
    marked = set(highlight)
    head = "".join(
        f'<th class="{"num" if i >= numeric_from else ""}">{esc(h)}</th>' for i, h in enumerate(header)
    )
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            classes = " ".join(
                x for x in ("num" if c >= numeric_from else "", "best" if (r, c) in marked else "") if x
            )
            cells.append(f'<td class="{classes}">{esc(value)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    rows_html = "".join(body)
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table></div>"
    )


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


CSS = """
:root { --ink:#1d2327; --muted:#5f6b73; --line:#dfe3e6; --accent:#0072B2; --good:#1e7d4f; --bad:#b83227; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #f6f7f8;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial,
  sans-serif; }
header { background: #1d2327; color: #fff; padding: 22px 0 18px; }
header h1 { margin: 0; font-size: 24px; letter-spacing: .2px; }
header p { margin: 4px 0 0; color: #c5ccd1; font-size: 13px; }
.wrap { max-width: 1040px; margin: 0 auto; padding: 0 20px; }
nav { background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
nav a { display: inline-block; padding: 9px 12px 9px 0; margin-right: 12px; color: var(--accent);
  text-decoration: none; font-size: 14px; }
nav a:hover { text-decoration: underline; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 18px 0;
  padding: 4px 22px 18px; }
section h2 { font-size: 19px; margin: 16px 0 6px; }
.intro { color: var(--muted); margin: 0 0 10px; font-size: 14px; }
img.fig { display: block; max-width: 100%; height: auto; margin: 10px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 10px 0; font-size: 14px; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: 13px; padding-bottom: 4px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { background: #f0f2f4; font-weight: 600; }
td.num, th.num { text-align: right; }
td.best { font-weight: 700; }
.note { color: var(--muted); font-size: 13px; margin: 6px 0; }
.warn { color: #8a5a00; background: #fff6e0; border: 1px solid #f1d9a0; border-radius: 6px;
  padding: 6px 10px; font-size: 14px; }
.files { font-size: 13px; color: var(--muted); margin: 6px 0 0; padding-left: 18px; }
.files code { color: var(--ink); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(470px, 1fr)); gap: 14px;
  margin-top: 10px; }
.card { display: flex; gap: 12px; border: 1px solid var(--line); border-radius: 8px; padding: 10px; }
.card img, .card .noimg { width: 160px; height: 160px; object-fit: contain; background: #f0f2f4;
  border-radius: 4px; flex: none; }
.card .noimg { display: flex; align-items: center; justify-content: center; text-align: center;
  font-size: 12px; color: var(--muted); padding: 8px; }
.card .txt { font-size: 13px; min-width: 0; overflow-wrap: anywhere; }
.card .meta { color: var(--muted); font-size: 12px; margin-bottom: 4px; }
.card .prompt { font-style: italic; margin-bottom: 6px; }
.tag { display: inline-block; font-size: 11px; font-weight: 700; color: #fff; border-radius: 3px;
  padding: 0 5px; margin-right: 4px; }
.tag.c { background: var(--good); } .tag.r { background: var(--bad); }
.card p { margin: 3px 0; }
footer { color: var(--muted); font-size: 12px; padding: 6px 0 30px; }
"""


def render(
    title: str, subtitle: str, inputs: Sequence[tuple[str, str]], sections: Sequence[Section], footer: str
) -> str:
    """The whole page. `inputs` are (what, path) pairs listed under the title."""
    files = "".join(f"<li>{esc(what)}: <code>{esc(path)}</code></li>" for what, path in inputs)
    nav = "".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in sections)
    parts = []
    for s in sections:
        figures = "".join(
            f'<img class="fig" src="{data_url(f.png, "image/png")}" alt="{esc(f.alt)}" width="{f.width_px}">'
            for f in s.figures
        )
        intro = f'<p class="intro">{s.intro}</p>' if s.intro else ""
        parts.append(
            f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2>{intro}{figures}{"".join(s.body)}</section>'
        )
    empty = "" if sections else '<section><p class="warn">No input was given: nothing to show.</p></section>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></div></header>'
        f'<nav><div class="wrap">{nav}</div></nav>'
        f'<main class="wrap"><ul class="files">{files}</ul>{"".join(parts)}{empty}</main>'
        f'<footer><div class="wrap">{esc(footer)}</div></footer>'
        "</body></html>\n"
    )
