# mypy: disallow-untyped-defs=False
"""Numba kernels of the touching-fragment split (``vision.split``).

Private: ``vision.split.split_touching`` prepares their input. Coordinates are
low-resolution pixels (row, column); ``labels`` int32, ``dist`` float32 distance
to the nearest background pixel. All release the GIL.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from vision.kernels import _solidity


@njit(cache=True, nogil=True, error_model="numpy")
def _label_max(labels, dist, diff, boxes, which):
    """For label values ``which`` (K,): largest ``dist`` (float32) and mean ``diff``
    (float64, the belt difference) over their pixels, read inside their boxes
    (``boxes``: (n, 4+) left, top, width, height per label value)."""
    k = which.size
    out = np.zeros(k, np.float32)
    mean = np.zeros(k, np.float64)
    for i in range(k):
        lab = which[i]
        x0, y0 = int(boxes[lab, 0]), int(boxes[lab, 1])
        x1, y1 = x0 + int(boxes[lab, 2]), y0 + int(boxes[lab, 3])
        total = 0.0
        count = 0.0
        top = np.float32(0.0)
        for r in range(y0, y1):
            for c in range(x0, x1):
                if labels[r, c] == lab:
                    top = max(top, dist[r, c])
                    total += diff[r, c]
                    count += 1.0
        out[i] = top
        mean[i] = total / max(count, 1.0)
    return out, mean


@njit(cache=True, nogil=True, error_model="numpy")
def _peaks(labels, dist, lab, r0, c0, r1, c1, min_radius):
    """(P, 3) float64 row, column, dist of the local maxima (3x3, plateaus kept) of
    ``dist`` on label ``lab`` inside rows r0..r1, columns c0..c1 (end exclusive),
    at least ``min_radius`` deep; sorted deepest first."""
    h, w = labels.shape[0], labels.shape[1]
    out = np.empty(((r1 - r0) * (c1 - c0), 3), np.float64)
    k = 0
    for r in range(r0, r1):
        for c in range(c0, c1):
            if labels[r, c] != lab:
                continue
            d = dist[r, c]
            if d < min_radius:
                continue
            top = True
            for dr in range(-1, 2):
                rr = r + dr
                if rr < 0 or rr >= h:
                    continue
                for dc in range(-1, 2):
                    cc = c + dc
                    if 0 <= cc < w and dist[rr, cc] > d:
                        top = False
                        break
                if not top:
                    break
            if top:
                out[k, 0], out[k, 1], out[k, 2] = r, c, d
                k += 1
    order = np.argsort(-out[:k, 2], kind="mergesort")
    return out[:k][order]


@njit(cache=True, nogil=True, error_model="numpy")
def _line_min_or_below(dist, ra, ca, rb, cb, floor):
    """Smallest ``dist`` on the straight line between two pixels (half-pixel steps), or,
    as soon as the line dips below ``floor``, the first value below it."""
    steps = int(2.0 * max(abs(rb - ra), abs(cb - ca))) + 1
    low = np.float32(1e30)
    for s in range(steps + 1):
        t = s / steps
        r = int(ra + t * (rb - ra) + 0.5)
        c = int(ca + t * (cb - ca) + 0.5)
        low = min(low, dist[r, c])
        if low < floor:
            break
    return low


@njit(cache=True, nogil=True, error_model="numpy")
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True, error_model="numpy")
def _group_peaks(peaks, dist, neck_ratio, reach):
    """Group id (0..G-1, deepest group first) of each peak, and G.

    Persistence-style merging: the connection between two peaks is the lowest
    ``dist`` on the straight line between them (its neck); connections are
    taken widest neck first, and two groups merge when the neck is at least
    ``neck_ratio`` times the shallower group's deepest peak. A saddle between
    two touching fragments joins one of them and no more; a ridge along one
    long fragment chains into one group. Only pairs closer than ``reach``
    times the deeper peak's depth are connected.
    """
    p = peaks.shape[0]
    ia = np.empty(p * (p - 1) // 2, np.int64)
    ib = np.empty_like(ia)
    neck = np.empty(ia.size, np.float64)
    e = 0
    for i in range(p):
        for j in range(i):
            ri, ci, di = peaks[i, 0], peaks[i, 1], peaks[i, 2]
            rj, cj, dj = peaks[j, 0], peaks[j, 1], peaks[j, 2]
            if math.hypot(ri - rj, ci - cj) > reach * max(di, dj) + 1.5:
                continue
            # a neck below neck_ratio x the shallower peak can never join their groups
            # (a group's depth is at least its peaks'): such pairs are left out
            floor = neck_ratio * min(di, dj)
            low = _line_min_or_below(dist, ri, ci, rj, cj, floor)
            if low < floor:
                continue
            ia[e], ib[e] = i, j
            neck[e] = low
            e += 1
    parent = np.arange(p)
    depth = peaks[:, 2].copy()  # deepest peak of each root's group
    for k in np.argsort(-neck[:e], kind="mergesort"):
        a, b = _find(parent, ia[k]), _find(parent, ib[k])
        if a != b and neck[k] >= neck_ratio * min(depth[a], depth[b]):
            parent[b] = a
            depth[a] = max(depth[a], depth[b])
    group = np.full(p, -1, np.int64)
    root_group = np.full(p, -1, np.int64)
    g = 0
    for i in range(p):  # peaks are deepest first, so groups come deepest first
        root = _find(parent, i)
        if root_group[root] < 0:
            root_group[root] = g
            g += 1
        group[i] = root_group[root]
    return group, g


@njit(cache=True, nogil=True, error_model="numpy")
def _fill_ridges(markers):
    """Pixels the watershed left on a dividing line (-1) inside the fragment take the
    label of a 4-neighbouring piece (1..); the background marker is the largest label."""
    h, w = markers.shape[0], markers.shape[1]
    bg = markers.max()
    for r in range(1, h - 1):
        for c in range(1, w - 1):
            if markers[r, c] != -1:
                continue
            best = 0
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                v = markers[rr, cc]
                if 0 < v < bg:
                    best = v
                    break
            markers[r, c] = best


@njit(cache=True, nogil=True, error_model="numpy")
def _write_pieces(labels, markers, comp_lab, r0, c0, new_ids, stats, cents, dist, max_d):
    """Write watershed pieces (markers 1..G, offset r0, c0 with a 1 px frame) of
    component ``comp_lab`` into ``labels`` as ``new_ids[g - 1]``; per piece g
    (row g-1): stats = left, top, width, height, area; cents = col, row (low-res px);
    max_d = largest ``dist``. Component pixels the pieces did not reach stay ``new_ids[0]``."""
    g_n = new_ids.size
    area = np.zeros(g_n, np.float64)
    sx = np.zeros(g_n, np.float64)
    sy = np.zeros(g_n, np.float64)
    x0 = np.full(g_n, 1 << 30, np.int64)
    y0 = np.full(g_n, 1 << 30, np.int64)
    x1 = np.full(g_n, -1, np.int64)
    y1 = np.full(g_n, -1, np.int64)
    h, w = markers.shape[0] - 2, markers.shape[1] - 2
    for r in range(h):
        for c in range(w):
            if labels[r0 + r, c0 + c] != comp_lab:
                continue
            m = markers[r + 1, c + 1]
            g = m - 1 if 0 < m <= g_n else 0
            labels[r0 + r, c0 + c] = new_ids[g]
            max_d[g] = max(max_d[g], dist[r0 + r, c0 + c])
            area[g] += 1.0
            sx[g] += c0 + c
            sy[g] += r0 + r
            x0[g] = min(x0[g], c0 + c)
            y0[g] = min(y0[g], r0 + r)
            x1[g] = max(x1[g], c0 + c)
            y1[g] = max(y1[g], r0 + r)
    for g in range(g_n):
        a = max(area[g], 1.0)
        stats[g, 0], stats[g, 1] = x0[g], y0[g]
        stats[g, 2], stats[g, 3] = x1[g] - x0[g] + 1, y1[g] - y0[g] + 1
        stats[g, 4] = area[g]
        cents[g, 0], cents[g, 1] = sx[g] / a, sy[g] / a


@njit(cache=True, nogil=True, error_model="numpy")
def _best_cut(mask, far, depth, ratio):
    """Indices (i, j) of the notch points (far: (K, 2) float64 x, y) with the smallest
    length / (depth_i + depth_j), below ``ratio``, whose straight line stays on
    ``mask`` (>= 90 % of its samples); (-1, -1) if none."""
    best_i, best_j, best_q = -1, -1, ratio
    for i in range(far.shape[0]):
        for j in range(i):
            dx, dy = far[i, 0] - far[j, 0], far[i, 1] - far[j, 1]
            length = math.hypot(dx, dy)
            q = length / (depth[i] + depth[j])
            if q >= best_q or length < 2.0:
                continue
            steps = max(int(length), 2)
            on = 0
            for s in range(steps):
                t = s / (steps - 1)
                x = int(far[j, 0] + t * dx + 0.5)
                y = int(far[j, 1] + t * dy + 0.5)
                if mask[y, x] != 0:
                    on += 1
            if on >= 0.9 * steps:
                best_i, best_j, best_q = i, j, q
    return best_i, best_j


@njit(cache=True, nogil=True, error_model="numpy")
def _two_means(small, labels, boxes, which, iters, max_px):
    """Two colour clusters of each label in ``which`` (K,): (K, 2, 3) float64 BGR
    centres, (K, 2) float64 pixel counts and (K,) float64 separation (squared
    distance of the centres over the mean squared distance of a pixel to its
    centre: about 3.5 for one Gaussian cut in two, far more for two colours).
    Lloyd's 2-means on at most ``max_px`` of its pixels (every n-th, read inside
    its box), started from the darkest and the brightest of them; ``iters`` rounds."""
    k = which.size
    cen = np.zeros((k, 2, 3), np.float64)
    cnt = np.zeros((k, 2), np.float64)
    sep = np.zeros(k, np.float64)
    for i in range(k):
        lab = which[i]
        x0, y0 = int(boxes[lab, 0]), int(boxes[lab, 1])
        x1, y1 = x0 + int(boxes[lab, 2]), y0 + int(boxes[lab, 3])
        area = int(boxes[lab, 4])
        step = max(1, area // max_px)
        buf = np.empty((area // step + 2, 3), np.float64)
        n = 0
        seen = 0
        for r in range(y0, y1):
            for c in range(x0, x1):
                if labels[r, c] != lab:
                    continue
                if seen % step == 0 and n < buf.shape[0]:
                    for q in range(3):
                        buf[n, q] = small[r, c, q]
                    n += 1
                seen += 1
        if n < 2:
            continue
        lo, hi = 0, 0
        for j in range(n):
            s = buf[j, 0] + buf[j, 1] + buf[j, 2]
            if s < buf[lo, 0] + buf[lo, 1] + buf[lo, 2]:
                lo = j
            if s > buf[hi, 0] + buf[hi, 1] + buf[hi, 2]:
                hi = j
        a = buf[lo].copy()
        b = buf[hi].copy()
        na = nb = 0.0
        for _ in range(iters):
            sa = np.zeros(3)
            sb = np.zeros(3)
            na = nb = 0.0
            for j in range(n):
                da = 0.0
                db = 0.0
                for q in range(3):
                    da += (buf[j, q] - a[q]) ** 2
                    db += (buf[j, q] - b[q]) ** 2
                if da <= db:
                    sa += buf[j]
                    na += 1.0
                else:
                    sb += buf[j]
                    nb += 1.0
            if na > 0:
                a = sa / na
            if nb > 0:
                b = sb / nb
        sse = 0.0
        for j in range(n):
            da = 0.0
            db = 0.0
            for q in range(3):
                da += (buf[j, q] - a[q]) ** 2
                db += (buf[j, q] - b[q]) ** 2
            sse += min(da, db)
        gap = 0.0
        for q in range(3):
            cen[i, 0, q] = a[q]
            cen[i, 1, q] = b[q]
            gap += (a[q] - b[q]) ** 2
        cnt[i, 0] = na * step
        cnt[i, 1] = nb * step
        sep[i] = gap / max(sse / n, 1e-9)
    return cen, cnt, sep


@njit(cache=True, nogil=True, error_model="numpy")
def _comp_mask(labels, lab, r0, c0, h, w):
    """(h+2, w+2) uint8: 1 where ``labels[r0:r0+h, c0:c0+w] == lab``, a 1 px frame of 0."""
    out = np.zeros((h + 2, w + 2), np.uint8)
    for r in range(h):
        for c in range(w):
            if labels[r0 + r, c0 + c] == lab:
                out[r + 1, c + 1] = 1
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _draw_line0(img, x1, y1, x2, y2):
    """Set the pixels of the 8-connected line (x1, y1)-(x2, y2) to 0, pixel for pixel as
    ``cv2.line(img, p1, p2, 0, 1, cv2.LINE_8)`` (OpenCV's ``LineIterator``, drawn
    left to right); both ends inside ``img``."""
    dx, dy = x2 - x1, y2 - y1
    sx, sy = 1, 1
    if dx < 0:  # left to right: start from the other end
        dx, dy = -dx, -dy
        x1, y1 = x2, y2
    if dy < 0:
        dy = -dy
        sy = -1
    vert = dy > dx
    if vert:
        dx, dy = dy, dx
    err = dx - (dy + dy)
    x, y = x1, y1
    for _ in range(dx + 1):
        img[y, x] = 0
        plus = err < 0
        err += -(dy + dy) + ((dx + dx) if plus else 0)
        if vert:  # the long axis is y
            y += sy
            if plus:
                x += sx
        else:
            x += sx
            if plus:
                y += sy


@njit(cache=True, nogil=True, error_model="numpy")
def _label4(mask):
    """4-connected labels of ``mask`` != 0 ((h, w) int32, 0 = background, 1.. numbered
    in raster order of each component's first pixel, as ``cv2.connectedComponents``)
    and their areas ((n + 1,) int64, index 0 unused)."""
    h, w = mask.shape[0], mask.shape[1]
    lab = np.zeros((h, w), np.int32)
    parent = np.zeros(h * w // 2 + 2, np.int32)
    n = 0
    for r in range(h):
        for c in range(w):
            if mask[r, c] == 0:
                continue
            up = lab[r - 1, c] if r > 0 else 0
            left = lab[r, c - 1] if c > 0 else 0
            if up == 0 and left == 0:
                n += 1
                parent[n] = n
                lab[r, c] = n
            elif up == 0 or left == 0 or up == left:
                lab[r, c] = max(up, left)
            else:
                a, b = up, left
                while parent[a] != a:
                    a = parent[a]
                while parent[b] != b:
                    b = parent[b]
                lo, hi = min(a, b), max(a, b)
                parent[hi] = lo
                lab[r, c] = lo
    final = np.zeros(n + 1, np.int32)
    k = 0
    for i in range(1, n + 1):  # roots are the smallest label of their set: raster order
        if parent[i] == i:
            k += 1
            final[i] = k
        else:
            root = i
            while parent[root] != root:
                root = parent[root]
            final[i] = final[root]
    area = np.zeros(k + 1, np.int64)
    for r in range(h):
        for c in range(w):
            v = final[lab[r, c]]
            lab[r, c] = v
            area[v] += 1
    return lab, area


@njit(cache=True, nogil=True, error_model="numpy")
def _notch_cut(padded, pts, defects, min_depth, cut_ratio, min_piece, small, r0, c0):
    """The notch split's cut and markers for one component (``vision.split``).

    padded: (h+2, w+2) uint8 component mask (1) with a 1 px frame; pts: (P, 2) int32
    x, y of its outline (padded coordinates); defects: (D, 4) int32 convexity defects
    (start, end, farthest point index, depth x 256). Defects at least ``min_depth``
    deep are paired by ``_best_cut``; the straight 8-connected cut between the best
    pair divides the mask into 4-connected pieces; pieces of at least ``min_piece`` px,
    in raster order, become markers 1..G (component pixels 0, the rest G + 1).
    Returns markers ((0, 0) when there is no cut), G (1 when none) and, when G == 2,
    the contrast: sum over B, G, R of |mean colour of marker 1 - of marker 2| read
    in ``small`` at offset (r0 - 1, c0 - 1) (the means as ``cv2.mean``), else 0.
    """
    none = np.empty((0, 0), np.int32)
    k = 0
    for q in range(defects.shape[0]):
        if defects[q, 3] / 256.0 >= min_depth:
            k += 1
    if k < 2:
        return none, 1, 0.0
    far = np.empty((k, 2), np.float64)
    depth = np.empty(k, np.float64)
    k = 0
    for q in range(defects.shape[0]):
        d = defects[q, 3] / 256.0
        if d >= min_depth:
            far[k, 0] = pts[defects[q, 2], 0]
            far[k, 1] = pts[defects[q, 2], 1]
            depth[k] = d
            k += 1
    i, j = _best_cut(padded, far, depth, cut_ratio)
    if i < 0:
        return none, 1, 0.0
    cut = padded.copy()
    _draw_line0(cut, int(far[i, 0]), int(far[i, 1]), int(far[j, 0]), int(far[j, 1]))
    lab, area = _label4(cut)
    g_of = np.zeros(area.size, np.int32)
    g = 0
    for v in range(1, area.size):
        if area[v] >= min_piece:
            g += 1
            g_of[v] = g
    if g < 2:
        return none, 1, 0.0
    h, w = padded.shape[0], padded.shape[1]
    markers = np.empty((h, w), np.int32)
    sums = np.zeros((2, 3), np.float64)
    counts = np.zeros(2, np.float64)
    for r in range(h):
        for c in range(w):
            m = g_of[lab[r, c]]
            if m == 0:
                m = 0 if padded[r, c] != 0 else g + 1
            elif g == 2:
                for ch in range(3):
                    sums[m - 1, ch] += small[r0 + r - 1, c0 + c - 1, ch]
                counts[m - 1] += 1.0
            markers[r, c] = m
    contrast = 0.0
    if g == 2:
        for ch in range(3):
            a = sums[0, ch] * (1.0 / counts[0]) if counts[0] > 0 else 0.0
            b = sums[1, ch] * (1.0 / counts[1]) if counts[1] > 0 else 0.0
            contrast += abs(a - b)
    return markers, g, contrast


@njit(cache=True, nogil=True, error_model="numpy")
def _shape_split(labels, dist, lab, r0, c0, h, w, min_radius, neck_ratio, reach, seed_depth):
    """The shape split's markers for one component: its distance-transform maxima
    (``_peaks``) grouped (``_group_peaks``); with two groups or more, (h+2, w+2) int32
    markers: group g's maxima at least ``seed_depth`` x its deepest = g + 1, the
    component's other pixels 0, the rest (and a 1 px frame) G + 1. Returns markers
    ((0, 0) with fewer than two groups) and G (1 then)."""
    none = np.empty((0, 0), np.int32)
    peaks = _peaks(labels, dist, lab, r0, c0, r0 + h, c0 + w, min_radius)
    if peaks.shape[0] < 2:
        return none, 1
    group, n_groups = _group_peaks(peaks, dist, neck_ratio, reach)
    if n_groups < 2:
        return none, 1
    markers = np.full((h + 2, w + 2), n_groups + 1, np.int32)
    for r in range(h):
        for c in range(w):
            if labels[r0 + r, c0 + c] == lab:
                markers[r + 1, c + 1] = 0
    top = np.zeros(n_groups)
    for q in range(peaks.shape[0]):
        top[group[q]] = max(top[group[q]], peaks[q, 2])
    for q in range(peaks.shape[0]):
        if peaks[q, 2] >= seed_depth * top[group[q]]:
            markers[int(peaks[q, 0]) - r0 + 1, int(peaks[q, 1]) - c0 + 1] = group[q] + 1
    return markers, n_groups


@njit(cache=True, nogil=True, error_model="numpy")
def _chroma_class(b, g, r, dark_sum, warm_rb, grey_max):
    """One pixel's colour class for the chroma cue and the merge flag's material
    check: -1 too dark for a colour (B + G + R below ``dark_sum``), 1 red metal
    ((R - B) / (B + G + R) >= ``warm_rb``), 2 grey ((max - min of B, G, R) / (B +
    G + R) <= ``grey_max``), 0 neither."""
    s = b + g + r
    if s < dark_sum:
        return -1
    if r - b >= warm_rb * s:
        return 1
    if max(b, g, r) - min(b, g, r) <= grey_max * s:
        return 2
    return 0


@njit(cache=True, nogil=True, error_model="numpy")
def _chroma_counts(small, labels, boxes, which, dark_sum, warm_rb, grey_max):
    """(K, 2) float64 counts of red-metal ("warm") and grey pixels of each label in
    ``which`` (K,), read inside their boxes (``boxes``: (n, 4+) left, top, width,
    height per label value). Pixels whose B + G + R is below ``dark_sum`` count as
    neither; a pixel is warm where (R - B) / (B + G + R) >= ``warm_rb``, grey where
    (max - min of B, G, R) / (B + G + R) <= ``grey_max``."""
    k = which.size
    out = np.zeros((k, 2), np.float64)
    for i in range(k):
        lab = which[i]
        x0, y0 = int(boxes[lab, 0]), int(boxes[lab, 1])
        x1, y1 = x0 + int(boxes[lab, 2]), y0 + int(boxes[lab, 3])
        warm = 0.0
        grey = 0.0
        for r in range(y0, y1):
            for c in range(x0, x1):
                if labels[r, c] != lab:
                    continue
                kind = _chroma_class(
                    float(small[r, c, 0]), float(small[r, c, 1]), float(small[r, c, 2]),
                    dark_sum, warm_rb, grey_max,
                )  # fmt: skip
                if kind == 1:
                    warm += 1.0
                elif kind == 2:
                    grey += 1.0
        out[i, 0] = warm
        out[i, 1] = grey
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _open3(mask):
    """3x3 opening of a (h, w) uint8 0/1 mask, pixels outside the image ignored (as
    ``cv2.morphologyEx(mask, cv2.MORPH_OPEN, ones((3, 3)))``)."""
    h, w = mask.shape[0], mask.shape[1]
    ero = np.zeros((h, w), np.uint8)
    for r in range(h):
        for c in range(w):
            if mask[r, c] == 0:
                continue
            keep = 1
            for rr in range(max(r - 1, 0), min(r + 2, h)):
                for cc in range(max(c - 1, 0), min(c + 2, w)):
                    if mask[rr, cc] == 0:
                        keep = 0
            ero[r, c] = keep
    out = np.zeros((h, w), np.uint8)
    for r in range(h):
        for c in range(w):
            if ero[r, c] == 0:
                continue
            for rr in range(max(r - 1, 0), min(r + 2, h)):
                for cc in range(max(c - 1, 0), min(c + 2, w)):
                    out[rr, cc] = 1
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _main_region(mask, count, min_px, coherence):
    """The largest 4-connected region of ``mask`` ((h, w) uint8 0/1) opened 3x3,
    the first in raster order among equals: (its region labels, its label, its
    area). Label 0: there is none, or it holds fewer than ``min_px`` px or under
    ``coherence`` of ``count`` (the class's pixels before the opening)."""
    region, area = _label4(_open3(mask))
    if area.size < 2:
        return region, 0, 0
    best = 1
    for i in range(2, area.size):
        if area[i] > area[best]:
            best = i
    top = area[best]
    if top < min_px or top < coherence * count:
        return region, 0, top
    return region, best, top


@njit(cache=True, nogil=True, error_model="numpy")
def _region_solid(region, best, top, solid):
    """Region ``best`` (``top`` px) of ``region`` as a (h, w) int32 0/1 mask, and
    whether it fills at least ``solid`` of its convex hull (``vision.kernels._solidity``)."""
    h, w = region.shape[0], region.shape[1]
    one = np.zeros((h, w), np.int32)
    for r in range(h):
        for c in range(w):
            if region[r, c] == best:
                one[r, c] = 1
    box = np.array([[0, 0, w - 1, h - 1]], np.int64)
    sol = np.zeros(1, np.float64)
    _solidity(one, np.ones(1, np.int32), box, np.full(1, float(top)), np.zeros(1, np.int64), sol)
    return one, sol[0] >= solid


@njit(cache=True, nogil=True, error_model="numpy")
def _chroma_seeds(small, labels, lab, r0, c0, h, w, dark, rb, grey, min_piece, coherence, solid):
    """Watershed markers of the chroma cue for label ``lab`` in its box (rows r0..r0+h,
    columns c0..c0+w of ``small`` and ``labels``): (h + 2, w + 2) int32, 3 on a 1 px
    frame and outside the label, 0 inside, 1 the red-metal region, 2 the grey one,
    and the marker count (2; 1: no cut). Red-metal and grey pixels as
    ``_chroma_counts``; each class, opened 3x3, must keep ``coherence`` of its
    pixels in its largest 4-connected region (the first in raster order among
    equals), of at least ``min_piece`` px, and the red region fill ``solid`` of its
    convex hull (``vision.kernels._solidity``)."""
    markers = np.full((h + 2, w + 2), 3, np.int32)
    cls = np.zeros((2, h, w), np.uint8)
    count = np.zeros(2, np.int64)
    for r in range(h):
        for c in range(w):
            if labels[r0 + r, c0 + c] != lab:
                continue
            markers[r + 1, c + 1] = 0
            kind = _chroma_class(
                float(small[r0 + r, c0 + c, 0]), float(small[r0 + r, c0 + c, 1]),
                float(small[r0 + r, c0 + c, 2]), dark, rb, grey,
            )  # fmt: skip
            if kind > 0:
                cls[kind - 1, r, c] = 1
                count[kind - 1] += 1
    for k in range(2):
        region, best, top = _main_region(cls[k], count[k], min_piece, coherence)
        if best == 0:
            return markers, 1
        if k == 0 and not _region_solid(region, best, top, solid)[1]:
            return markers, 1
        for r in range(h):
            for c in range(w):
                if region[r, c] == best:
                    markers[r + 1, c + 1] = k + 1
    return markers, 2
