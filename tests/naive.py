"""Slow, obviously correct reference implementations that the fast njit kernels are tested against.

Plain Python / numpy loops that follow the formulas of docs/math.md line by line (``docs/math.md``); no
cleverness, no speed.  Sections are per module.
"""
import math

import numpy as np

# Computed cosines this close to +-1 are rounded to +-1, as in the fast kernels (ntk_sketch.kernels.arccos.COSINE_SNAP).
COSINE_SNAP = 2.0 ** -46


# --------------------------------------------------------------------------------------------------- arccos
def k0_naive(a):
    a = min(max(float(a), -1.0), 1.0)
    return 1.0 - math.acos(a) / math.pi


def k1_naive(a):
    a = min(max(float(a), -1.0), 1.0)
    return (math.sqrt(1.0 - a * a) + a * (math.pi - math.acos(a))) / math.pi


# ------------------------------------------------------------------------------------------------ ntk_exact
def fc_ntk_naive(x, y, depth, nngp=False):
    """docs/math.md §2 verbatim, for one pair of vectors, carrying S(y,y), S(z,z) and S(y,z) per layer."""
    syy, szz, syz = float(x @ x), float(y @ y), float(x @ y)
    t = syz
    for _ in range(depth):
        if syy == 0.0 or szz == 0.0:
            return 0.0
        nrm = math.sqrt(syy * szz)
        r = min(max(syz / nrm, -1.0), 1.0)
        r = 1.0 if r > 1.0 - COSINE_SNAP else (-1.0 if r < -1.0 + COSINE_SNAP else r)
        s_new = nrm * k1_naive(r)
        t = t * k0_naive(r) + s_new
        syz = s_new
        syy, szz = syy * k1_naive(1.0), szz * k1_naive(1.0)
    return syz if nngp else t


def fc_ntk_matrix_naive(X1, X2, depth, nngp=False):
    return np.array([[fc_ntk_naive(x, y, depth, nngp) for y in X2] for x in X1])


# --------------------------------------------------------------------------------------------------- sketches
# Each reference takes the random tables drawn by the fast module and applies them with explicit matrices
# (scipy.linalg.hadamard) or plain loops, following docs/math.md §4 literally.
def countsketch_matrix_naive(indices, signs, m):
    """Dense (m, d) OSNAP matrix: column i has signs[i, k] at row indices[i, k]."""
    d, s = indices.shape
    S = np.zeros((m, d))
    for i in range(d):
        for k in range(s):
            S[indices[i, k], i] += signs[i, k]
    return S


def srht_naive(signs, rows, scale, n_pad, x):
    """scale * (Hu E pad(x))[rows] with the +-1 Sylvester matrix Hu of order n_pad."""
    import scipy.linalg

    z = np.zeros(n_pad)
    z[: len(x)] = signs * np.asarray(x, dtype=float)
    return scale * (scipy.linalg.hadamard(n_pad) @ z)[rows]


def tensor_srht_naive(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, x, y):
    """S(x (x) y) = scale * (Hu D1 x)[rows1] o (Hu D2 y)[rows2] (docs/math.md §4, unnormalised Hu)."""
    a = srht_naive(signs1, rows1, 1.0, n_pad1, x)
    b = srht_naive(signs2, rows2, 1.0, n_pad2, y)
    return scale * a * b


def polysketch_naive(tables, leaf_fn, x, degree_l):
    """Q^p (x^(l) (x) e1^(q-l)) by explicit recursion over the whole binary tree (no sharing).

    ``leaf_fn(j, x)`` applies the base sketch of leaf j to x; e1 leaves use ``tables.leaf_e1[j]``.
    """
    q = tables.n_leaves

    def node(t, j):
        if t == 0:
            return leaf_fn(j, x) if j < degree_l else tables.leaf_e1[j]
        k = (q - (q >> (t - 1))) + j  # internal nodes are numbered level by level, left to right
        left = node(t - 1, 2 * j)
        right = node(t - 1, 2 * j + 1)
        return tensor_srht_naive(tables.node_signs1[k], tables.node_signs2[k], tables.node_rows1[k],
                                 tables.node_rows2[k], tables.node_scale, tables.node_n_pad, tables.node_n_pad,
                                 left, right)

    return node(tables.n_levels, 0)


# ------------------------------------------------------------------------------------------------ cntk_exact


