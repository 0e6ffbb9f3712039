"""Regenerate ``MODEL_CARD.md`` from measured results, so the card's figures are
the evaluation's, not typed by hand.

``python -m models.card --model F.onnx --eval E.json --speed S.json --notes N.md``
prints the card. E.json is ``sortline model eval --json`` output (held-out
presets, with fragment ids), S.json ``sortline model speed --json`` output; the
notes file holds the prose sections that are not measurements (training data,
ceiling estimate, history, limits) and may use ``{placeholders}`` filled from
the same figures (``{top1}``, ``{frag_top1}``, ``{us_per_crop}``, ...).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from models.evaluate import HARD_PAIRS

__all__ = ["main", "render_card"]


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _pair_rows(ev: dict[str, Any]) -> list[str]:
    rows = [
        "| hard pair | single crops | top-1 within the pair (crops) | fragments "
        "| top-1 within the pair (fragments) | confusions (crops) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    frag = ev.get("per_fragment", {}).get("pairs", {})
    for a, b in HARD_PAIRS:
        c = ev["pairs"][f"{a}/{b}"]
        f = frag.get(f"{a}/{b}", {})
        conf = f"{a} as {b} {_pct(c[f'{a}_as_{b}'])}, {b} as {a} {_pct(c[f'{b}_as_{a}'])}"
        rows.append(
            f"| {a} / {b} | {c['crops']} | {_pct(c['top1'])} | {f.get('crops', '-')} "
            f"| {_pct(f['top1']) if f else '-'} | {conf} |"
        )
    return rows


def _preset_rows(ev: dict[str, Any]) -> list[str]:
    rows = ["| preset | top-1 single crop | top-1 per fragment |", "|---|---:|---:|"]
    for name, r in ev.get("per_preset", {}).items():
        f = _pct(r["fragment_top1"]) if "fragment_top1" in r else "-"
        rows.append(f"| {name} | {_pct(r['top1'])} | {f} |")
    return rows


def _condition_rows(ev: dict[str, Any]) -> list[str]:
    rows = ["| fragment crops | crops | top-1 | share of all errors |", "|---|---:|---:|---:|"]
    what = {
        "clean": "clean single fragment (none of the above)",
        "truncated": "cut by the image border",
        "merged": "segment < 98 % one fragment",
        "small": "fragment < 25 mm",
        "occluded": "< 90 % of the fragment visible",
    }
    for name, r in ev.get("by_condition", {}).items():
        rows.append(
            f"| {what.get(name, name)} | {r['crops']} | {_pct(r['top1'])} "
            f"| {_pct(r['share_of_errors'])} |"
        )
    return rows


def _class_rows(ev: dict[str, Any]) -> list[str]:
    labels = ev["labels"]
    pc = ev["per_class"]
    rows = ["| class | crops | precision | recall |", "|---|---:|---:|---:|"]
    for n in labels:
        r = pc[n]
        rows.append(f"| {n} | {r['support']} | {_pct(r['precision'])} | {_pct(r['recall'])} |")
    rows += [
        "",
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for n, row in zip(labels, ev["confusion"], strict=True):
        rows.append(f"| **{n}** | " + " | ".join(str(int(v)) for v in row) + " |")
    return rows


def _fragment_crops(ev: dict[str, Any]) -> int:
    """Crops whose truth is a material (the reject class's row left out)."""
    reject = len(ev["labels"]) - 1 if "belt_marks_rejected" in ev else -1
    return int(sum(sum(row) for i, row in enumerate(ev["confusion"]) if i != reject))


def figures(ev: dict[str, Any], speed: dict[str, Any]) -> dict[str, str]:
    """Placeholders the notes may use."""
    frag = ev.get("per_fragment", {})
    out = {
        "top1": _pct(ev["top1"]),
        "crops": f"{_fragment_crops(ev):,}",
        "frag_top1": _pct(frag["top1"]) if frag else "-",
        "fragments": f"{frag.get('fragments', 0):,}",
        "us_per_crop": f"{speed['us_per_crop_median']:.0f}",
        "speed_load": f"{speed.get('load_average_1min', float('nan')):.1f}",
        "speed_command": speed.get("command", ""),
    }
    for a, b in HARD_PAIRS:
        out[f"{a}_{b}"] = _pct(ev["pairs"][f"{a}/{b}"]["top1"])
    return out


def render_card(
    model: Path,
    info: dict[str, str],
    ev: dict[str, Any],
    speed: dict[str, Any],
    notes: str,
    text: dict[str, str] | None = None,
) -> str:
    """The card's Markdown: header from the file, prose from ``notes`` (its
    placeholders filled from the figures and ``text``), tables from ``ev``."""
    raw = model.read_bytes()
    fig = {**figures(ev, speed), **(text or {})}
    head = [
        "# Model card: `sortline-cnn` (builtin:sortline-cnn)",
        "",
        f"**Version {info['version']}** · file `models/{model.name}` ({len(raw):,} bytes, "
        f"sha256 `{hashlib.sha256(raw).hexdigest()[:16]}…`) · training config sha256 "
        f"`{info['train_config_sha256'][:16]}…`",
        "",
    ]
    results = [
        "## Results on held-out scenes",
        "",
        f"**Single-crop top-1 on fragment crops: {fig['top1']}** ({fig['crops']} crops, "
        "every fragment crop the labelling keeps, fragments of all kinds; target 97 %). "
        f"**Per-fragment top-1: {fig['frag_top1']}** ({fig['fragments']} fragments: each "
        "fragment's views combined as `control` combines a track's, summed log "
        "probabilities with a 1e-4 floor over the views the reject output keeps).",
        "",
        *_pair_rows(ev),
        "",
        f"Reject output: {_pct(ev.get('belt_marks_rejected', float('nan')))} of belt-mark "
        f"segments rejected, {_pct(ev.get('fragments_rejected', float('nan')))} of fragment "
        "crops wrongly rejected.",
        "",
        *_preset_rows(ev),
        "",
        "### Where the errors are (single crops, by crop condition; conditions overlap)",
        "",
        *_condition_rows(ev),
        "",
        "### Per-class precision and recall, confusion table (single crops; rows: truth)",
        "",
        *_class_rows(ev),
        "",
        "## Inference cost",
        "",
        f"`{fig['speed_command']}`: **{fig['us_per_crop']} us per crop** (median of "
        f"{speed['passes']} passes x {speed['calls_per_pass']} calls, batch {speed['batch']}, "
        f"ONNX Runtime {speed.get('threads', 1)} intra-op thread through "
        "`vision.classifier.OnnxClassifier`; range "
        f"{speed['us_per_crop_min']:.0f}-{speed['us_per_crop_max']:.0f} us; load average "
        f"{fig['speed_load']} on the shared 2-core machine). Budget: 100 us.",
        "",
    ]
    body = notes.format(**fig)
    return "\n".join(head) + body.rstrip() + "\n\n" + "\n".join(results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.card", description=__doc__)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--speed", type=Path, required=True)
    ap.add_argument("--notes", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=TEXT", help="fill {KEY} in the notes"
    )
    a = ap.parse_args(argv)
    from vision.classifier import OnnxClassifier

    clf = OnnxClassifier.load(a.model)
    info = {"version": clf.info.version, "train_config_sha256": clf.info.train_config_sha256}
    cfg = json.loads(clf.info.extra.get("sortline.train_config", "{}"))
    text = {"widths": "-".join(str(w) for w in cfg.get("widths", []))}
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set needs KEY=TEXT, got {item!r}")
        text[key] = value
    ev = json.loads(a.eval.read_text(encoding="utf-8"))
    speed = json.loads(a.speed.read_text(encoding="utf-8"))
    notes = a.notes.read_text(encoding="utf-8")
    card = render_card(a.model, info, ev, speed, notes, text)
    if a.out:
        a.out.write_text(card, encoding="utf-8")
    else:
        sys.stdout.write(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
