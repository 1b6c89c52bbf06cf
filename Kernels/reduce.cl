// Reductions over axis 1 of a contiguous [outer, size, inner] block of the STORAGE type
// (storage.cl; partial results and outputs are float), and row softmax (float32).
// Op codes match ReduceOp: 0 sum, 1 max, 2 min, 3 argmax, 4 argmin. Arg-reductions write
// their Int32 index bits into the float destination. LS (the work-group size) is set at
// build time; kernels using barriers never return before them.

#ifndef LS
#define LS 256
#endif

#if STORAGE == 1
#undef LOAD
#define LOAD(p, i) half_to_float_scaled((p)[i])
#endif

// How a work-group's items share a range [start, end): on GPUs item k takes start + k,
// start + k + LS, ... (coalesced); on CPU devices (CPU_DEVICE=1), where a work-group's items
// run one after another, each item takes one contiguous slice (cache-friendly).
#if CPU_DEVICE
#define ITEM_RANGE(start, end, lid, first, last, step) \
    int per_item_ = ((end) - (start) + LS - 1) / LS; \
    int first = (start) + (lid) * per_item_; \
    int last = min((end), first + per_item_); \
    int step = 1;
#else
#define ITEM_RANGE(start, end, lid, first, last, step) \
    int first = (start) + (lid); \
    int last = (end); \
    int step = LS;
#endif

inline float reduce_init(int op) {
    switch (op) {
    case 0: return 0.0f;
    case 1: case 3: return -INFINITY;
    default: return INFINITY;
    }
}

// True when (v, vi) should replace (b, bi) for an arg-reduction: the more extreme value,
// NaN first, and the lower index on ties.
inline bool arg_better(int op, float v, int vi, float b, int bi) {
    if (isnan(v) || isnan(b)) {
        if (isnan(v) && !isnan(b)) return true;
        if (!isnan(v)) return false;
        return vi < bi;
    }
    if (v == b) return vi < bi;
    return op == 3 ? v > b : v < b;
}

inline void reduce_combine(int op, float* b, int* bi, float v, int vi) {
    switch (op) {
    case 0: *b += v; break;
    case 1: *b = (isnan(*b) || isnan(v)) ? NAN : fmax(*b, v); break;
    case 2: *b = (isnan(*b) || isnan(v)) ? NAN : fmin(*b, v); break;
    default:
        if (arg_better(op, v, vi, *b, *bi)) { *b = v; *bi = vi; }
    }
}

