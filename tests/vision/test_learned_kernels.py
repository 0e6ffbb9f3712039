"""The learned split's Numba kernels (``vision.kernels_learned``) against their
NumPy twins (below: the NumPy code they replaced, and an obvious seam count) on
random and edge cases, and the seam rule on hand-built components: a large
one-material piece the material head calls two classes, with no contact between
them, stays one; two touching pieces of different materials with contact along
their seam still split. ``NUMBA_DISABLE_JIT=1`` runs the same tests through the
kernels' Python."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.kernels_learned import _core_regions, _material_labels, _piece_classes, _seam_merge
from vision.learned import (
    MATERIAL_COHERENCE,
    NO_MATERIAL,
    material_labels,
    material_seeds,
    split_learned,
)
from vision.segment import SegmentParams

P = SegmentParams()


# --- NumPy twins ---------------------------------------------------------------------


def labels_twin(logits: np.ndarray, conf: float, shape: tuple[int, int]) -> np.ndarray:
    """``material_labels`` as session 12 shipped it: a softmax over the classes."""
    top = logits.max(axis=0)
    lse = top + np.log(np.exp(logits - top).sum(axis=0))
    lab = logits.argmax(axis=0).astype(np.uint8)
    lab[top - lse < np.log(max(conf, 1e-9))] = NO_MATERIAL
    full = np.repeat(np.repeat(lab, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]
    out = np.full(shape, NO_MATERIAL, np.uint8)
    out[: full.shape[0], : full.shape[1]] = full
    return out


def _two_classes(cls: np.ndarray, min_px: float) -> bool:
    counts = np.bincount(cls, minlength=NO_MATERIAL + 1)[:NO_MATERIAL]
    return int(np.count_nonzero(counts >= min_px)) >= 2


def _class_regions(region: np.ndarray, mat: np.ndarray, min_px: float) -> list[np.ndarray]:
    cls = mat[region]
    counts = np.bincount(cls[cls != NO_MATERIAL], minlength=1)
    out = []
    for c in np.flatnonzero(counts >= min_px).tolist():
        sel = (region & (mat == c)).view(np.uint8)
        n_r, rl, rst, _ = cv2.connectedComponentsWithStats(sel, connectivity=4, ltype=cv2.CV_32S)
        if n_r < 2:
            continue
        big = int(np.argmax(rst[1:, cv2.CC_STAT_AREA])) + 1
        area = rst[big, cv2.CC_STAT_AREA]
        if area >= min_px and area >= MATERIAL_COHERENCE * counts[c]:
            out.append(rl == big)
    return out


def seeds_twin(
    own: np.ndarray, mk: np.ndarray, mat: np.ndarray, min_seed: float, min_mat: float
) -> tuple[np.ndarray, int, np.ndarray]:
    """``material_seeds`` and the choice around it (``split_learned``) as session 12
    shipped them in NumPy, with each seed's origin added."""
    n_m = int(mk.max(initial=0)) + 1
    area = np.bincount(mk.ravel(), minlength=n_m)
    mids = np.flatnonzero(area[1:] >= min_seed) + 1
    lut = np.zeros(n_m, np.int32)
    if not (_two_classes(mat[mk > 0], min_seed) or _two_classes(mat[own], min_mat)):
        lut[mids] = np.arange(1, mids.size + 1, dtype=np.int32)
        return lut[mk], int(mids.size), np.concatenate([[0], mids]).astype(np.int64)
    table = np.bincount((mk.astype(np.int64) * 256 + mat).ravel(), minlength=n_m * 256)
    table = table.reshape(n_m, 256)[:, :NO_MATERIAL]
    multi = np.count_nonzero(table[mids] >= min_seed, axis=1) >= 2
    single = mids[~multi]
    lut[single] = np.arange(1, single.size + 1, dtype=np.int32)
    seeded = lut[mk]
    origin = [0, *single.tolist()]
    g = int(single.size)
    for m in mids[multi].tolist():
        region = mk == m
        parts = _class_regions(region, mat, min_seed)
        if len(parts) < 2:
            parts = [region]
        for part in parts:
            g += 1
            seeded[part] = g
            origin.append(m)
    if g >= 2 or not _two_classes(mat[own], min_mat):
        return seeded, g, np.array(origin, np.int64)
    parts = _class_regions(own, mat, min_mat)
    if len(parts) < 2:
        return seeded, g, np.array(origin, np.int64)
    seeded[:] = 0
    for k, part in enumerate(parts, 1):
        seeded[part] = k
    return seeded, len(parts), np.zeros(len(parts) + 1, np.int64)


