"""``sortline calibrate bench|store ...``: bench-rig procedures and the calibration store.

sortline calibrate bench --virtual [--json OUT] [--seed N] [--quick] [--save [--activate]]
sortline calibrate bar-offset --virtual [--seed N] [--json OUT]   # the induction bar's line
sortline calibrate store list|show [V]|diff A B|activate V|rollback|import FILE
                         [--store DIR] [--line NAME] [--who NAME]
"""

from __future__ import annotations

import argparse
import getpass
import json
import shlex
import sys
from pathlib import Path
from typing import Any

DEFAULT_STORE = "sortline-calibration"


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--store", default=DEFAULT_STORE, help=f"store folder (default ./{DEFAULT_STORE})"
    )
    p.add_argument("--line", default=None, help="line name (default: the config's line.name)")
    p.add_argument("--config", default=None, help="line config TOML (for the default line name)")
    p.add_argument("--who", default=None, help="who saves/activates (default: the login name)")
    p.add_argument(
        "--limits", default=None, help="TOML of the procedures' limits (default: the targets)"
    )
    return p


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="bench-rig calibration procedures and the store")
    csub = p.add_subparsers(dest="calibrate_command", required=True, metavar="CALIBRATE_COMMAND")
    common = _common()
    b = csub.add_parser("bench", parents=[common], help="run every procedure on a bench rig")
    b.add_argument("--virtual", action="store_true", help="use the virtual bench rig")
    b.add_argument("--json", dest="json_out", default=None, help="write the report here")
    b.add_argument("--seed", type=int, default=1, help="virtual rig seed (its hidden truth)")
    b.add_argument("--quick", action="store_true", help="fewer views and shots")
    b.add_argument("--save", action="store_true", help="save the result as a new version")
    b.add_argument("--activate", action="store_true", help="with --save: activate it")
    b.set_defaults(func=_bench)
    bo = csub.add_parser(
        "bar-offset", parents=[common], help="the induction bar's line from steel test pieces"
    )
    bo.add_argument("--virtual", action="store_true", help="use the virtual bench rig")
    bo.add_argument("--seed", type=int, default=1, help="virtual rig seed (its hidden truth)")
    bo.add_argument("--json", dest="json_out", default=None, help="write the report here")
    bo.set_defaults(func=_bar_offset)
    _register_camera(csub, common)
    s = csub.add_parser("store", help="list, show, diff, activate, roll back calibrations")
    ssub = s.add_subparsers(dest="store_command", required=True, metavar="STORE_COMMAND")
    ssub.add_parser("list", parents=[common], help="versions and activations").set_defaults(
        func=_list
    )
    show = ssub.add_parser("show", parents=[common], help="one version (default: active)")
    show.add_argument("version", nargs="?", type=int)
    show.set_defaults(func=_show)
    diff = ssub.add_parser("diff", parents=[common], help="values that differ")
    diff.add_argument("old", type=int)
    diff.add_argument("new", type=int)
    diff.add_argument("--quality", action="store_true", help="also the quality figures")
    diff.set_defaults(func=_diff)
    act = ssub.add_parser("activate", parents=[common], help="make a version active")
    act.add_argument("version", type=int)
    act.add_argument("--note", default="")
    act.add_argument("--force", action="store_true", help="even if its checks failed")
    act.set_defaults(func=_activate)
    rb = ssub.add_parser("rollback", parents=[common], help="back to the previous active one")
    rb.add_argument("--note", default="")
    rb.set_defaults(func=_rollback)
    imp = ssub.add_parser("import", parents=[common], help="validate and save a JSON file")
    imp.add_argument("file")
    imp.set_defaults(func=_import)


