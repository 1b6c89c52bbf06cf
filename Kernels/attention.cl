// Attention's fused row kernels: the masked, scaled softmax of a [batch, rows, cols] block of
// scores and its backward. The causal mask is an index test (key j <= query i); an additive
// mask is read through its broadcast strides [s0, s1, s2, s3] over [batch / inner, inner,
// rows, cols], so no [B, H, L, S] mask is ever formed. Keys past the causal prefix and rows
// whose keys are all masked get weight 0. CPU devices (CPU_DEVICE=1) run a row per work-item
// with float16 vectors; GPUs a work-group of LS items per row.

#ifndef LS
#define LS 256
#endif

#define ROW_SETUP                                                                          \
    int i = r % rows, b = r / rows;                                                        \
    int valid = causal ? min(i + 1, cols) : cols;                                          \
    __global const float* x = src + (long)r * cols;                                        \
    __global float* y = dst + (long)r * cols;                                              \
    __global const float* mp = mask + moff + (long)(b / inner) * s0 + (long)(b % inner) * s1 + (long)i * s2;

#if CPU_DEVICE

__kernel void attention_softmax(__global const float* src, int total_rows, int rows, int cols, float scale, int causal,
                                int has_mask, __global const float* mask, int moff, int inner,
                                int s0, int s1, int s2, int s3, __global float* dst) {
    int r = get_global_id(0);
    if (r >= total_rows) return;
    ROW_SETUP
    float m = -INFINITY;
    int vectors = valid / 16;
    if (has_mask) {
        for (int j = 0; j < valid; ++j) {
            float v = x[j] * scale + mp[(long)j * s3];
            y[j] = v;
            m = fmax(m, v);
        }
    } else {
        float16 m16 = (float16)(-INFINITY);
        for (int v = 0; v < vectors; ++v) {
            float16 t = vload16(v, x) * scale;
            vstore16(t, v, y);
            m16 = fmax(m16, t);
        }
        float8 m8 = fmax(m16.lo, m16.hi);
        float4 m4 = fmax(m8.lo, m8.hi);
        m = fmax(fmax(m4.x, m4.y), fmax(m4.z, m4.w));
        for (int j = vectors * 16; j < valid; ++j) {
            float t = x[j] * scale;
            y[j] = t;
            m = fmax(m, t);
        }
    }
    if (m == -INFINITY) {
        for (int j = 0; j < cols; ++j) y[j] = 0.0f;
        return;
    }
    float16 s16 = 0.0f;
    for (int v = 0; v < vectors; ++v) {
        float16 e = exp(vload16(v, y) - m);
        vstore16(e, v, y);
        s16 += e;
    }
    float8 s8 = s16.lo + s16.hi;
    float4 s4 = s8.lo + s8.hi;
    float total = (s4.x + s4.y) + (s4.z + s4.w);
    for (int j = vectors * 16; j < valid; ++j) {
        float e = exp(y[j] - m);
        y[j] = e;
        total += e;
    }
    float inv = 1.0f / total;
    for (int v = 0; v < vectors; ++v) vstore16(vload16(v, y) * inv, v, y);
    for (int j = vectors * 16; j < valid; ++j) y[j] *= inv;
    for (int j = valid; j < cols; ++j) y[j] = 0.0f;
}

__kernel void attention_softmax_backward(__global const float* p, __global const float* g, int total_rows, int rows, int cols,
                                         float scale, int causal, __global float* dst) {
    int r = get_global_id(0);
    if (r >= total_rows) return;
    int valid = causal ? min(r % rows + 1, cols) : cols;
    __global const float* pr = p + (long)r * cols;
    __global const float* gr = g + (long)r * cols;
    __global float* y = dst + (long)r * cols;
    int vectors = valid / 16;
    float16 d16 = 0.0f;
    for (int v = 0; v < vectors; ++v) d16 += vload16(v, pr) * vload16(v, gr);
    float8 d8 = d16.lo + d16.hi;
    float4 d4 = d8.lo + d8.hi;
    float dot = (d4.x + d4.y) + (d4.z + d4.w);
    for (int j = vectors * 16; j < valid; ++j) dot += pr[j] * gr[j];
    for (int v = 0; v < vectors; ++v) vstore16(scale * vload16(v, pr) * (vload16(v, gr) - dot), v, y);
    for (int j = vectors * 16; j < valid; ++j) y[j] = scale * pr[j] * (gr[j] - dot);
    for (int j = valid; j < cols; ++j) y[j] = 0.0f;
}