def seam_twin(
    markers: np.ndarray,
    contact: np.ndarray,
    r0: int,
    c0: int,
    origin: np.ndarray,
    cls: np.ndarray,
    g_n: int,
    share: float,
    radius: int,
) -> tuple[np.ndarray, int]:
    """``_seam_merge`` by the obvious loops, on a copy: (markers, pieces left)."""
    out = markers.copy()
    seam: dict[tuple[int, int], list[int]] = {}
    hh, ww = markers.shape
    for r in range(1, hh - 1):
        for c in range(1, ww - 1):
            if markers[r, c] != -1:
                continue
            near = sorted({int(v) for v in markers[r - 1 : r + 2, c - 1 : c + 2].ravel()
                           if 0 < v <= g_n})  # fmt: skip
            fr, fc = r0 + r - 1, c0 + c - 1
            rows = slice(max(fr - radius, 0), fr + radius + 1)
            win = contact[rows, max(fc - radius, 0) : fc + radius + 1]
            for i, a in enumerate(near):
                for b in near[i + 1 :]:
                    seam.setdefault((a, b), [0, 0])
                    seam[(a, b)][0] += 1
                    seam[(a, b)][1] += int(win.any())
    group = list(range(g_n + 1))

    def root(a: int) -> int:
        while group[a] != a:
            a = group[a]
        return a

    for (a, b), (n, hit) in sorted(seam.items()):
        same = origin[a] == origin[b] or (cls[a] == cls[b] and cls[a] != NO_MATERIAL)
        if same and hit < share * n:
            ra, rb = root(a), root(b)
            group[max(ra, rb)] = min(ra, rb)
    roots = sorted({root(a) for a in range(1, g_n + 1)})
    new = {a: roots.index(root(a)) + 1 for a in range(1, g_n + 1)}
    new[g_n + 1] = len(roots) + 1
    for v, k in new.items():
        out[markers == v] = k
    return out, len(roots)


