# mypy: disallow-untyped-defs=False
"""Numba kernels of the vision hot path: belt difference, belt-model update, crops.

Private: call them through ``vision.segment.BeltModel`` and
``vision.crops.extract_crops``, which check and prepare their input. Arrays are
C-contiguous; images uint8 BGR (H, W, 3); all kernels release the GIL so a
second thread (the classifier) runs beside them.

Each kernel has a slow twin built from OpenCV calls in ``tests/vision/naive.py``;
the tests assert they agree.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def _gain(small, mean_u8, step):
    """Median ratio of summed BGR, frame / belt model, on a ``step`` px grid."""
    h, w = small.shape[0], small.shape[1]
    ratio = np.empty(((h + step - 1) // step) * ((w + step - 1) // step), np.float32)
    k = 0
    for r in range(0, h, step):
        for c in range(0, w, step):
            f = np.float32(small[r, c, 0]) + np.float32(small[r, c, 1]) + np.float32(small[r, c, 2])
            m = (
                np.float32(mean_u8[r, c, 0])
                + np.float32(mean_u8[r, c, 1])
                + np.float32(mean_u8[r, c, 2])
            )
            ratio[k] = f / max(m, np.float32(1.0))
            k += 1
    return np.median(ratio[:k])


@njit(cache=True, nogil=True, error_model="numpy")
def _diff_fg(small, mean_u8, thresh_u8, gain, diff, fg):
    """diff = min(255, sum_c |small - round(gain * belt)|); fg = 255 where diff > thresh.

    Flat views: small, mean_u8 (3P,) uint8 BGR; thresh_u8, diff, fg (P,) uint8.
    Branch-free per pixel so the loop vectorises.
    """
    g = np.float32(gain)
    half = np.float32(0.5)
    for i in range(diff.size):
        s = np.int32(0)
        for ch in range(3):
            b = np.int32(np.float32(mean_u8[3 * i + ch]) * g + half)
            v = np.int32(small[3 * i + ch]) - (b if b < 255 else np.int32(255))
            s += v if v >= 0 else -v
        d = min(s, 255)
        diff[i] = d
        fg[i] = 255 if d > thresh_u8[i] else 0


@njit(cache=True, nogil=True, error_model="numpy")
def _update(
    small, diff, belt_mask, mean, spread, alpha, gain, k_sigma, min_diff, mean_u8, thresh_u8
):
    """Running means over belt pixels (``belt_mask`` != 0) after rescaling the whole belt
    colour by ``gain`` (1 = no change); refreshes mean_u8 = round(mean) and
    thresh_u8 = max(round(k_sigma * spread), min_diff), both saturated to 255.

    Flat views: small, mean (float32), mean_u8 (3P,); diff, belt_mask, spread
    (float32), thresh_u8 (P,).
    """
    a = np.float32(alpha)
    g = np.float32(gain)
    k = np.float32(k_sigma)
    half = np.float32(0.5)
    zero = np.float32(0.0)
    for i in range(diff.size):
        ai = a if belt_mask[i] != 0 else zero
        for ch in range(3):
            m = mean[3 * i + ch] * g
            m += ai * (np.float32(small[3 * i + ch]) - m)
            mean[3 * i + ch] = m
            mean_u8[3 * i + ch] = min(255, np.int32(m + half))  # m >= 0
        s = spread[i]
        s += ai * (np.float32(diff[i]) - s)
        spread[i] = s
        thresh_u8[i] = max(min(255, np.int32(k * s + half)), min_diff)


@njit(cache=True, nogil=True, error_model="numpy")
def _belt_pass(small, mean_u8, thresh_u8, gain, diff, fg, mean, spread, alpha, k_sigma, min_diff):
    """``_diff_fg``, the belt mask and ``_update`` in one pass over the rows (the two
    kernels row by row: the same diff, fg, mean, spread, mean_u8 and thresh_u8 as
    the whole image through one, then the other; each row's data read while in cache).

    A pixel is belt when no foreground pixel lies within 2 rows and 2 columns
    (``cv2.bitwise_not(cv2.dilate(fg, 5x5 ones))``: outside the image counts as no
    foreground). Row r's update needs the foreground of rows r + 1 and r + 2, so it
    runs two rows behind the difference; the difference of a row reads mean_u8 and
    thresh_u8 before that row is updated, as when the two ran one after the other.

    small, mean (float32), mean_u8: (h, 3w); thresh_u8, diff, fg (uint8) and spread
    (float32): (h, w). ``gain`` rescales the belt in both (1 = no change).
    """
    h, w = diff.shape[0], diff.shape[1]
    near = np.empty(w + 4, np.uint8)  # near[c + 2]: foreground in column c within 2 rows
    belt = np.empty(w, np.uint8)
    for r in range(h + 2):
        if r < h:
            _diff_fg(small[r], mean_u8[r], thresh_u8[r], gain, diff[r], fg[r])
        u = r - 2
        if u < 0:
            continue
        near[:] = 0
        for rr in range(max(u - 2, 0), min(u + 2, h - 1) + 1):
            row = fg[rr]
            for c in range(w):
                near[c + 2] |= row[c]
        for c in range(w):
            f = near[c] | near[c + 1] | near[c + 2] | near[c + 3] | near[c + 4]
            belt[c] = 255 if f == 0 else 0
        _update(small[u], diff[u], belt, mean[u], spread[u], alpha, gain, k_sigma, min_diff,
                mean_u8[u], thresh_u8[u])  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy")
def _axis_taps(start, step, limit, i0, i1, w1):
    """Bilinear taps of samples at start + (i + 0.5) * step - 0.5 (pixel centres) in
    1/32 px fixed point as OpenCV's remap: (i0, i1, w1 in 0..32), replicate border."""
    for i in range(i0.size):
        q = np.int64(math.floor((start + (i + 0.5) * step - 0.5) * 32.0 + 0.5))
        f = q >> 5
        i0[i] = min(max(f, 0), limit - 1)
        i1[i] = min(max(f + 1, 0), limit - 1)
        w1[i] = np.int32(q & 31)


@njit(cache=True, nogil=True, error_model="numpy")
def _nearest(start, step, scale, limit, idx):
    """Nearest low-res index (1/scale resolution) of the same samples, -1 outside."""
    for i in range(idx.size):
        q = np.int64(math.floor((start + (i + 0.5) * step) / scale - 0.5 + 0.5))
        idx[i] = q if 0 <= q < limit else -1


@njit(cache=True, nogil=True, error_model="numpy")
def _soft_mask(labels, own, rows, cols, raw, tmp, mask, jlo, jhi):
    """mask = 255 where the nearest low-res label is ``own``, dilated 3x3 then
    box-blurred 3x3 (reflect-101 border): the fragment's softened alpha, (S, S) int32.
    raw (S+2, S+2) uint8 and tmp (S+2, S) int32 are scratch. Both filters are
    separable; they count on 0/1 (the dilated mask's 3x3 sum n gives (255 n + 4) // 9).
    jlo, jhi (S,) int64: the first and last column of each row with a non-zero value
    (-1, -2 for a row without one)."""
    size = mask.shape[0]
    raw[:] = 0  # a 1 px frame of zeros around the crop
    for i in range(size):
        r = rows[i]
        if r < 0:
            continue
        for j in range(size):
            c = cols[j]
            if c >= 0 and labels[r, c] == own:
                raw[i + 1, j + 1] = 1
    for i in range(size + 2):  # dilate along rows
        for j in range(size):
            tmp[i, j] = max(raw[i, j], max(raw[i, j + 1], raw[i, j + 2]))
    for i in range(size):  # ... and columns: the 3x3 dilation, into raw[1:-1, 1:-1]
        for j in range(size):
            raw[i + 1, j + 1] = max(tmp[i, j], max(tmp[i + 1, j], tmp[i + 2, j]))
    last = size - 1
    for i in range(size):  # box sum along rows, reflect-101 (column -1 is column 1)
        tmp[i, 0] = 2 * raw[i + 1, 2] + raw[i + 1, 1]
        for j in range(1, last):
            tmp[i, j] = raw[i + 1, j] + raw[i + 1, j + 1] + raw[i + 1, j + 2]
        tmp[i, last] = 2 * raw[i + 1, last] + raw[i + 1, last + 1]
    for i in range(size):
        ia = i - 1 if i > 0 else 1
        ib = i + 1 if i < last else last - 1
        for j in range(size):
            mask[i, j] = (255 * (tmp[ia, j] + tmp[i, j] + tmp[ib, j]) + 4) // 9
        a, b = 0, size - 1
        while a < size and mask[i, a] == 0:
            a += 1
        while b > a and mask[i, b] == 0:
            b -= 1
        jlo[i], jhi[i] = (a, b) if a < size else (-1, -2)


@njit(cache=True, nogil=True, error_model="numpy")
def _crops(image, labels, win, own, fill, scale, masked, out):
    """Square crops: out[n] = bilinear resample of window ``win[n]`` (centre col, centre
    row, side; full-res px) to (S, S), blended onto ``fill[n]`` outside label ``own[n]``
    of the 1/scale ``labels`` image (when ``masked``).

    The bilinear sum runs separably and exactly in integers: per output row the two
    source rows are blended once over the columns it needs (``vbuf``), then each
    pixel blends two of those: (32 - fx) (32 - fy) a + fx (32 - fy) b + (32 - fx) fy c
    + fx fy d, the same sum. Unsigned flat offsets spare the inner loops NumPy's
    negative-index checks."""
    n, size = out.shape[0], out.shape[1]
    hh, ww = image.shape[0], image.shape[1]
    h, w = labels.shape[0], labels.shape[1]
    flat = image.reshape(-1)
    c0, c1 = np.empty(size, np.int64), np.empty(size, np.int64)
    r0, r1 = np.empty(size, np.int64), np.empty(size, np.int64)
    wc, wr = np.empty(size, np.int32), np.empty(size, np.int32)
    ca, cb = np.empty(size, np.uint64), np.empty(size, np.uint64)
    lr, lc = np.empty(size, np.int64), np.empty(size, np.int64)
    raw = np.empty((size + 2, size + 2), np.uint8)
    tmp = np.empty((size + 2, size), np.int32)
    mask = np.full((size, size), 255, np.int32)  # stays 255 when not ``masked``
    jlo = np.zeros(size, np.int64)  # ... and every row needs every column
    jhi = np.full(size, size - 1, np.int64)
    vbuf = np.empty(3 * ww, np.int32)
    row3 = np.uint64(3 * ww)
    for m in range(n):
        side = win[m, 2]
        k = side / size
        x0 = win[m, 0] - side / 2.0
        y0 = win[m, 1] - side / 2.0
        _axis_taps(x0, k, ww, c0, c1, wc)
        _axis_taps(y0, k, hh, r0, r1, wr)
        if masked:
            _nearest(x0, k, scale, w, lc)
            _nearest(y0, k, scale, h, lr)
            _soft_mask(labels, own[m], lr, lc, raw, tmp, mask, jlo, jhi)
        o = out[m].reshape(-1)
        f0, f1, f2 = fill[m, 0], fill[m, 1], fill[m, 2]
        for i in range(size):
            q0 = np.uint64(i * size * 3)
            ja, jb = jlo[i], jhi[i]
            if ja < 0:  # the belt only
                for j in range(size):
                    q = q0 + np.uint64(3 * j)
                    o[q] = f0
                    o[q + np.uint64(1)] = f1
                    o[q + np.uint64(2)] = f2
                continue
            lo = c0[ja]  # the source columns of the pixels ja..jb this row needs
            base = np.uint64(lo * 3)
            for j in range(ja, jb + 1):
                ca[j] = np.uint64((c0[j] - lo) * 3)
                cb[j] = np.uint64((c1[j] - lo) * 3)
            span = (c1[jb] - lo + 1) * 3
            fy = np.int32(wr[i])
            gy = np.int32(32) - fy
            pa = np.uint64(r0[i]) * row3 + base
            pb = np.uint64(r1[i]) * row3 + base
            for t in range(span):
                u = np.uint64(t)
                vbuf[t] = gy * np.int32(flat[pa + u]) + fy * np.int32(flat[pb + u])
            for j in range(size):
                a = mask[i, j]
                q = q0 + np.uint64(3 * j)
                if a == 0:  # belt around the fragment: the fill colour only
                    o[q] = f0
                    o[q + np.uint64(1)] = f1
                    o[q + np.uint64(2)] = f2
                    continue
                fx = wc[j]
                gx = np.int32(32) - fx
                pc, pd = ca[j], cb[j]
                for ch in range(3):
                    u = np.uint64(ch)
                    v = (gx * vbuf[pc + u] + fx * vbuf[pd + u] + 512) >> 10
                    if a != 255:  # round(v a / 255) + round(fill (255 - a) / 255)
                        x = v * a + 128
                        y = np.int32(fill[m, ch]) * (255 - a) + 128
                        v = min(((x + (x >> 8)) >> 8) + ((y + (y >> 8)) >> 8), 255)
                    o[q + u] = v


@njit(cache=True, nogil=True)
def _central_moments(a, sx, sy, sxx, sxy, syy, moms, k):
    """moms[k] = the second central moments per unit area (column variance,
    covariance, row variance) from a label's pixel count ``a`` > 0 and its integer
    sums of column, row, column^2, column x row and row^2: (a s2 - s s) / a^2 in
    float64 (a large image's a s2 passes int64)."""
    fa, fx, fy = np.float64(a), np.float64(sx), np.float64(sy)
    a2 = fa * fa
    moms[k, 0] = max(fa * np.float64(sxx) - fx * fx, 0.0) / a2
    moms[k, 1] = (fa * np.float64(sxy) - fx * fy) / a2
    moms[k, 2] = max(fa * np.float64(syy) - fy * fy, 0.0) / a2


@njit(cache=True, nogil=True, error_model="numpy")
def _label_stats(labels16, n):
    """int32 copy of a label image (values 0..n-1) and, per label value, the
    statistics ``cv2.connectedComponentsWithStats`` gives, in float64: (n, 5) left,
    top, width, height, area and (n, 2) centroid column, row (sums / area; a label
    without pixels: width = height = 0, left = -1, top = INT_MAX, centroid NaN);
    and (n, 3) the second central moments of its pixel centres per pixel, px^2:
    variance of the column, covariance of column and row, variance of the row
    (``cv2.moments``' mu20, mu11, mu02 / m00; NaN without pixels)."""
    h, w = labels16.shape[0], labels16.shape[1]
    out = np.empty((h, w), np.int32)
    left = np.full(n, 2147483647, np.int64)
    top = np.full(n, 2147483647, np.int64)
    right = np.full(n, -1, np.int64)
    bottom = np.full(n, -1, np.int64)
    area = np.zeros(n, np.int64)
    sx = np.zeros(n, np.int64)
    sy = np.zeros(n, np.int64)
    sxx = np.zeros(n, np.int64)  # sums of column^2, column x row, row^2
    sxy = np.zeros(n, np.int64)
    syy = np.zeros(n, np.int64)
    for r in range(h):  # runs of one label along each row
        start = 0
        for c in range(w + 1):
            if c < w:
                out[r, c] = labels16[r, c]
                if c == 0 or labels16[r, c] == labels16[r, c - 1]:
                    continue
            v = np.int64(labels16[r, c - 1])
            length = c - start
            left[v] = min(left[v], start)
            right[v] = max(right[v], c - 1)
            top[v] = min(top[v], r)
            bottom[v] = max(bottom[v], r)
            area[v] += length
            run_x = (start + c - 1) * length // 2
            sx[v] += run_x
            sy[v] += r * length
            # sum of k^2 for k in start..c-1: S(c-1) - S(start-1), S(k) = k(k+1)(2k+1)/6
            sxx[v] += ((c - 1) * c * (2 * c - 1) - (start - 1) * start * (2 * start - 1)) // 6
            sxy[v] += r * run_x
            syy[v] += r * r * length
            start = c
    stats = np.empty((n, 5), np.float64)
    cents = np.empty((n, 2), np.float64)
    moms = np.full((n, 3), np.nan, np.float64)
    for k in range(n):
        a = area[k]
        if a > 0:
            stats[k, 0], stats[k, 1] = left[k], top[k]
            stats[k, 2], stats[k, 3] = right[k] - left[k] + 1, bottom[k] - top[k] + 1
            cents[k, 0] = np.float64(sx[k]) / np.float64(a)
            cents[k, 1] = np.float64(sy[k]) / np.float64(a)
            _central_moments(a, sx[k], sy[k], sxx[k], sxy[k], syy[k], moms, k)
        else:
            stats[k, 0], stats[k, 1], stats[k, 2], stats[k, 3] = -1, top[k], 0, 0
            cents[k, 0] = np.nan
            cents[k, 1] = np.nan
        stats[k, 4] = a
    return out, stats, cents, moms


@njit(cache=True, nogil=True)
def _box_moments(labels, stats, which, moms):
    """Second central moments per unit area (column variance, covariance, row
    variance; pixel centres, as ``_label_stats``) of each label value ``k`` in
    ``which``, from its pixels inside its box ``stats[k, :4]`` (left, top, width,
    height), written to ``moms[k]``; NaN where it has none. The pieces a split
    made: one pass over their boxes instead of a mask and a covariance each."""
    for i in range(which.shape[0]):
        k = which[i]
        x0, y0 = int(stats[k, 0]), int(stats[k, 1])
        x1, y1 = x0 + int(stats[k, 2]), y0 + int(stats[k, 3])
        a = 0
        sx = 0
        sy = 0
        sxx = 0
        sxy = 0
        syy = 0
        for r in range(max(y0, 0), min(y1, labels.shape[0])):
            for c in range(max(x0, 0), min(x1, labels.shape[1])):
                if labels[r, c] == k:
                    a += 1
                    sx += c
                    sy += r
                    sxx += c * c
                    sxy += c * r
                    syy += r * r
        if a == 0:
            moms[k, 0] = np.nan
            moms[k, 1] = np.nan
            moms[k, 2] = np.nan
        else:
            _central_moments(a, sx, sy, sxx, sxy, syy, moms, k)


@njit(cache=True, nogil=True, error_model="numpy")
def _turn(hx, hy, n, bx, by):
    """The chain's last edge (points n-2, n-1) crossed with the step to b: > 0
    turns left."""
    ox, oy, ax, ay = hx[n - 2], hy[n - 2], hx[n - 1], hy[n - 1]
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@njit(cache=True, nogil=True, error_model="numpy")
def _solidity(labels, label_id, box, count, which, out):
    """Solidity of segments ``which``: pixels (``count``, at the label image's
    resolution) over their convex hull (pixel centres) area + half its
    perimeter + 1 (the half pixel all round the centres' hull). ``box``: (N, 4)
    int x0, y0, x1, y1 inclusive at the label image's resolution. The hull is
    that of each row's leftmost and rightmost pixel (the hull of all the
    segment's pixels; each row is read from both ends only up to its first
    pixel), by the monotone chain on points ordered by row, then column.
    Writes ``out[k]`` for k in ``which``."""
    h, w = labels.shape[0], labels.shape[1]
    px = np.empty(2 * h, np.float64)  # each row's two ends
    py = np.empty(2 * h, np.float64)
    hx = np.empty(4 * h + 1, np.float64)  # the hull's chains
    hy = np.empty(4 * h + 1, np.float64)
    for k in which:
        x0, y0 = max(box[k, 0], 0), max(box[k, 1], 0)
        x1, y1 = min(box[k, 2], w - 1), min(box[k, 3], h - 1)
        lid = label_id[k]
        m = 0
        for y in range(y0, y1 + 1):
            lo = x0
            while lo <= x1 and labels[y, lo] != lid:
                lo += 1
            if lo > x1:
                continue
            hi = x1
            while labels[y, hi] != lid:
                hi -= 1
            px[m], py[m] = lo, y
            m += 1
            if hi != lo:
                px[m], py[m] = hi, y
                m += 1
        if m == 0:
            out[k] = 1.0
            continue
        # monotone chain over points sorted by (row, column): the two chains
        n = 0
        for i in range(m):
            while n >= 2 and _turn(hx, hy, n, px[i], py[i]) <= 0:
                n -= 1
            hx[n], hy[n] = px[i], py[i]
            n += 1
        lower = n + 1
        for i in range(m - 2, -1, -1):
            while n >= lower and _turn(hx, hy, n, px[i], py[i]) <= 0:
                n -= 1
            hx[n], hy[n] = px[i], py[i]
            n += 1
        n = max(n - 1, 1)  # the last point repeats the first
        area2 = 0.0
        perim = 0.0
        for i in range(n):
            j = (i + 1) % n
            area2 += hx[i] * hy[j] - hx[j] * hy[i]
            perim += math.hypot(hx[j] - hx[i], hy[j] - hy[i])
        hull = abs(area2) / 2.0 + 0.5 * perim + 1.0
        out[k] = min(count[k] / max(hull, 1.0), 1.0)
