"""The printable lot certificate (HTML, ``certificate.html`` beside this file).

Everything in it comes from the decisions table (``Reader.certificate_data``),
so its counts equal the records.
"""

from __future__ import annotations

import datetime as dt
import html
from importlib import resources
from string import Template
from typing import Any

__all__ = ["html_text", "render_certificate", "utc_text"]


def utc_text(t: float | None) -> str:
    """A Unix time as a UTC date and time for a certificate ("-": none)."""
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def html_text(v: Any) -> str:
    """A value as escaped HTML text ("-": none)."""
    return html.escape("-" if v is None else str(v))


_utc, _e = utc_text, html_text  # short names for the templates below


def _fraction_table(name: str, f: dict[str, Any]) -> str:
    purity = "-" if f["purity_est"] is None else f"{100 * f['purity_est']:.1f} %"
    rows = "".join(
        f'<tr><td>{_e(c)}</td><td class="n">{n}</td></tr>' for c, n in f["classes"].items()
    )
    return (
        f'<h3>{_e(name)}</h3><table class="fraction" data-fraction="{_e(name)}">'
        f"<tr><th>Class</th><th>Fragments</th></tr>{rows}"
        f'<tr><th>Total</th><th class="n total">{f["count"]}</th></tr>'
        f'<tr><td>Ejected by the line</td><td class="n">{f["ejected"]}</td></tr>'
        f'<tr><td>Estimated purity</td><td class="n purity">{purity}</td></tr></table>'
    )


def render_certificate(data: dict[str, Any], where: str) -> str:
    lot = data["lot"]
    fractions = "".join(_fraction_table(n, f) for n, f in data["fractions"].items())
    contexts = "".join(
        f"<tr><td>{_e(c['recipe'])} v{_e(c['recipe_version'])}</td>"
        f"<td>{_e(c['model'])} {_e(c['model_version'])}</td>"
        f"<td>{'nominal' if c['calibration_version'] is None else 'v' + str(c['calibration_version'])}</td>"  # noqa: E501
        f'<td class="n">{c["decisions"]}</td><td>{_utc(c["first_unix_s"])}</td>'
        f"<td>{_utc(c['last_unix_s'])}</td></tr>"
        for c in data["contexts"]
    )
    closed = (
        "still open"
        if lot["closed_unix_s"] is None
        else (f"{_utc(lot['closed_unix_s'])} (by {lot['closed_by']})")
    )
    text = resources.files("sortline.records").joinpath("certificate.html").read_text("utf-8")
    return Template(text).substitute(
        lot_id=_e(lot["id"]), lot_name=_e(lot["name"]), lot_source=_e(lot["source"]),
        line=_e(lot["line"]), opened=_utc(lot["opened_unix_s"]), opened_by=_e(lot["opened_by"]),
        closed=_e(closed), decisions=data["decisions"],
        first_decision=_utc(data["first_decision_unix_s"]),
        last_decision=_utc(data["last_decision_unix_s"]),
        fractions=fractions or "<p>No decisions in this lot.</p>", contexts=contexts,
        printed=_utc(dt.datetime.now(tz=dt.UTC).timestamp()), where=_e(where),
    )  # fmt: skip