# --- kernels against twins --------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(7, 9), (8, 8), (1, 1), (5, 2)])
def test_material_labels_kernel_matches_the_softmax(seed: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(seed)
    h2, w2 = (shape[0] + 1) // 2, (shape[1] + 1) // 2
    logits = (rng.normal(size=(10, h2, w2)) * rng.uniform(0.5, 4.0)).astype(np.float32)
    for conf in (0.0, 0.25, 0.4, 0.7, 1.0):
        want = labels_twin(logits, conf, shape)
        got = material_labels(logits, conf, shape)
        p_top = 1.0 / np.exp(logits - logits.max(axis=0)).sum(axis=0)
        near = np.repeat(np.repeat(np.abs(p_top - conf) < 1e-5, 2, 0), 2, 1)[: shape[0], : shape[1]]
        assert got.dtype == np.uint8 and got.shape == shape
        assert (got == want)[~near].all()
        fg = (rng.random(shape) < 0.3).astype(np.uint8)
        blk = np.zeros(shape, bool)  # 2 x 2 blocks holding foreground
        for r in range(0, shape[0], 2):
            for c in range(0, shape[1], 2):
                blk[r : r + 2, c : c + 2] = fg[r : r + 2, c : c + 2].any()
        masked = material_labels(logits, conf, shape, fg)
        assert (masked[~blk] == NO_MATERIAL).all() and ((masked == want) | near)[blk].all()


def test_material_labels_smaller_output_and_bad_input() -> None:
    """A net output that does not reach the asked shape: the rest is unsure; logits
    of the wrong rank are refused in one line."""
    logits = np.zeros((3, 1, 1), np.float32)
    logits[2] = 9.0
    got = material_labels(logits, 0.5, (4, 3))
    assert (got[:2, :2] == 2).all() and (got[2:] == NO_MATERIAL).all()
    assert (got[:, 2] == NO_MATERIAL).all()
    out = np.zeros((0, 0), np.uint8)
    _material_labels(logits, 0.5, np.zeros((0, 0), np.uint8), out)  # empty: nothing to write
    fg = np.zeros((4, 3), np.uint8)
    fg[3, 0] = 1  # only the lower left 2 x 2 block holds foreground (no logits reach it)
    assert (material_labels(logits, 0.5, (4, 3), fg) == NO_MATERIAL).all()
    fg[1, 1] = 255
    assert (material_labels(logits, 0.5, (4, 3), fg)[:2, :2] == 2).all()
    with pytest.raises(ValueError, match="material_labels: fg must be"):
        material_labels(logits, 0.5, (4, 3), fg[:2])
    with pytest.raises(ValueError, match="material_labels: logits must be"):
        material_labels(np.zeros((2, 2), np.float32), 0.5, (2, 2))


def _random_component(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = rng.integers(6, 40, size=2).tolist()
    own = np.zeros((h, w), bool)
    own[1 : h - 1, 1 : w - 1] = True
    own &= rng.random((h, w)) < 0.97
    core = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (5, 5), 0)
    seeds = ((core > np.quantile(core, 0.6)) & own).view(np.uint8)
    _, mk = cv2.connectedComponents(seeds, connectivity=4, ltype=cv2.CV_32S)
    n_cls = int(rng.integers(1, 5))
    mat = np.zeros((h, w), np.uint8)
    cuts = np.sort(rng.integers(0, w, size=n_cls - 1))
    for k, c in enumerate(cuts.tolist(), 1):
        mat[:, c:] = k
    mat[rng.random((h, w)) < rng.uniform(0.0, 0.3)] = NO_MATERIAL
    speck = rng.random((h, w)) < 0.05
    mat[speck] = rng.integers(0, 10, size=int(speck.sum()))
    mat[~own] = NO_MATERIAL
    return own, mk, mat


@pytest.mark.parametrize("seed", range(40))
def test_component_seeds_kernel_matches_the_numpy_twin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    own, mk, mat = _random_component(rng)
    for min_seed, min_mat in ((2.0, 8.0), (5.0, 20.0), (10.0, 50.0), (1.0, 1.0)):
        want = seeds_twin(own, mk, mat, min_seed, min_mat)
        got = material_seeds(own, mk, mat, min_seed, min_mat)
        assert got[1] == want[1]
        assert np.array_equal(got[0], want[0])
        assert got[2].tolist() == want[2].tolist()


@pytest.mark.parametrize("seed", range(20))
def test_component_seeds_one_core_matches_the_numpy_twin(seed: int) -> None:
    """One core region (or none): the component's own material regions seed it."""
    rng = np.random.default_rng(100 + seed)
    own, _, mat = _random_component(rng)
    h, w = own.shape
    mk = np.zeros((h, w), np.int32)
    if seed % 4:
        mk[h // 3 : h // 3 + 3, w // 3 : w // 3 + 3] = 1
    mk[~own] = 0
    for min_seed, min_mat in ((2.0, 8.0), (2.0, 30.0), (20.0, 4.0)):
        want = seeds_twin(own, mk, mat, min_seed, min_mat)
        got = material_seeds(own, mk, mat, min_seed, min_mat)
        assert got[1] == want[1]
        assert np.array_equal(got[0], want[0])
        assert got[2].tolist() == want[2].tolist()


def test_component_seeds_edge_cases() -> None:
    """No core at all, all unsure, a one-pixel box; mismatched shapes refused."""
    own = np.ones((5, 6), bool)
    none = np.zeros((5, 6), np.int32)
    mat = np.full((5, 6), NO_MATERIAL, np.uint8)
    seeded, g, origin = material_seeds(own, none, mat, 1.0, 1.0)
    assert g == 0 and not seeded.any() and origin.tolist() == [0]
    seeded, g, _ = material_seeds(np.ones((1, 1), bool), np.ones((1, 1), np.int32),
                                  np.zeros((1, 1), np.uint8), 1.0, 1.0)  # fmt: skip
    assert g == 1 and seeded[0, 0] == 1
    with pytest.raises(ValueError, match="material_seeds: own, mk and mat"):
        material_seeds(own, none[:, :5], mat, 1.0, 1.0)


def _watershed(seeded: np.ndarray, own: np.ndarray, g_n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = own.shape
    markers = np.full((h + 2, w + 2), g_n + 1, np.int32)
    inner = markers[1:-1, 1:-1]
    inner[own] = 0
    inner[seeded > 0] = seeded[seeded > 0]
    img = rng.integers(100, 160, size=(h + 2, w + 2, 3)).astype(np.uint8)
    cv2.watershed(img, markers)
    return markers


@pytest.mark.parametrize("seed", range(30))
def test_seam_merge_kernel_matches_the_numpy_twin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    own, mk, mat = _random_component(rng)
    seeded, g_n, origin = material_seeds(own, mk, mat, 2.0, 8.0)
    if g_n < 2:
        seeded = np.zeros(own.shape, np.int32)
        seeded[own.shape[0] // 2, 2] = 1
        seeded[own.shape[0] // 2, own.shape[1] - 3] = 2
        g_n, origin = 2, np.array([0, 0, 0], np.int64)
    markers = _watershed(seeded, own, g_n, seed)
    h, w = own.shape
    frame = rng.random((h + 10, w + 12)) < rng.uniform(0.0, 0.1)
    r0, c0 = int(rng.integers(0, 10)), int(rng.integers(0, 12))
    for same_class in (False, True):
        cls = _piece_classes(markers, mat, g_n) if same_class else np.full(g_n + 1, NO_MATERIAL)
        for share in (0.05, 0.3, 1.0):
            want, k_want = seam_twin(markers, frame, r0, c0, origin, cls, g_n, share, 2)
            got = markers.copy()
            k = _seam_merge(got, frame, r0, c0, origin, cls.astype(np.int64), g_n, share, 2)
            assert k == k_want
            assert np.array_equal(got, want)


def test_piece_classes_majority_and_none() -> None:
    markers = np.full((5, 6), 3, np.int32)
    markers[1:4, 1:3] = 1
    markers[1:4, 3:5] = 2
    mat = np.full((3, 4), NO_MATERIAL, np.uint8)
    mat[:, 0] = 4
    mat[:2, 1] = 6  # piece 1: 3 px of 4, 2 of 6
    assert _piece_classes(markers, mat, 2).tolist() == [NO_MATERIAL, 4, NO_MATERIAL]


# --- the seam rule on hand-built components ---------------------------------------


def _plate(two_pieces: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 30 x 60 low-res component (one plate, or two 30 x 30 plates side by side),
    its stats and centroids, and one core across the middle."""
    mask = np.zeros((60, 100), bool)
    mask[15:45, 20:80] = True
    _, lab, stats, cents = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    core = np.zeros(mask.shape, np.float32)
    core[22:38, 30:70] = 0.9
    if two_pieces:  # two cores, one each side
        core[22:38, 47:53] = 0.0
    return lab.astype(np.int32), stats.astype(np.float64), cents, core


@pytest.mark.parametrize("two_cores", [False, True])
def test_one_plate_the_material_head_calls_two_classes_stays_one(two_cores: bool) -> None:
    """A large plate whose left half the material head calls brass and right half
    copper (one fragment: no contact anywhere) stays one with the seam rule: with one
    core (the material cut) and, as the rule of one class does not apply (two
    classes), with two cores only where they are not one class: two cores of one
    class with no contact stay one under ``learned_seam_cores``."""
    labels, stats, cents, core = _plate(two_cores)
    mat = np.full(labels.shape, NO_MATERIAL, np.uint8)
    mat[15:45, 20:50] = 4  # brass
    mat[15:45, 50:80] = 3  # copper
    small = np.full((*labels.shape, 3), 150, np.uint8)
    no_contact = np.zeros(labels.shape, bool)
    got = labels.copy()
    split_learned(small, got, stats.copy(), cents.copy(), core, P, mat, no_contact)
    # one core: the materials' cut is judged and undone; two cores: the cores' cut stands
    assert np.unique(got[got > 0]).size == (2 if two_cores else 1)
    got = labels.copy()
    split_learned(small, got, stats.copy(), cents.copy(), core, P, mat)  # no contact map
    assert np.unique(got[got > 0]).size == 2
    one = np.full(labels.shape, 4, np.uint8)  # all brass: a one-material plate
    same = SegmentParams(learned_seam_cores=True)
    got = labels.copy()
    split_learned(small, got, stats.copy(), cents.copy(), core, same, one, no_contact)
    assert np.unique(got[got > 0]).size == 1  # two cores of one class, no contact: one


def test_two_touching_pieces_of_two_materials_with_contact_split() -> None:
    """Two plates of different materials touching along a column, the contact head
    firing along it: still two pieces, cut at the contact."""
    labels, stats, cents, core = _plate(False)
    mat = np.full(labels.shape, NO_MATERIAL, np.uint8)
    mat[15:45, 20:50] = 4  # brass
    mat[15:45, 50:80] = 0  # steel
    contact = np.zeros(labels.shape, bool)
    contact[15:45, 48:52] = True  # both sides of the seam
    small = np.full((*labels.shape, 3), 150, np.uint8)
    for p in (P, SegmentParams(learned_seam_cores=True)):
        got = labels.copy()
        split_learned(small, got, stats.copy(), cents.copy(), core, p, mat, contact)
        assert np.unique(got[got > 0]).size == 2
        assert got[30, 25] != got[30, 75]
        assert (got[15:45, 20:46] == got[30, 25]).all() and (got[15:45, 54:80] == got[30, 75]).all()
    off = SegmentParams(learned_seam_contact=0.0)  # the rule off: no contact needed
    got = labels.copy()
    split_learned(small, got, stats.copy(), cents.copy(), core, off, mat, np.zeros_like(contact))
    assert np.unique(got[got > 0]).size == 2


@pytest.mark.parametrize("seed", range(20))
def test_core_regions_number_as_opencv(seed: int) -> None:
    """The kernel's core regions: those of ``cv2.connectedComponents`` (4-connected),
    numbered alike."""
    rng = np.random.default_rng(seed)
    own, _, _ = _random_component(rng)
    core = cv2.GaussianBlur(rng.random(own.shape).astype(np.float32), (3, 3), 0)
    thr = float(np.quantile(core, 0.5))
    n_cv, want = cv2.connectedComponents(((core >= thr) & own).view(np.uint8), connectivity=4,
                                         ltype=cv2.CV_32S)  # fmt: skip
    got, n = _core_regions(own, core, thr, np.zeros(own.size, np.int64))
    assert n == n_cv and np.array_equal(got, want)


def test_loading_a_cue_compiles_the_split_kernels() -> None:
    """``InstanceCue.load`` runs ``warm_split_kernels``: in a fresh interpreter no
    kernel of the learned split has a compiled signature before it, all do after."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import vision.kernels_learned as kl\n"
        "from models.seg_models import resolve_seg_model\n"
        "from vision.learned import InstanceCue\n"
        "ks = (kl._frame_seeds, kl._seam_merge, kl._piece_classes, kl._material_labels)\n"
        "before = [bool(k.signatures) for k in ks]\n"
        "InstanceCue.load(resolve_seg_model('builtin:seg-v2'))\n"
        "print(before, [bool(k.signatures) for k in ks])\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str([False] * 4) + " " + str([True] * 4), proc.stdout
