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

#else

// The work-group's sum (or maximum) of v; every item gets it.
inline float group_reduce(__local float* lv, int lid, float v, int take_max) {
    lv[lid] = v;
    for (int s = LS / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) lv[lid] = take_max ? fmax(lv[lid], lv[lid + s]) : lv[lid] + lv[lid + s];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float out = lv[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return out;
}

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