def _register_camera(csub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    c = csub.add_parser(
        "camera", parents=[common], help="camera (and encoder) calibration from image files"
    )
    c.add_argument("--views", nargs="+", required=True, help="ChArUco views (intrinsics)")
    c.add_argument("--belt-image", required=True, help="the board flat on the belt")
    c.add_argument("--board-x-mm", type=float, required=True, help="belt x of the board's origin")
    c.add_argument(
        "--jog",
        nargs=3,
        metavar=("BEFORE", "AFTER", "TICKS"),
        help="board images before/after jogging the belt TICKS encoder ticks",
    )
    c.add_argument("--squares", default="9x5", help="board squares, XxY (default 9x5)")
    c.add_argument("--square-mm", type=float, default=40.0)
    c.add_argument("--marker-mm", type=float, default=30.0)
    c.add_argument("--dictionary", default="DICT_5X5_100")
    c.add_argument("--json", dest="json_out", default=None, help="write the report here")
    c.add_argument("--save", action="store_true", help="save as a new version")
    c.add_argument("--activate", action="store_true", help="with --save: activate if it passed")
    c.set_defaults(func=_camera)


def _board(args: argparse.Namespace) -> Any:
    """The board from the options; ValueError with a one-line reason."""
    from pydantic import ValidationError

    from calibration.charuco import BoardSpec

    try:
        sx, sy = (int(v) for v in args.squares.lower().split("x"))
    except ValueError:
        raise ValueError(f"--squares must look like 9x5, got {args.squares!r}") from None
    try:
        return BoardSpec(
            squares_x=sx,
            squares_y=sy,
            square_mm=args.square_mm,
            marker_mm=args.marker_mm,
            dictionary=args.dictionary,
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(x) for x in err["loc"]) or "board"
        raise ValueError(f"{where}: {err['msg']}") from None


def _camera(args: argparse.Namespace) -> int:
    from calibration.camera_session import calibrate_camera_files
    from calibration.results import CalibrationError
    from sortline.config import load_config

    config = load_config(args.config)
    try:
        board = _board(args)
    except ValueError as exc:
        return _fail(f"board: {exc}")
    jog = None
    if args.jog:
        try:
            jog = (args.jog[0], args.jog[1], int(args.jog[2]))
        except ValueError:
            return _fail(f"--jog TICKS must be an integer, got {args.jog[2]!r}")
    store = _store(args)
    try:
        cal, quality = calibrate_camera_files(
            args.views,
            args.belt_image,
            board,
            args.board_x_mm,
            store.line,
            config.belt.mm_per_tick,
            limits=_limits(args),
            jog=jog,
            base=store.active(),
        )
    except CalibrationError as exc:
        return _fail(str(exc))
    out: dict[str, Any] = {"passed": cal.passed, "procedures": quality}
    if args.save:
        saved = store.save(cal, _who(args))
        out["saved_version"] = saved.version
        if args.activate:
            out["activated"] = cal.passed
            if cal.passed:
                store.activate(saved.version, _who(args), note="camera calibration")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    for name, part in quality.items():
        failed = [c["name"] for c in part["checks"] if not c["passed"]]
        print(f"{'ok  ' if part['passed'] else 'FAIL'} {name}" + (f": {failed}" if failed else ""))
    _print_saved(out)
    return 0 if cal.passed else 1


def _limits(args: argparse.Namespace) -> Any:
    from calibration.results import CalibrationLimits
    from core.errors import load_toml_model

    if args.limits is None:
        return CalibrationLimits()
    return load_toml_model(CalibrationLimits, args.limits)


def _line_name(args: argparse.Namespace) -> str:
    if args.line:
        return str(args.line)
    from sortline.config import load_config

    return load_config(args.config).line.name


def _store(args: argparse.Namespace) -> Any:
    from calibration.store import CalibrationStore

    return CalibrationStore(Path(args.store), _line_name(args))


def _who(args: argparse.Namespace) -> str:
    return str(args.who) if args.who else getpass.getuser()


def _fail(message: str) -> int:
    print(f"sortline calibrate: error: {message}", file=sys.stderr)
    return 2


def _bar_offset(args: argparse.Namespace) -> int:
    """The bar line on the virtual rig (``sortline.sensor.rig``); exit 1 outside 2 mm."""
    if not args.virtual:
        return _fail(
            "only the virtual bench rig is built in: pass --virtual (on a line, "
            "sortline.sensor.calibrate.bar_offset takes the bar's rows and camera sightings)"
        )
    from sortline.config import load_config
    from sortline.sensor.rig import run_bar_rig
    from sortline.sensor.wiring import plant_bar

    config = load_config(args.config)
    report = run_bar_rig(plant_bar(config.sensor), config.belt.mm_per_tick, args.seed)
    text = json.dumps(report, indent=1)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if report["passed"] else 1


def _bench(args: argparse.Namespace) -> int:
    if not args.virtual:
        return _fail(
            "only the virtual bench rig is built in: pass --virtual (a real rig needs an "
            "adapter implementing calibration.fragments.TestFragmentRig and board captures)"
        )
    from calibration.results import CalibrationError
    from sim.benchrig.session import run_bench
    from sortline.config import load_config

    config = load_config(args.config)
    line = args.line or config.line.name
    try:
        report = run_bench(
            seed=args.seed,
            quick=args.quick,
            line=line,
            nominal=config.geometry,
            limits=_limits(args),
        )
    except CalibrationError as exc:
        return _fail(str(exc))
    command = ["sortline", "calibrate", "bench", "--virtual", "--seed", str(args.seed)]
    command += ["--quick"] if args.quick else []
    command += ["--config", args.config] if args.config else []
    command += ["--limits", args.limits] if args.limits else []
    command += ["--json", args.json_out] if args.json_out else []
    out: dict[str, Any] = {"command": shlex.join(command)}
    out.update(report.to_dict())
    if args.save:
        store = _store(args)
        saved = store.save(report.calibration, _who(args))
        out["saved_version"] = saved.version
        if args.activate:
            out["activated"] = report.calibration.passed
            if report.calibration.passed:
                store.activate(saved.version, _who(args), note="virtual bench rig")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    _print_comparison(out)
    return 0 if out["passed"] and out["procedures_passed"] else 1


def _print_comparison(out: dict[str, Any]) -> None:
    for name, row in out["comparison"].items():
        mark = "ok  " if row["passed"] else "FAIL"
        if "error" in row:
            print(f"{mark} {name:22s} error {row['error']:.4g} (target <= {row['target']})")
        else:
            rest = {k: v for k, v in row.items() if k != "passed"}
            print(f"{mark} {name:22s} {rest}")
    print(f"seconds: {', '.join(f'{k} {v:.1f}' for k, v in out['seconds'].items())}")
    _print_saved(out)


def _print_saved(out: dict[str, Any]) -> None:
    if "saved_version" not in out:
        return
    state = {True: " (active)", False: " (not activated: its checks failed)", None: ""}
    print(f"saved as version {out['saved_version']}{state[out.get('activated')]}")


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    active = store.active_version()
    versions = store.versions()
    if not versions:
        print(f"no calibrations for line {store.line!r} in {store.root}")
        return 0
    for v in versions:
        cal = store.load(v)
        mark = "*" if v == active else " "
        status = "passed" if cal.passed else "FAILED"
        print(
            f"{mark} v{v:<4d} {cal.created_utc:25s} {cal.created_by:12s} {status:6s} {cal.source}"
        )
    for h in store.history():
        print(
            f"  {h.when_utc} {h.action:8s} v{h.version} by {h.who}"
            + (f" (was v{h.previous_version})" if h.previous_version else "")
            + (f": {h.note}" if h.note else "")
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _store(args)
    version = args.version if args.version is not None else store.active_version()
    if version is None:
        return _fail(f"no active calibration for line {store.line!r}: name a version")
    cal = store.load(version)
    data = cal.model_dump(mode="json")
    data.pop("quality")
    rec = store.active_record()
    data["active"] = rec is not None and rec.version == version
    if data["active"]:
        data["activated_by"], data["activated_utc"] = rec.who, rec.when_utc
    print(json.dumps(data, indent=1))
    return 0


def _diff(args: argparse.Namespace) -> int:
    entries = _store(args).diff(args.old, args.new, with_quality=args.quality)
    for e in entries:
        print(f"{e.path}: {e.old!r} -> {e.new!r}")
    if not entries:
        print("no differences")
    return 0


def _activate(args: argparse.Namespace) -> int:
    entry = _store(args).activate(args.version, _who(args), note=args.note, force=args.force)
    print(f"v{entry.version} active (was {entry.previous_version}), by {entry.who}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    entry = _store(args).rollback(_who(args), note=args.note)
    print(f"rolled back to v{entry.version}, by {entry.who}")
    return 0


def _import(args: argparse.Namespace) -> int:
    saved = _store(args).import_file(args.file, _who(args))
    print(f"imported as v{saved.version}")
    return 0
