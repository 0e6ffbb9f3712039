"""The merge flag's one-material check (``MergeParams.warm_share``): hand-drawn
scenes with known answers, and the compiled ``_warm_shares`` against its NumPy twin."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.merge import WARM_SHARE, MergeFlagger, MergeParams, warm_shares
from vision.segment import Segmenter, SegmentParams, Segments

COPPER = (66, 100, 172)  # BGR
BRASS = (76, 142, 188)
TARNISH = (42, 58, 96)  # copper's dark tarnish: still red metal
GREY = (170, 172, 171)  # aluminium
BELT = (90, 90, 90)


def warm_shares_twin(
    image: np.ndarray, seg: Segments, which: np.ndarray, p: MergeParams
) -> np.ndarray:
    """NumPy twin of ``vision.kernels_merge._warm_shares`` (via ``warm_shares``)."""
    out = np.zeros((len(seg), 2))
    s, off = seg.scale, seg.scale // 2
    h, w = seg.labels.shape
    for k in which.tolist():
        x0, y0, x1, y1 = (np.asarray(seg.bbox_px[k], np.int64) // s).tolist()
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        ys, xs = np.nonzero(seg.labels[y0 : y1 + 1, x0 : x1 + 1] == seg.label_id[k])
        ys, xs = ys + y0, xs + x0  # row-major order, as the kernel walks them
        step = max(1, len(ys) // p.warm_max_px)
        ys, xs = ys[::step], xs[::step]
        ry = np.minimum(ys * s + off, image.shape[0] - 1)
        rx = np.minimum(xs * s + off, image.shape[1] - 1)
        px = image[ry, rx].astype(np.float64)
        tot = px.sum(axis=1)
        keep = tot >= p.warm_dark_sum
        warm = (px[keep, 2] - px[keep, 0]) >= p.warm_rb * tot[keep]
        out[k] = (warm.mean() if keep.any() else 0.0), float(keep.sum())
    return out


def _scene(draw: list[tuple[str, tuple[int, int, int]]]) -> tuple[np.ndarray, Segments]:
    """A 1280x512 belt image: eight small discs (the feed's median) and the shapes
    ``draw`` names in their colours; segmented without splitting."""
    img = np.full((512, 1280, 3), BELT, np.uint8)
    for i in range(8):
        cv2.circle(img, (60 + 80 * i, 60), 20, GREY, -1)
    for what, colour in draw:
        if what == "ell":  # a ragged plate: large and far from convex
            cv2.rectangle(img, (100, 200), (400, 260), colour, -1)
            cv2.rectangle(img, (100, 200), (160, 460), colour, -1)
        elif what == "ell_arm":  # a second fragment: the L's long arm, another colour
            cv2.rectangle(img, (100, 261), (160, 460), colour, -1)
        elif what == "wire":  # a bent wire: a thick polyline
            pts = np.array([[700, 200], [900, 260], [760, 330], [980, 420]], np.int32)
            cv2.polylines(img, [pts], False, colour, 18)
        elif what == "spots":  # dark spots on the L (tarnish): still the L's material
            for x in range(110, 390, 40):
                cv2.circle(img, (x, 230), 9, colour, -1)
    seg = Segmenter(SegmentParams(split=False))
    seg.segment(np.full_like(img, BELT))  # the belt model first
    return img, seg.segment(img)


ON = MergeParams(warm_share=WARM_SHARE)  # the check as [vision] merge_material = true sets it


def _flags(img: np.ndarray, seg: Segments, params: MergeParams = ON) -> np.ndarray:
    return MergeFlagger(params).flag(seg, img)


def _big(seg: Segments) -> list[int]:
    return np.flatnonzero(seg.area_px > 4 * np.median(seg.area_px)).tolist()


def test_a_lone_copper_plate_or_wire_is_not_flagged_but_was() -> None:
    for draw in ([("ell", COPPER)], [("ell", BRASS), ("spots", TARNISH)], [("wire", COPPER)]):
        img, seg = _scene(draw)
        big = _big(seg)
        assert len(big) == 1, draw
        before = _flags(img, seg, MergeParams(warm_share=0.0))  # no check: the old flag
        assert before.tolist() == [i in big for i in range(len(seg))], draw
        assert not _flags(img, seg).any(), draw


def test_red_metal_on_grey_and_grey_plates_stay_flagged() -> None:
    for draw in ([("ell", COPPER), ("ell_arm", GREY)], [("ell", GREY)], [("wire", GREY)]):
        img, seg = _scene(draw)
        big = _big(seg)
        assert len(big) == 1, draw
        assert _flags(img, seg).tolist() == [i in big for i in range(len(seg))], draw


def test_without_the_frame_or_on_a_mono_frame_the_flag_is_the_old_one() -> None:
    img, seg = _scene([("ell", COPPER)])
    old = _flags(img, seg, MergeParams(warm_share=0.0))
    assert old.any()
    assert (MergeFlagger(ON).flag(seg) == old).all()
    assert (MergeFlagger(ON).flag(seg, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)) == old).all()


def test_share_of_a_two_colour_l_is_its_copper_part() -> None:
    img, seg = _scene([("ell", COPPER), ("ell_arm", GREY)])
    (k,) = _big(seg)
    got = warm_shares(seg, img, np.array([k]), MergeParams(warm_max_px=10**6))
    ys, xs = np.nonzero(seg.labels == seg.label_id[k])
    copper = (img[ys * 2 + 1, xs * 2 + 1, 2].astype(int) - img[ys * 2 + 1, xs * 2 + 1, 0]) > 50
    assert got[k, 1] == len(ys)
    assert got[k, 0] == pytest.approx(copper.mean())
    assert 0.3 < got[k, 0] < 0.8
    assert (got[np.arange(len(seg)) != k] == 0).all()  # only those asked for


def test_compiled_shares_equal_the_numpy_twin_on_random_scenes() -> None:
    rng = np.random.default_rng(14)
    for trial in range(12):
        noise = rng.integers(0, 256, (240, 400, 3), dtype=np.uint8)
        img = np.asarray(cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(0.5, 4))), np.uint8)
        labels = np.zeros((120, 200), np.int32)
        for k in range(1, 9):
            c = (int(rng.integers(0, 200)), int(rng.integers(0, 120)))
            ax = (int(rng.integers(1, 40)), int(rng.integers(1, 30)))
            cv2.ellipse(labels, c, ax, float(rng.uniform(0, 180)), 0, 360, k, -1)
        ids = np.unique(labels[labels > 0]).astype(np.int32)
        boxes = []
        for i in ids.tolist():
            ys, xs = np.nonzero(labels == i)
            boxes.append([xs.min() * 2, ys.min() * 2, (xs.max() + 1) * 2, (ys.max() + 1) * 2])
        n = len(ids)
        seg = Segments(
            labels=labels, label_id=ids, bbox_px=np.asarray(boxes, np.float32).reshape(n, 4),
            centroid_px=np.zeros((n, 2)), area_px=np.ones(n), scale=2,
        )  # fmt: skip
        p = MergeParams(
            warm_rb=float(rng.uniform(0.01, 0.3)),
            warm_dark_sum=float(rng.uniform(0, 400)),
            warm_max_px=int(rng.integers(1, 400)),
        )
        which = np.flatnonzero(rng.random(n) < 0.7)
        got = warm_shares(seg, img, which, p)
        want = warm_shares_twin(img, seg, which, p)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"trial {trial}")


@pytest.mark.parametrize(
    ("kw", "what"),
    [({"warm_share": 1.5}, "warm_share"), ({"warm_share": -0.1}, "warm_share"),
     ({"warm_rb": 0.0}, "warm_rb"), ({"warm_dark_sum": 800.0}, "warm_dark_sum"),
     ({"warm_max_px": 0}, "warm_max_px")],
)  # fmt: skip
def test_bad_material_params_are_refused(kw: dict[str, float], what: str) -> None:
    with pytest.raises(ValueError, match=what):
        MergeParams(**kw)  # type: ignore[arg-type]


def test_a_bad_frame_is_refused() -> None:
    img, seg = _scene([("ell", COPPER)])
    with pytest.raises(ValueError, match="warm_shares: image"):
        warm_shares(seg, img.astype(np.float32), np.array([0]), MergeParams())


def test_the_vision_key_turns_the_check_off(tmp_path: Path) -> None:
    """The default line: the check at ``WARM_SHARE`` (since session 14); ``[vision]
    merge_material = false``: the flag of session 13 (no check); a wrong type is
    refused naming the key."""
    from core.errors import InputFileError
    from sortline.config import load_config

    d = load_config().vision.merge_params()
    assert d is not None and d.warm_share == MergeParams().warm_share == WARM_SHARE > 0
    p = tmp_path / "line.toml"
    p.write_text("[vision]\nmerge_material = false\n")
    off = load_config(p).vision.merge_params()
    assert off is not None and off.warm_share == 0.0
    p.write_text('[vision]\nmerge_material = "sometimes"\n')
    with pytest.raises(InputFileError, match=r"vision\.merge_material"):
        load_config(p)
