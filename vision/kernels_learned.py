# mypy: disallow-untyped-defs=False
"""Numba kernels of the learned split (``vision.learned``).

Private: ``vision.learned`` prepares their input and keeps the public wrappers
(``material_labels``, ``material_seeds``, ``split_learned``). Their NumPy twins
are in ``tests/vision/test_learned_kernels.py``. Coordinates are low-resolution
pixels (row, column) of one component's box; all release the GIL.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NO_MATERIAL = 255  # as ``vision.learned.NO_MATERIAL``


@njit(cache=True, nogil=True, error_model="numpy")
def _material_labels(logits, conf, fg, out):
    """(C, h2, w2) float32 material logits -> ``out`` ((h, w) uint8, filled): each
    half-res pixel's argmax class where its softmax probability is at least
    ``conf`` (else ``NO_MATERIAL``), repeated 2 x 2 and cut to ``out``; ``out``
    pixels the logits do not reach, and 2 x 2 blocks without a foreground pixel in
    ``fg`` ((h, w) uint8; (0, 0): all read), are ``NO_MATERIAL``. No softmax map:
    per pixel the top logit and sum(exp(logit - top)) (p_top = 1 / that sum), the
    sum stopped once p_top < ``conf`` is certain."""
    n_c, h2, w2 = logits.shape
    h, w = out.shape
    every = fg.shape[0] == 0
    limit = 1.0 / conf if conf > 0.0 else np.inf
    out[:] = NO_MATERIAL
    for r in range(min(h2, (h + 1) // 2)):
        for c in range(min(w2, (w + 1) // 2)):
            if not every:
                seen = False
                for rr in range(2 * r, min(2 * r + 2, h)):
                    for cc in range(2 * c, min(2 * c + 2, w)):
                        seen = seen or fg[rr, cc] != 0
                if not seen:
                    continue
            top = logits[0, r, c]
            arg = 0
            for k in range(1, n_c):
                v = logits[k, r, c]
                if v > top:
                    top = v
                    arg = k
            s = 0.0
            for k in range(n_c):
                s += math.exp(float(logits[k, r, c]) - float(top))
                if s > limit:
                    break
            if s > limit:
                continue
            for rr in range(2 * r, min(2 * r + 2, h)):
                for cc in range(2 * c, min(2 * c + 2, w)):
                    out[rr, cc] = arg


@njit(cache=True, nogil=True)
def _largest_region(inside, mat, cls, work, stack):
    """The largest 4-connected region of pixels ``inside`` (bool (h, w)) with
    ``mat == cls`` (the first found in raster order among equals): its size and
    its label in ``work`` ((h, w) int32, scratch: region k of the pass is k, others
    0). ``stack``: (h * w,) int64 scratch."""
    h, w = inside.shape
    work[:] = 0
    n = 0
    best = 0
    best_n = 0
    for r0 in range(h):
        for c0 in range(w):
            if work[r0, c0] != 0 or not inside[r0, c0] or mat[r0, c0] != cls:
                continue
            n += 1
            work[r0, c0] = n
            stack[0] = r0 * w + c0
            top = 1
            size = 0
            while top > 0:
                top -= 1
                r, c = stack[top] // w, stack[top] % w
                size += 1
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    inb = 0 <= rr < h and 0 <= cc < w
                    if inb and work[rr, cc] == 0 and inside[rr, cc] and mat[rr, cc] == cls:
                        work[rr, cc] = n
                        stack[top] = rr * w + cc
                        top += 1
            if size > best_n:
                best_n = size
                best = n
    return best_n, best


@njit(cache=True, nogil=True)
def _class_regions(inside, mat, min_px, coherence, seeded, first, work, stack):
    """One seed per class of ``mat`` inside ``inside`` whose largest 4-connected
    region there has at least ``min_px`` pixels and ``coherence`` of the class's
    pixels in ``inside``: that region, written into ``seeded`` as ``first``,
    ``first + 1``, ... (class order) only when there are two or more of them.
    Returns how many it wrote (0 or >= 2)."""
    h, w = inside.shape
    counts = np.zeros(NO_MATERIAL, np.int64)
    for r in range(h):
        for c in range(w):
            if inside[r, c] and mat[r, c] != NO_MATERIAL:
                counts[mat[r, c]] += 1
    keep = np.zeros(NO_MATERIAL, np.bool_)
    n_keep = 0
    for k in range(NO_MATERIAL):
        if counts[k] >= min_px:
            size, _ = _largest_region(inside, mat, k, work, stack)
            if size >= min_px and size >= coherence * counts[k]:
                keep[k] = True
                n_keep += 1
    if n_keep < 2:
        return 0
    g = first
    for k in range(NO_MATERIAL):
        if keep[k]:
            _, lab = _largest_region(inside, mat, k, work, stack)
            for r in range(h):
                for c in range(w):
                    if work[r, c] == lab:
                        seeded[r, c] = g
            g += 1
    return n_keep


@njit(cache=True, nogil=True)
def _component_seeds(own, mk, n_m, mat, min_seed, min_mat, coherence):
    """One component's watershed seeds in its box (see ``vision.learned.material_seeds``).

    ``own``: (h, w) bool the component's pixels; ``mk``: (h, w) int32 its core
    regions 1..n_m-1 (0 none); ``mat``: (h, w) uint8 material class index
    (``NO_MATERIAL`` unsure; all of it for a cue without materials). Returns
    (h, w) int32 seed number (0 none, 1..g), g and (g + 1,) int64 each seed's
    origin: the core region it comes from, 0 for a seed of the component's
    material regions (pieces of one origin are one core cut by materials)."""
    h, w = own.shape
    area = np.zeros(n_m, np.int64)
    table = np.zeros((n_m, NO_MATERIAL), np.int64)  # core region x class pixels
    own_cls = np.zeros(NO_MATERIAL, np.int64)
    seed_cls = np.zeros(NO_MATERIAL, np.int64)
    for r in range(h):
        for c in range(w):
            m = mk[r, c]
            k = mat[r, c]
            area[m] += 1
            if k != NO_MATERIAL:
                table[m, k] += 1
                if own[r, c]:
                    own_cls[k] += 1
                    if m > 0:
                        seed_cls[k] += 1
    n_seed_cls = 0
    n_own_cls = 0
    for k in range(NO_MATERIAL):
        if seed_cls[k] >= min_seed:
            n_seed_cls += 1
        if own_cls[k] >= min_mat:
            n_own_cls += 1
    two_own = n_own_cls >= 2
    use_mat = n_seed_cls >= 2 or two_own
    lut = np.zeros(n_m, np.int32)
    multi = np.zeros(n_m, np.bool_)
    g = 0
    for m in range(1, n_m):
        if area[m] < min_seed:
            continue
        if use_mat:
            n_cls = 0
            for k in range(NO_MATERIAL):
                if table[m, k] >= min_seed:
                    n_cls += 1
            if n_cls >= 2:
                multi[m] = True
                continue
        g += 1
        lut[m] = g
    seeded = np.zeros((h, w), np.int32)
    origin = np.zeros(h * w + 2, np.int64)  # g <= pixels
    for r in range(h):
        for c in range(w):
            seeded[r, c] = lut[mk[r, c]]
    for m in range(1, n_m):
        if lut[m] > 0:
            origin[lut[m]] = m
    work = np.zeros((h, w), np.int32)
    stack = np.zeros(h * w, np.int64)
    for m in range(1, n_m):
        if not multi[m]:
            continue
        region = mk == m
        got = _class_regions(region, mat, min_seed, coherence, seeded, g + 1, work, stack)
        if got == 0:  # not two coherent classes: the core region, whole
            for r in range(h):
                for c in range(w):
                    if region[r, c]:
                        seeded[r, c] = g + 1
            got = 1
        for j in range(g + 1, g + got + 1):
            origin[j] = m
        g += got
    if g < 2 and two_own:
        parts = np.zeros((h, w), np.int32)
        got = _class_regions(own, mat, min_mat, coherence, parts, 1, work, stack)
        if got >= 2:
            seeded[:] = parts
            g = got
            origin[: g + 1] = 0
    return seeded, g, origin[: g + 1].copy()


@njit(cache=True, nogil=True)
def _piece_classes(markers, mat, g_n):
    """(g_n + 1,) int64 each watershed piece's most common class of ``mat`` ((h, w)
    uint8, the box without the markers' 1 px frame; ``NO_MATERIAL`` aside; the
    lowest class among equals), ``NO_MATERIAL`` for a piece with none."""
    h, w = mat.shape
    hist = np.zeros((g_n + 1, NO_MATERIAL), np.int64)
    for r in range(h):
        for c in range(w):
            v = markers[r + 1, c + 1]
            k = mat[r, c]
            if 0 < v <= g_n and k != NO_MATERIAL:
                hist[v, k] += 1
    out = np.full(g_n + 1, NO_MATERIAL, np.int64)
    for a in range(1, g_n + 1):
        best = 0
        for k in range(NO_MATERIAL):
            if hist[a, k] > best:
                best = hist[a, k]
                out[a] = k
    return out


@njit(cache=True, nogil=True)
def _seam_merge(markers, contact, r0, c0, origin, cls, g_n, share, radius):
    """Pieces of one watershed (``markers``: (h + 2, w + 2) int32 with a 1 px frame,
    pieces 1..g_n, the belt g_n + 1, dividing lines -1) whose common seam shows
    no contact: merged, in place. A seam between pieces a and b is the dividing
    line's pixels with both among their 8 neighbours; it shows contact when at
    least ``share`` of those pixels have a ``contact`` pixel ((H, W) bool, the
    frame; the box at ``r0``, ``c0``) within ``radius``. Judged: seams between
    pieces of one ``origin`` ((g_n + 1,) int64: a core cut by materials, or the
    component's material regions), and between pieces of one class ``cls``
    ((g_n + 1,) int64, ``NO_MATERIAL`` none: never; all ``NO_MATERIAL`` to judge
    the materials' cuts only). Returns the number of pieces left (renumbered
    1..; the belt after them)."""
    hh, ww = markers.shape
    big_h, big_w = contact.shape
    seam = np.zeros((g_n + 1, g_n + 1), np.int64)
    seen = np.zeros((g_n + 1, g_n + 1), np.int64)
    near = np.zeros(9, np.int64)
    for r in range(1, hh - 1):
        for c in range(1, ww - 1):
            if markers[r, c] != -1:
                continue
            n = 0
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    v = markers[r + dr, c + dc]
                    if 0 < v <= g_n:
                        dup = False
                        for j in range(n):
                            dup = dup or near[j] == v
                        if not dup:
                            near[n] = v
                            n += 1
            if n < 2:
                continue
            hit = False
            fr, fc = r0 + r - 1, c0 + c - 1  # the frame's pixel (the markers' frame is 1 px)
            for rr in range(max(fr - radius, 0), min(fr + radius + 1, big_h)):
                for cc in range(max(fc - radius, 0), min(fc + radius + 1, big_w)):
                    hit = hit or contact[rr, cc]
            for i in range(n):
                for j in range(i + 1, n):
                    a, b = min(near[i], near[j]), max(near[i], near[j])
                    seam[a, b] += 1
                    if hit:
                        seen[a, b] += 1
    parent = np.arange(g_n + 1)
    for a in range(1, g_n + 1):
        for b in range(a + 1, g_n + 1):
            judged = origin[a] == origin[b] or (cls[a] == cls[b] and cls[a] != NO_MATERIAL)
            if seam[a, b] == 0 or not judged or seen[a, b] >= share * seam[a, b]:
                continue
            ra, rb = a, b
            while parent[ra] != ra:
                ra = parent[ra]
            while parent[rb] != rb:
                rb = parent[rb]
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    new = np.zeros(g_n + 2, np.int32)
    k = 0
    for a in range(1, g_n + 1):
        ra = a
        while parent[ra] != ra:
            ra = parent[ra]
        if ra == a:
            k += 1
            new[a] = k
        else:
            new[a] = new[ra]
    new[g_n + 1] = k + 1
    if k == g_n:
        return k
    for r in range(hh):
        for c in range(ww):
            v = markers[r, c]
            if v > 0:
                markers[r, c] = new[v]
    return k


@njit(cache=True, nogil=True)
def _core_regions(own, core, thr, stack):
    """(h, w) int32 4-connected regions of ``own`` pixels with ``core >= thr``,
    numbered 1.. in raster order of their first pixel (as ``cv2.connectedComponents``),
    and their count + 1. ``stack``: (h * w,) int64 scratch."""
    h, w = own.shape
    mk = np.zeros((h, w), np.int32)
    n = 0
    for r0 in range(h):
        for c0 in range(w):
            if mk[r0, c0] != 0 or not own[r0, c0] or core[r0, c0] < thr:
                continue
            n += 1
            mk[r0, c0] = n
            stack[0] = r0 * w + c0
            top = 1
            while top > 0:
                top -= 1
                r, c = stack[top] // w, stack[top] % w
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    inb = 0 <= rr < h and 0 <= cc < w
                    if inb and mk[rr, cc] == 0 and own[rr, cc] and core[rr, cc] >= thr:
                        mk[rr, cc] = n
                        stack[top] = rr * w + cc
                        top += 1
    return mk, n + 1


@njit(cache=True, nogil=True)
def _frame_seeds(labels, core, mat, cands, boxes, thr, min_seed, min_mat, coherence, seeded):
    """Every candidate component's seeds (``_component_seeds``) in one call.

    ``labels``: (H, W) int32; ``core``: (H, W) float32; ``mat``: (H, W) uint8;
    ``cands``: (k,) int64 label values; ``boxes``: (k, 4) int64 left, top, width,
    height; ``seeded``: (H, W) int32 zeros, gets each component's seed numbers on
    its own pixels. Returns (k,) int64 seed counts g, and each candidate's origins
    (``_component_seeds``) packed: candidate i's g + 1 at ``offsets[i]``."""
    k = cands.size
    g_all = np.zeros(k, np.int64)
    offsets = np.zeros(k + 1, np.int64)
    total = 0
    for i in range(k):
        total += boxes[i, 2] * boxes[i, 3] + 2
    origins = np.zeros(total, np.int64)
    for i in range(k):
        lab = cands[i]
        x, y, w, h = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        own = np.zeros((h, w), np.bool_)
        for r in range(h):
            for c in range(w):
                own[r, c] = labels[y + r, x + c] == lab
        stack = np.zeros(h * w, np.int64)
        mk, n_m = _core_regions(own, core[y : y + h, x : x + w], thr, stack)
        box_mat = np.ascontiguousarray(mat[y : y + h, x : x + w])
        s, g, origin = _component_seeds(own, mk, n_m, box_mat, min_seed, min_mat, coherence)
        g_all[i] = g
        origins[offsets[i] : offsets[i] + g + 1] = origin
        offsets[i + 1] = offsets[i] + g + 1
        if g >= 2:
            for r in range(h):
                for c in range(w):
                    if own[r, c] and s[r, c] > 0:
                        seeded[y + r, x + c] = s[r, c]
    return g_all, offsets, origins
