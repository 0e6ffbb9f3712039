"""The certificate of a plant lot: one lot name opened on several lines of one
records database (``Reader.plant_certificate_data``), printed as HTML with
the counts per fraction over all lines, per line, and what decided on each
line (recipe, model and calibration versions). Every number comes from the
decisions table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from core.files import atomic_write_text
from sortline.records.certificate import html_text as _e
from sortline.records.certificate import utc_text as _utc
from sortline.records.db import redact
from sortline.records.query import Reader

__all__ = ["render_plant_certificate", "write_plant_certificate"]

_STYLE = """
  body { font: 11pt/1.4 system-ui, sans-serif; margin: 2em; color: #111; }
  h1 { font-size: 16pt; margin-bottom: 0.2em; }
  table { border-collapse: collapse; margin: 0.8em 0 1.4em; }
  th, td { border: 1px solid #999; padding: 0.25em 0.6em; text-align: left; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .note { font-size: 9pt; color: #444; }
  @media print { body { margin: 1cm; } }
"""


def _purity(f: dict[str, Any]) -> str:
    return "-" if f["purity_est"] is None else f"{100 * f['purity_est']:.1f} %"


def _table(attrs: str, head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(rows_i) + "</tr>" for rows_i in rows)
    return f"<table {attrs}><tr>{th}</tr>{body}</table>"


def _n(v: Any, cls: str = "n") -> str:
    return f'<td class="{cls}">{_e(v)}</td>'


def _fractions(data: dict[str, Any]) -> str:
    out = []
    for name, f in data["fractions"].items():
        rows = [[f"<td>{_e(c)}</td>", _n(k)] for c, k in f["classes"].items()]
        rows += [["<th>Total</th>", _n(f["count"], "n total")],
                 ["<td>Ejected by the lines</td>", _n(f["ejected"])],
                 ["<td>Estimated purity</td>", _n(_purity(f), "n purity")]]  # fmt: skip
        attrs = f'class="fraction" data-fraction="{_e(name)}"'
        out.append(f"<h3>{_e(name)}</h3>" + _table(attrs, ["Class", "Fragments"], rows))
    return "".join(out) or "<p>No decisions in this lot.</p>"


def _per_line(data: dict[str, Any]) -> str:
    fractions = list(data["fractions"])
    rows = []
    for line, v in data["per_line"].items():
        cells = [f"<td>{_e(line)}</td>"]
        cells += [_n(v["fractions"].get(f, {}).get("count", 0)) for f in fractions]
        cells.append(_n(v["decisions"], "n total"))
        rows.append(cells)
    head = ["Line", *[_e(f) for f in fractions], "Decisions"]
    return _table('id="per-line"', head, rows)


def _contexts(data: dict[str, Any]) -> str:
    rows = [
        [f"<td>{_e(c['line'])}</td>", f"<td>{_e(c['recipe'])} v{_e(c['recipe_version'])}</td>",
         f"<td>{_e(c['model'])} {_e(c['model_version'])}</td>",
         "<td>" + ("nominal" if c["calibration_version"] is None
                   else f"v{_e(c['calibration_version'])}") + "</td>",
         _n(c["decisions"]), f"<td>{_utc(c['first_unix_s'])}</td>",
         f"<td>{_utc(c['last_unix_s'])}</td>"]
        for c in data["contexts"]
    ]  # fmt: skip
    head = ["Line", "Recipe", "Model", "Calibration", "Decisions", "From", "To"]
    return _table('id="contexts"', head, rows)


def render_plant_certificate(data: dict[str, Any], where: str) -> str:
    lots = _table(
        'id="lots"',
        ["Line", "Lot", "Material source", "Opened", "Closed"],
        [[f"<td>{_e(x['line'])}</td>", _n(x["id"]), f"<td>{_e(x['source'])}</td>",
          f"<td>{_utc(x['opened_unix_s'])} (by {_e(x['opened_by'])})</td>",
          "<td>" + ("still open" if x["closed_unix_s"] is None else
                    f"{_utc(x['closed_unix_s'])} (by {_e(x['closed_by'])})") + "</td>"]
         for x in data["lots"]],
    )  # fmt: skip
    printed = _utc(dt.datetime.now(tz=dt.UTC).timestamp())
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Plant lot certificate: {_e(data['name'])}</title><style>{_STYLE}</style>"
        f"</head><body><h1>Plant lot certificate: {_e(data['name'])}</h1>"
        f"<p>Lines: {_e(', '.join(data['lines']))}. Decisions recorded: "
        f'<span id="decisions">{data["decisions"]}</span> '
        f"({_utc(data['first_decision_unix_s'])} .. {_utc(data['last_decision_unix_s'])}).</p>"
        f"<h2>Lots of this name</h2>{lots}<h2>Output fractions, all lines</h2>"
        f"{_fractions(data)}<h2>Fragments per line and fraction</h2>{_per_line(data)}"
        f"<h2>What decided, per line</h2>{_contexts(data)}"
        '<p class="note">Estimated purity: the mean, over the fragments sent to a fraction, '
        "of the classifier's probability that the fragment belongs there; exact only if the "
        f"classifier's probabilities are calibrated. Printed {printed} from the records "
        f"database ({_e(where)}).</p></body></html>\n"
    )


def write_plant_certificate(url: str, name: str, out: Path) -> int:
    """Write the certificate of plant lot ``name`` from the records at ``url``
    to ``out`` -> its decisions; ``LookupError`` when no lot has that name."""
    if not name.strip():
        raise ValueError("--lot: give the lot's name")
    data = Reader(url, "").plant_certificate_data(name)
    if data is None:
        raise LookupError(f"no lot named {name!r} in {redact(url)}")
    atomic_write_text(out, render_plant_certificate(data, redact(url)))
    return int(data["decisions"])