// Flash-style attention for CPU devices: one work-item per query row (or, in the backward's
// second kernel, per key row) streams over the keys with an online softmax, holding its row
// in float16 registers (head dims a multiple of 16, at most 16 * FLASH_CHUNKS), so no
// [L, S] block of scores or weights is ever written. q, k, v, o and their gradients are
// contiguous [batch, rows or cols, dim]; lse holds each query row's log-sum-exp of its scaled
// scores, saved by the forward for the backward's recomputation of the weights.
#define FLASH_CHUNKS 8

inline float hsum16(float16 d) {
    float8 d8 = d.lo + d.hi;
    float4 d4 = d8.lo + d8.hi;
    return (d4.x + d4.y) + (d4.z + d4.w);
}

__kernel void flash_attention_forward(__global const float* q, __global const float* k, __global const float* v,
                                      int total_rows, int rows, int cols, int dim, float scale, int causal,
                                      __global float* out, __global float* lse) {
    int r = get_global_id(0);
    if (r >= total_rows) return;
    int b = r / rows, i = r % rows, chunks = dim / 16;
    int valid = causal ? min(i + 1, cols) : cols;
    __global const float* kb = k + (long)b * cols * dim;
    __global const float* vb = v + (long)b * cols * dim;
    float16 qs[FLASH_CHUNKS], acc[FLASH_CHUNKS];
    for (int c = 0; c < chunks; ++c) {
        qs[c] = vload16(c, q + (long)r * dim) * scale;
        acc[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j < valid; ++j) {
        float16 d = 0.0f;
        for (int c = 0; c < chunks; ++c) d += qs[c] * vload16(c, kb + (long)j * dim);
        float s = hsum16(d);
        if (s > m) {
            float correction = exp(m - s);
            l *= correction;
            for (int c = 0; c < chunks; ++c) acc[c] *= correction;
            m = s;
        }
        float p = exp(s - m);
        l += p;
        for (int c = 0; c < chunks; ++c) acc[c] += p * vload16(c, vb + (long)j * dim);
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int c = 0; c < chunks; ++c) vstore16(acc[c] * inv, c, out + (long)r * dim);
    lse[r] = m + log(l);
}

// Query rows: dq = scale * sum_j p_ij (do_i . v_j - D_i) k_j, with D_i = do_i . o_i (written
// to delta for the key-row kernel).
__kernel void flash_attention_backward_query(__global const float* q, __global const float* k, __global const float* v,
                                             __global const float* o, __global const float* dout, __global const float* lse,
                                             int total_rows, int rows, int cols, int dim, float scale, int causal,
                                             __global float* delta, __global float* dq) {
    int r = get_global_id(0);
    if (r >= total_rows) return;
    int b = r / rows, i = r % rows, chunks = dim / 16;
    int valid = causal ? min(i + 1, cols) : cols;
    __global const float* kb = k + (long)b * cols * dim;
    __global const float* vb = v + (long)b * cols * dim;
    float16 qs[FLASH_CHUNKS], g[FLASH_CHUNKS], acc[FLASH_CHUNKS];
    float16 dd = 0.0f;
    for (int c = 0; c < chunks; ++c) {
        qs[c] = vload16(c, q + (long)r * dim) * scale;
        g[c] = vload16(c, dout + (long)r * dim);
        dd += g[c] * vload16(c, o + (long)r * dim);
        acc[c] = 0.0f;
    }
    float big_d = hsum16(dd), row_lse = lse[r];
    delta[r] = big_d;
    for (int j = 0; j < valid; ++j) {
        float16 s16 = 0.0f, dp16 = 0.0f;
        for (int c = 0; c < chunks; ++c) {
            s16 += qs[c] * vload16(c, kb + (long)j * dim);
            dp16 += g[c] * vload16(c, vb + (long)j * dim);
        }
        float ds = exp(hsum16(s16) - row_lse) * (hsum16(dp16) - big_d);
        for (int c = 0; c < chunks; ++c) acc[c] += ds * vload16(c, kb + (long)j * dim);
    }
    for (int c = 0; c < chunks; ++c) vstore16(acc[c] * scale, c, dq + (long)r * dim);
}

// Key rows: dv_j = sum_i p_ij do_i and dk_j = scale * sum_i p_ij (do_i . v_j - D_i) q_i over
// the queries that see key j.
__kernel void flash_attention_backward_key(__global const float* q, __global const float* k, __global const float* v,
                                           __global const float* dout, __global const float* lse, __global const float* delta,
                                           int total_keys, int rows, int cols, int dim, float scale, int causal,
                                           __global float* dk, __global float* dv) {
    int r = get_global_id(0);
    if (r >= total_keys) return;
    int b = r / cols, j = r % cols, chunks = dim / 16;
    __global const float* qb = q + (long)b * rows * dim;
    __global const float* gb = dout + (long)b * rows * dim;
    float16 ks[FLASH_CHUNKS], vj[FLASH_CHUNKS], ak[FLASH_CHUNKS], av[FLASH_CHUNKS];
    for (int c = 0; c < chunks; ++c) {
        ks[c] = vload16(c, k + (long)r * dim) * scale;
        vj[c] = vload16(c, v + (long)r * dim);
        ak[c] = 0.0f;
        av[c] = 0.0f;
    }
    for (int i = causal ? j : 0; i < rows; ++i) {
        float16 s16 = 0.0f, dp16 = 0.0f;
        for (int c = 0; c < chunks; ++c) {
            s16 += ks[c] * vload16(c, qb + (long)i * dim);
            dp16 += vj[c] * vload16(c, gb + (long)i * dim);
        }
        long row = (long)b * rows + i;
        float p = exp(hsum16(s16) - lse[row]);
        float ds = p * (hsum16(dp16) - delta[row]);
        for (int c = 0; c < chunks; ++c) {
            av[c] += p * vload16(c, gb + (long)i * dim);
            ak[c] += ds * vload16(c, qb + (long)i * dim);
        }
    }
    for (int c = 0; c < chunks; ++c) {
        vstore16(ak[c] * scale, c, dk + (long)r * dim);
        vstore16(av[c], c, dv + (long)r * dim);
    }
}

#else

__kernel void attention_softmax(__global const float* src, int total_rows, int rows, int cols, float scale, int causal,
                                int has_mask, __global const float* mask, int moff, int inner,
                                int s0, int s1, int s2, int s3, __global float* dst) {
    __local float lv[LS];
    int r = get_group_id(0);
    int lid = get_local_id(0);
    ROW_SETUP
    float m = -INFINITY;
    for (int j = lid; j < valid; j += LS) {
        float v = x[j] * scale + (has_mask ? mp[(long)j * s3] : 0.0f);
        y[j] = v;
        m = fmax(m, v);
    }
    m = group_reduce(lv, lid, m, 1);
    float s = 0.0f;
    for (int j = lid; j < valid; j += LS) {
        float e = m == -INFINITY ? 0.0f : exp(y[j] - m);
        y[j] = e;
        s += e;
    }
    float total = group_reduce(lv, lid, s, 0);
    float inv = total > 0.0f ? 1.0f / total : 0.0f;
    for (int j = lid; j < valid; j += LS) y[j] *= inv;
    for (int j = valid + lid; j < cols; j += LS) y[j] = 0.0f;
}

__kernel void attention_softmax_backward(__global const float* p, __global const float* g, int total_rows, int rows, int cols,
                                         float scale, int causal, __global float* dst) {
    __local float lv[LS];
    int r = get_group_id(0);
    int lid = get_local_id(0);
    int valid = causal ? min(r % rows + 1, cols) : cols;
    __global const float* pr = p + (long)r * cols;
    __global const float* gr = g + (long)r * cols;
    __global float* y = dst + (long)r * cols;
    float d = 0.0f;
    for (int j = lid; j < valid; j += LS) d += pr[j] * gr[j];
    float dot = group_reduce(lv, lid, d, 0);
    for (int j = lid; j < valid; j += LS) y[j] = scale * pr[j] * (gr[j] - dot);
    for (int j = valid + lid; j < cols; j += LS) y[j] = 0.0f;
}

#endif