def polynomial_naive(coefficients):
    """The function a -> sum_l c_l a^l, by explicit powers."""
    c = [float(v) for v in coefficients]
    return lambda a: sum(cl * a ** l for l, cl in enumerate(c))


def patch_offsets_naive(q, padding):
    """Patch offsets along one axis: 0..q-1 ('valid'); -((q-1)//2) .. q//2 ('same': centred for odd q, one more
    after than before for even q, the 'SAME' alignment of TensorFlow / JAX)."""
    if padding == "valid":
        return list(range(q))
    lo = -((q - 1) // 2)
    return list(range(lo, lo + q))


def cntk_naive(x, y, depth, q, padding="valid", fix_first=True, fix_last=True, k0=k0_naive, k1=k1_naive):
    """docs/math.md §3 verbatim for one pair of images x, y of shape (H, W, C): full 4-d arrays, loops over u."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    offsets = patch_offsets_naive(q, padding)

    def out_size(n):
        return n - q + 1 if padding == "valid" else n

    def patch_sum_4d(G, scale):
        """S[p, p'] = scale * sum_u G[p+u, p'+u], zero outside the image."""
        h, w = G.shape[0], G.shape[1]
        ho, wo = out_size(h), out_size(w)
        S = np.zeros((ho, wo, ho, wo))
        for i in range(ho):
            for j in range(wo):
                for k in range(ho):
                    for l in range(wo):
                        s = 0.0
                        for a in offsets:
                            for b in offsets:
                                if 0 <= i + a < h and 0 <= k + a < h and 0 <= j + b < w and 0 <= l + b < w:
                                    s += G[i + a, j + b, k + a, l + b]
                        S[i, j, k, l] = scale * s
        return S

    def patch_sum_2d(N, scale):
        h, w = N.shape
        ho, wo = out_size(h), out_size(w)
        out = np.zeros((ho, wo))
        for i in range(ho):
            for j in range(wo):
                s = 0.0
                for a in offsets:
                    for b in offsets:
                        if 0 <= i + a < h and 0 <= j + b < w:
                            s += N[i + a, j + b]
                out[i, j] = scale * s
        return out

    H, W, _ = x.shape
    G0 = np.zeros((H, W, H, W))
    for i in range(H):
        for j in range(W):
            for k in range(H):
                for l in range(W):
                    G0[i, j, k, l] = float(np.dot(x[i, j], y[k, l]))
    S = patch_sum_4d(G0, 1.0)
    Nx = patch_sum_2d((x * x).sum(axis=2), 1.0)
    Ny = patch_sum_2d((y * y).sum(axis=2), 1.0)
    P = np.zeros_like(S) if fix_first else S.copy()
    inv_q2 = 1.0 / (q * q)
    for h in range(1, depth + 1):
        G = np.zeros_like(S)
        Gd = np.zeros_like(S)
        for idx in np.ndindex(*S.shape):
            nn = Nx[idx[0], idx[1]] * Ny[idx[2], idx[3]]
            if nn > 0.0:  # a zero patch contributes nothing (G = 0, and P = 0 there too)
                r = min(max(S[idx] / math.sqrt(nn), -1.0), 1.0)
                r = 1.0 if r > 1.0 - COSINE_SNAP else (-1.0 if r < -1.0 + COSINE_SNAP else r)
                G[idx] = math.sqrt(nn) * k1(r)
                Gd[idx] = k0(r)
        if h < depth:
            S, P = patch_sum_4d(G, inv_q2), patch_sum_4d(P * Gd + G, inv_q2)
            Nx, Ny = patch_sum_2d(Nx, inv_q2), patch_sum_2d(Ny, inv_q2)
        else:
            last = P * Gd if fix_last else P * Gd + G
            return inv_q2 * float(last.sum()) / (S.shape[0] * S.shape[1]) ** 2


def cntk_normalisers_naive(x, depth, q, padding="valid"):
    """[N_0, ..., N_{L-1}] of one image (H, W, C): N_0[p] = sum_u |x_{p+u}|^2, N_h = (1/q^2) sum_u N_{h-1}[p+u]."""
    offsets = patch_offsets_naive(q, padding)
    N = (np.asarray(x, dtype=np.float64) ** 2).sum(axis=2)
    out = []
    for h in range(depth):
        H, W = N.shape
        Ho, Wo = (H - q + 1, W - q + 1) if padding == "valid" else (H, W)
        new = np.zeros((Ho, Wo))
        for i in range(Ho):
            for j in range(Wo):
                new[i, j] = sum(N[i + a, j + b] for a in offsets for b in offsets
                                if 0 <= i + a < H and 0 <= j + b < W)
        N = new if h == 0 else new / (q * q)
        out.append(N)
    return out


def cntk_matrix_naive(X1, X2, depth, q, padding="valid", fix_first=True, fix_last=True, k0=k0_naive, k1=k1_naive):
    return np.array([[cntk_naive(x, y, depth, q, padding, fix_first, fix_last, k0, k1) for y in X2] for x in X1])


# ----------------------------------------------------------------------------------- nystrom / ridge (learning)
def nystrom_gram_naive(K_xz, K_zz, K_zy):
    """Nystrom approximation K(X, Z) K(Z, Z)^+ K(Z, Y) with numpy's pseudo-inverse."""
    return K_xz @ np.linalg.pinv(K_zz, rcond=1e-10, hermitian=True) @ K_zy


def ridge_leverage_scores_naive(K, lam):
    """Exact ridge leverage scores diag(K (K + lam I)^{-1}), one linear solve per column."""
    n = K.shape[0]
    out = np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        out[i] = K[i] @ np.linalg.solve(K + lam * np.eye(n), e)
    return out


# ------------------------------------------------------------------------------------------------ cntk_sketch
def cntk_sketch_naive(x, tables, q, padding="valid", fix_first=True, fix_last=True, renormalize=True):
    """CNTKSketch features of one image x (H, W, C) with the given CNTKSketchTables, stage by stage as the module
    docstring of ntk_sketch.features.cntk_sketch writes them (docs/math.md §7): per-pixel vectors in nested
    lists, explicit concatenations, explicit CountSketch and Hadamard matrices (the references above), norms by
    numpy.  Nothing is shared between pixels or reused between degrees except what the math shares."""
    T = tables
    x = np.asarray(x, dtype=np.float64)
    H, W, C = x.shape
    L = len(T.d_in)
    d = T.pixel_dim
    p = T.sqrt_c0.shape[1] - 1
    offsets = patch_offsets_naive(q, padding)
    N = cntk_normalisers_naive(x, L, q, padding)  # N[h]: N_h on grid h + 1

    def rescaled(v, target):
        n = float(np.linalg.norm(v))
        return v * (target / n) if renormalize and n > 0.0 else v

    def tensor(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, a, b):
        t = tensor_srht_naive(signs1[:len(a)], signs2[:len(b)], rows1, rows2, scale, n_pad1, n_pad2, a, b)
        return rescaled(t, float(np.linalg.norm(a) * np.linalg.norm(b)))

    def neighbours(grid, i, j, dim):
        """The q^2 vectors of the patch of (i, j), row-major, zeros outside the grid."""
        hs, ws = len(grid), len(grid[0])
        return [grid[i + a][j + b] if 0 <= i + a < hs and 0 <= j + b < ws else np.zeros(dim)
                for a in offsets for b in offsets]

    def compress(patch, h, blocks, per_pixel_countsketch):
        """C_h of the patch's blocks, into R^d: CountSketch matrix or SRHT of their concatenation, or (signed sum)
        sum over offsets t of sum_signs[h, t] * roll(block t, sum_shifts[h, t]), each block first CountSketched
        from its own length to d when per_pixel_countsketch (the S features' g~, coordinate 0 zeroed)."""
        if T.patch_mode == 2:
            out = np.zeros(d)
            for t, blk in enumerate(blocks):
                if per_pixel_countsketch:
                    S = countsketch_matrix_naive(patch.cs_index[h][:len(blk), None],
                                                 patch.cs_signs[h][:len(blk), None], d)
                    blk = S @ blk
                out = out + patch.sum_signs[h, t] * np.roll(blk, patch.sum_shifts[h, t])
            return out
        cat = np.concatenate(blocks)
        if T.patch_mode == 1:
            return srht_naive(patch.srht_signs[h][:len(cat)], patch.srht_rows[h], patch.scale, patch.n_pad[h], cat)
        S = countsketch_matrix_naive(patch.cs_index[h][:len(cat), None], patch.cs_signs[h][:len(cat), None], d)
        return S @ cat

    # stage 1: input layer on grid 1
    H1, W1 = N[0].shape
    xs = [[x[i, j] for j in range(W)] for i in range(H)]
    F = [[np.concatenate(neighbours(xs, i, j, C)) for j in range(W1)] for i in range(H1)]
    PP = [[np.zeros(0) if fix_first else F[i][j].copy() for j in range(W1)] for i in range(H1)]
    pdiag = np.zeros((H1, W1)) if fix_first else N[0].copy()  # P_0[p, p](x, x)
    pooled = None
    for h in range(L):
        Hh, Wh = N[h].shape
        last = h == L - 1
        G = [[None] * Wh for _ in range(Hh)]
        MM = [[None] * Wh for _ in range(Hh)]
        pooled = []
        for i in range(Hh):
            for j in range(Wh):
                f = F[i][j]
                nn = N[h][i, j]
                if nn == 0.0 or float(f @ f) == 0.0:  # zero patch: every feature is 0
                    G[i][j] = np.zeros(T.d_g[h])
                    MM[i][j] = np.zeros(T.d_t[h])
                    continue
                # stage 2: powers of u
                u = f / np.linalg.norm(f)
                Z = [u]
                for l in range(2, p + 1):
                    P = T.powers
                    z = tensor_srht_naive(P.z_signs[h, l - 2][:len(Z[-1])], P.u_signs[h][:len(u)], P.z_rows[h, l - 2],
                                          P.u_rows[h, l - 2], P.scale, P.z_n_pad[h, l - 2], P.u_n_pad[h], Z[-1], u)
                    Z.append(rescaled(z, 1.0))
                # stage 3: g ~ G_h and gdot ~ Gdot_h
                g = math.sqrt(nn) * np.concatenate([[T.sqrt_c1[h, 0]]] + [T.sqrt_c1[h, l] * Z[l - 1]
                                                                         for l in range(1, p + 1)])
                gdot = np.concatenate([[T.sqrt_c0[h, 0]]] + [T.sqrt_c0[h, l] * Z[l - 1] for l in range(1, p + 1)])
                G[i][j] = g
                if not last:
                    # stage 4: P_{h-1} Gdot_h
                    Ht = T.hidden_tensor
                    MM[i][j] = (tensor(Ht.signs1[h], Ht.signs2[h], Ht.rows1[h], Ht.rows2[h], Ht.scale, Ht.n_pad1[h],
                                       Ht.n_pad2[h], PP[i][j], gdot) if T.d_t[h] > 0 else np.zeros(0))
                else:
                    # stage 6: the pixel's share of the pooled vector
                    parts = []
                    if T.has_final_tensor:
                        ft = T.final_tensor
                        parts.append(tensor(ft.signs1, ft.signs2, ft.rows1, ft.rows2, ft.scale, ft.n_pad1,
                                            ft.n_pad2, PP[i][j], gdot))
                    if not fix_last:
                        parts.append(g)
                    pooled.append(np.concatenate(parts))
        if last:
            break
        # stage 5: patch sums onto grid h + 2
        Hn, Wn = N[h + 1].shape
        p0_one = float((T.sqrt_c0[h] ** 2).sum())
        p1_one = float((T.sqrt_c1[h] ** 2).sum())
        new_pdiag = np.zeros((Hn, Wn))
        newF = [[None] * Wn for _ in range(Hn)]
        newPP = [[None] * Wn for _ in range(Hn)]
        for i in range(Hn):
            for j in range(Wn):
                new_pdiag[i, j] = sum(pdiag[i + a, j + b] * p0_one + N[h][i + a, j + b] * p1_one
                                      for a in offsets for b in offsets
                                      if 0 <= i + a < Hh and 0 <= j + b < Wh) / (q * q)
                blocks = neighbours(G, i, j, T.d_g[h])
                constants = np.array([blk[0] for blk in blocks]) / q  # carried exactly, not sketched
                g_tilde = [np.concatenate([[0.0], blk[1:]]) for blk in blocks]
                f = np.concatenate([compress(T.patch_s, h, g_tilde, True) / q, constants])
                sd = N[h + 1][i, j] * p1_one  # S_{h+1}[p, p](x, x)
                if T.d_t[h] > 0:
                    mm = neighbours(MM, i, j, T.d_t[h])
                    newPP[i][j] = np.concatenate([rescaled(compress(T.patch_p, h, mm, False) / q,
                                                           math.sqrt(max(new_pdiag[i, j] - sd, 0.0))),
                                                  rescaled(f, math.sqrt(sd))])
                else:
                    newPP[i][j] = rescaled(f, math.sqrt(new_pdiag[i, j]))
                newF[i][j] = f
        F, PP, pdiag = newF, newPP, new_pdiag
    # stage 6: global average pooling, then the output SRHT
    HL, WL = N[L - 1].shape
    d_acc = (T.final_tensor.rows1.shape[0] if T.has_final_tensor else 0) + (0 if fix_last else T.d_g[L - 1])
    total = np.zeros(d_acc)
    for v in pooled:
        total = total + v
    total = total / (q * HL * WL)
    if T.compress_out:
        return srht_naive(T.out_srht.signs, T.out_srht.rows, T.out_srht.scale, T.out_srht.n_pad, total)
    return total


def ntk_random_features_naive(rf, x):
    """NTKRandomFeatures' map of one row x from its fitted tables, transcribed layer by layer with explicit ReLU,
    step and Hadamard products (docs/math.md §6; no GEMM sharing, no fused kernels)."""
    z_nngp = z_ntk = np.asarray(x, dtype=np.float64)
    for h, (m0, m1, ms, c, k) in enumerate(rf.layer_splits_):
        W0, W1, scale, mu = rf.W0_[h], rf.W1_[h], rf.relu_scale_[h], rf.relu_mean_[h]
        tab = rf.tensor_tables_[h]
        steps = np.array([1.0 if z_nngp @ W0[:, j] > 0 else 0.0 for j in range(m0)])
        relu = np.array([max(z_nngp @ W1[:, j], 0.0) for j in range(m1)]) * scale
        if c:
            steps = np.sqrt(2.0 / m0) * (steps - 0.5)
            if not k:
                steps = np.concatenate([[np.sqrt(0.5)], steps])
            norm = np.sqrt(np.sum(z_nngp ** 2))
            relu = np.concatenate([[np.sqrt(2.0) * mu * norm], relu - np.sqrt(2.0 / m1) * mu * norm])
        else:
            steps = np.sqrt(2.0 / m0) * steps
        parts = [relu, tensor_srht_naive(tab.signs1, tab.signs2, tab.rows1, tab.rows2, tab.scale, tab.n_pad1,
                                         tab.n_pad2, z_ntk, steps)]
        if k:  # the linear term: rows of the first factor's signed transform, scaled by sqrt(1/(2k))
            parts.append(np.sqrt(0.5 / k) * srht_naive(tab.signs1, rf.linear_rows_[h], 1.0, tab.n_pad1, z_ntk))
        z_nngp, z_ntk = relu, np.concatenate(parts)
    return z_ntk


def ridge_rounding_rtol(lambdas, trace, n_train, n_validation):
    """Bound on the relative difference between two solvers' validation squared errors at each lam of a grid.

    Each backward-stable solve of the training part's system ``G + lam' I`` (``lam' = lam * n_train / n``) errs by
    about eps times its condition number, at most ``1 + trace / lam'``, with ``trace`` the full training set's
    uncentred ``trace(F^T F)`` (or ``trace(K)``), which bounds the part's centred one; the library allows a factor
    100 for the solvers' constants (``learn/_checks.py``), and two solvers each err by that.
    """
    n = n_train + n_validation
    return 2 * 100 * np.finfo(np.float64).eps * (1.0 + trace * n / (np.asarray(lambdas) * n_train))


def best_lambda_index_naive(scores, sq_errors, lambdas, rounding):
    """The validation selection rule, point by point: the highest score (None: all points), then of the points whose
    squared error could be the lowest within the rounding intervals ``sq * (1 +- rounding)``, the largest lambda."""
    n = len(sq_errors)
    cand = list(range(n)) if scores is None else [i for i in range(n) if scores[i] == max(scores)]
    best = None
    for i in cand:
        could_be_lowest = all(sq_errors[i] * (1 - rounding[i]) <= sq_errors[j] * (1 + rounding[j]) for j in cand)
        if could_be_lowest and (best is None or lambdas[i] > lambdas[best]):
            best = i
    return best