// Tree reduction of the work-group's (value, index) pairs; result in lv[0], li[0].
inline void reduce_local(int op, __local float* lv, __local int* li, int lid) {
    for (int s = LS / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) {
            float b = lv[lid];
            int bi = li[lid];
            reduce_combine(op, &b, &bi, lv[lid + s], li[lid + s]);
            lv[lid] = b;
            li[lid] = bi;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

// One work-group per (row, chunk) of a [rows, size] block. With chunks == 1 it writes the
// final result to dst; otherwise partial values and indices for reduce_partials.
__kernel void reduce_rows(__global const ELEM* src, int off, int size, int chunks, int op,
                          __global float* partial_val, __global int* partial_idx, __global float* dst, int final_pass) {
    __local float lv[LS];
    __local int li[LS];
    int group = get_group_id(0);
    int lid = get_local_id(0);
    int row = group / chunks, chunk = group % chunks;
    int per = (size + chunks - 1) / chunks;
    int start = chunk * per;
    int end = min(size, start + per);
    __global const ELEM* p = src + off + (long)row * size;
    float b = reduce_init(op);
    int bi = INT_MAX;
    ITEM_RANGE(start, end, lid, first, last, step)
    if (op == 0) {
        // Four independent partial sums per work-item.
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int k = first;
        for (; k + 3 * step < last; k += 4 * step) {
            s0 += LOAD(p, k); s1 += LOAD(p, k + step); s2 += LOAD(p, k + 2 * step); s3 += LOAD(p, k + 3 * step);
        }
        for (; k < last; k += step) s0 += LOAD(p, k);
        b = (s0 + s1) + (s2 + s3);
    } else {
        for (int k = first; k < last; k += step) reduce_combine(op, &b, &bi, LOAD(p, k), k);
    }
    lv[lid] = b;
    li[lid] = bi;
    reduce_local(op, lv, li, lid);
    if (lid == 0) {
        if (final_pass) {
            dst[row] = op >= 3 ? as_float(li[0]) : lv[0];
        } else {
            partial_val[group] = lv[0];
            partial_idx[group] = li[0];
        }
    }
}

// Sums on CPU devices: work-item g sums chunk g % chunks of row g / chunks of a [rows, size]
// block, one contiguous slice, in 32 float lanes that LOAD16 fills (vectorised loads and
// conversions; a work-group's items sharing a chunk, as reduce_rows does, leaves PoCL
// vectorising across items with gathers: float16 sums 7.5 -> 1.4 ms over 16M). With chunks
// == 1 it writes the row's sum to dst; otherwise a partial sum for reduce_partials.
__kernel void sum_slices(__global const ELEM* src, int off, int size, int chunks, __global float* partial_val,
                         __global float* dst, int final_pass) {
    int g = get_global_id(0);
    int row = g / chunks, chunk = g % chunks;
    int per = (size + chunks - 1) / chunks;
    int start = chunk * per, end = min(size, start + per);
    __global const ELEM* p = src + off + (long)row * size;
    float16 s0 = 0.0f, s1 = 0.0f;
    int k = start;
    for (; k + 32 <= end; k += 32) {
        s0 += LOAD16(p, k);
        s1 += LOAD16(p, k + 16);
    }
    float16 s16 = s0 + s1;
    float8 s8 = s16.lo + s16.hi;
    float4 s4 = s8.lo + s8.hi;
    float s = (s4.x + s4.y) + (s4.z + s4.w);
    for (; k < end; ++k) s += LOAD(p, k);
    if (final_pass) dst[row] = s; else partial_val[g] = s;
}

// One work-group per row: combines the `chunks` partial results of reduce_rows.
__kernel void reduce_partials(__global const float* partial_val, __global const int* partial_idx, int chunks, int op,
                              __global float* dst) {
    __local float lv[LS];
    __local int li[LS];
    int row = get_group_id(0);
    int lid = get_local_id(0);
    float b = reduce_init(op);
    int bi = INT_MAX;
    for (int c = lid; c < chunks; c += LS) {
        reduce_combine(op, &b, &bi, partial_val[row * chunks + c], partial_idx[row * chunks + c]);
    }
    lv[lid] = b;
    li[lid] = bi;
    reduce_local(op, lv, li, lid);
    if (lid == 0) dst[row] = op >= 3 ? as_float(li[0]) : lv[0];
}

// One work-item per (outer, inner) output: walks axis 1 with stride `inner`.
__kernel void reduce_inner(__global const ELEM* src, int off, int outer, int size, int inner, int op,
                           __global float* dst) {
    int t = get_global_id(0);
    if (t >= outer * inner) return;
    int o = t / inner, i = t % inner;
    __global const ELEM* p = src + off + (long)o * size * inner + i;
    if (op == 0) {
        // A plain loop the compiler keeps in registers (and vectorises when inner is 1).
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int k = 0;
        for (; k + 3 < size; k += 4) {
            s0 += LOAD(p, (long)k * inner);
            s1 += LOAD(p, (long)(k + 1) * inner);
            s2 += LOAD(p, (long)(k + 2) * inner);
            s3 += LOAD(p, (long)(k + 3) * inner);
        }
        for (; k < size; ++k) s0 += LOAD(p, (long)k * inner);
        dst[t] = (s0 + s1) + (s2 + s3);
        return;
    }
    float b = reduce_init(op);
    int bi = INT_MAX;
    for (int k = 0; k < size; ++k) reduce_combine(op, &b, &bi, LOAD(p, (long)k * inner), k);
    dst[t] = op >= 3 ? as_float(bi) : b;
}

// One work-group per row: stable softmax (or log-softmax) of a contiguous [rows, cols] block.
__kernel void softmax_rows(__global const float* src, int off, int cols, int log_softmax, __global float* dst) {
    __local float lv[LS];
    __local int li[LS];
    int row = get_group_id(0);
    int lid = get_local_id(0);
    __global const float* x = src + off + (long)row * cols;
    __global float* y = dst + (long)row * cols;
    ITEM_RANGE(0, cols, lid, first, last, step)
    float m = -INFINITY;
    int unused = 0;
    for (int k = first; k < last; k += step) reduce_combine(1, &m, &unused, x[k], k);
    lv[lid] = m;
    li[lid] = 0;
    reduce_local(1, lv, li, lid);
    float shift = isfinite(lv[0]) ? lv[0] : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    float s = 0.0f;
    for (int k = first; k < last; k += step) s += exp(x[k] - shift);
    lv[lid] = s;
    reduce_local(0, lv, li, lid);
    float total = lv[0];
    if (log_softmax) {
        float lse = shift + log(total);
        for (int k = first; k < last; k += step) y[k] = x[k] - lse;
    } else {
        float inv = 1.0f / total;
        for (int k = first; k < last; k += step) y[k] = exp(x[k] - shift) * inv;
    }
}

// CPU devices: one work-item per row and no barriers (a work-group per row costs more in
// scheduling and barriers than the row's arithmetic), with float16 vectors over the row so
// PoCL emits vector code for max, exp and the sums.
__kernel void softmax_rows_serial(__global const float* src, int off, int rows, int cols, int log_softmax, __global float* dst) {
    int row = get_global_id(0);
    if (row >= rows) return;
    __global const float* x = src + off + (long)row * cols;
    __global float* y = dst + (long)row * cols;
    int vectors = cols / 16;
    float16 m16 = (float16)(-INFINITY);
    for (int v = 0; v < vectors; ++v) m16 = fmax(m16, vload16(v, x));
    float8 m8 = fmax(m16.lo, m16.hi);
    float4 m4 = fmax(m8.lo, m8.hi);
    float m = fmax(fmax(m4.x, m4.y), fmax(m4.z, m4.w));
    for (int k = vectors * 16; k < cols; ++k) m = fmax(m, x[k]);
    float shift = isfinite(m) ? m : 0.0f;
    float16 s16 = 0.0f;
    for (int v = 0; v < vectors; ++v) {
        float16 e = exp(vload16(v, x) - shift);
        vstore16(e, v, y);
        s16 += e;
    }
    float8 s8 = s16.lo + s16.hi;
    float4 s4 = s8.lo + s8.hi;
    float total = (s4.x + s4.y) + (s4.z + s4.w);
    for (int k = vectors * 16; k < cols; ++k) {
        float e = exp(x[k] - shift);
        y[k] = e;
        total += e;
    }
    if (log_softmax) {
        float lse = shift + log(total);
        for (int v = 0; v < vectors; ++v) vstore16(vload16(v, x) - lse, v, y);
        for (int k = vectors * 16; k < cols; ++k) y[k] = x[k] - lse;
    } else {
        float inv = 1.0f / total;
        for (int v = 0; v < vectors; ++v) vstore16(vload16(v, y) * inv, v, y);
        for (int k = vectors * 16; k < cols; ++k) y[k] *= inv;
    }
}

// LayerNorm over float32 rows of `cols`: the forward writes y = xhat*w + b with
// xhat = (x - mean)*rstd (affine bit 1: a weight, bit 2: a bias) and each row's mean and
// rstd = 1/sqrt(biased variance + eps); the backward writes dx = rstd*(gw - mean(gw) - xhat*mean(gw*xhat))
// with gw = g*w, and layer_norm_parameter_gradients the column sums of g*xhat and g.

// A work-group per row, written once for both kinds of device. On CPU devices the group is one
// item (no barriers, as softmax_rows_serial): its lane, row and scratch are compile-time
// constants there (PoCL ran the forward about 10% slower with get_local_id, get_group_id and
// a __local array, measured). Elsewhere LS items share the row's columns and row_sum adds
// their values.
// ROW_PART_SUM(acc, V, S) adds this item's share of the row's sum of a term to acc: on CPU
// devices V, the term of the sixteen columns from k (float16), over whole runs of 16 with
// vector sums and S, the term of column k, over the rest; elsewhere S over every ROW_LANES-th
// column (one float sum per lane, as a scalar loop's sum does not vectorise).
#if CPU_DEVICE
#define ROW_LANES 1
#define ROW_LANE 0
#define ROW_INDEX get_global_id(0)
#define ROW_SCRATCH __local float* lv = 0;
inline float row_sum(__local float* lv, int lid, float v) { return v; }
#define ROW_PART_SUM(acc, V, S) { \
    float16 lanes_ = 0.0f; \
    int k = 0; \
    for (; k + 16 <= cols; k += 16) lanes_ += (V); \
    acc += sum16(lanes_); \
    for (; k < cols; ++k) acc += (S); \
}
#else
#define ROW_PART_SUM(acc, V, S) for (int k = lid; k < cols; k += ROW_LANES) acc += (S);
#define ROW_LANES LS
#define ROW_LANE get_local_id(0)
#define ROW_INDEX get_group_id(0)
#define ROW_SCRATCH __local float lv[LS];
// The sum of the group's values, seen by every item.
inline float row_sum(__local float* lv, int lid, float v) {
    lv[lid] = v;
    for (int s = LS / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) lv[lid] += lv[lid + s];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float out = lv[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return out;
}
#endif

__kernel void layer_norm_rows(__global const float* src, int off, int rows, int cols, float eps, __global const float* weight,
                              __global const float* bias, int affine, __global float* dst, __global float* mean, __global float* rstd) {
    ROW_SCRATCH
    int row = ROW_INDEX, lid = ROW_LANE;
    __global const float* x = src + off + (long)row * cols;
    __global float* y = dst + (long)row * cols;
    float s = 0.0f;
    ROW_PART_SUM(s, vload16(0, x + k), x[k])
    float mu = row_sum(lv, lid, s) / cols;
    float q = 0.0f;
    ROW_PART_SUM(q, (vload16(0, x + k) - mu) * (vload16(0, x + k) - mu), (x[k] - mu) * (x[k] - mu))
    float r = 1.0f / sqrt(row_sum(lv, lid, q) / cols + eps);
    if (lid == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
    for (int k = lid; k < cols; k += ROW_LANES) {
        float v = (x[k] - mu) * r;
        if (affine & 1) v *= weight[k];
        if (affine & 2) v += bias[k];
        y[k] = v;
    }
}

__kernel void layer_norm_backward_rows(__global const float* grad, __global const float* src, int off, int rows, int cols,
                                       __global const float* mean, __global const float* rstd, __global const float* weight,
                                       int has_weight, __global float* dx) {
    ROW_SCRATCH
    int row = ROW_INDEX, lid = ROW_LANE;
    __global const float* g = grad + (long)row * cols;
    __global const float* x = src + off + (long)row * cols;
    __global float* d = dx + (long)row * cols;
    float mu = mean[row], r = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    // g*w of the sixteen columns from k, and of column k.
#define GW16 (has_weight ? vload16(0, g + k) * vload16(0, weight + k) : vload16(0, g + k))
#define GW (has_weight ? g[k] * weight[k] : g[k])
    ROW_PART_SUM(sg, GW16, GW)
    ROW_PART_SUM(sgx, GW16 * ((vload16(0, x + k) - mu) * r), GW * ((x[k] - mu) * r))
#undef GW16
#undef GW
    float mg = row_sum(lv, lid, sg) / cols, mgx = row_sum(lv, lid, sgx) / cols;
    for (int k = lid; k < cols; k += ROW_LANES) {
        float gw = has_weight ? g[k] * weight[k] : g[k];
        d[k] = r * (gw - mg - (x[k] - mu) * r * mgx);
    }
}

// dw = sum over rows of g*xhat (wanted bit 1), db = sum over rows of g (bit 2): one work-item
// per column, and on CPU devices per sixteen columns (LN_COLUMNS), which it sums as vectors
// down the rows (reading whole cache lines of each row rather than one element).
#if CPU_DEVICE
#define LN_COLUMNS 16
#else
#define LN_COLUMNS 1
#endif
__kernel void layer_norm_parameter_gradients(__global const float* grad, __global const float* src, int off, int rows, int cols,
                                             __global const float* mean, __global const float* rstd, int wanted,
                                             __global float* dw, __global float* db) {
    int c0 = get_global_id(0) * LN_COLUMNS;
    if (c0 >= cols) return;
#if CPU_DEVICE
    if (c0 + 16 <= cols) {
        float16 sw = 0.0f, sb = 0.0f;
        for (int row = 0; row < rows; ++row) {
            float16 g = vload16(0, grad + (long)row * cols + c0);
            sw = fma(g, (vload16(0, src + off + (long)row * cols + c0) - mean[row]) * rstd[row], sw);
            sb += g;
        }
        if (wanted & 1) vstore16(sw, 0, dw + c0);
        if (wanted & 2) vstore16(sb, 0, db + c0);
        return;
    }
#endif
    for (int c = c0; c < min(cols, c0 + LN_COLUMNS); ++c) {
        float sw = 0.0f, sb = 0.0f;
        for (int row = 0; row < rows; ++row) {
            float g = grad[(long)row * cols + c];
            sw += g * ((src[off + (long)row * cols + c] - mean[row]) * rstd[row]);
            sb += g;
        }
        if (wanted & 1) dw[c] = sw;
        if (wanted & 2) db[c] = sb;
    }
}
