// Cross-entropy of rows of logits against class indices (Losses.swift's fused crossEntropy),
// float32, with index_check.cl and group_reduce.cl prepended. Row i of the logits (from `off`,
// rows `row_stride` apart, classes adjacent) is scored against target[t_off + i * t_stride]
// (Int32, or Int64 when `wide`); `weight` is read only when `weighted`. CPU devices take a row
// per work-item; GPUs a work-group of LS work-items per row, each taking every LS-th class,
// combined in local memory.

#ifndef LS
#define LS 256
#endif

#if CPU_DEVICE
#define ROW get_global_id(0)
#define FIRST 0
#define STEP 1
#define LOCAL_SCRATCH
#define ROW_SUM(v) (v)
#else
#define ROW get_group_id(0)
#define FIRST ((int)get_local_id(0))
#define STEP LS
#define LOCAL_SCRATCH __local float scratch[LS];
#define ROW_MAX(v) group_reduce(scratch, get_local_id(0), v, 1)
#define ROW_SUM(v) group_reduce(scratch, get_local_id(0), v, 0)
#endif

// log(sum(exp(r[c]))) over the row, shifted by its maximum (by 0 when that is not finite, as
// the softmax kernels do). CPU devices take whole runs of 16 classes as vectors (PoCL's vector
// exp), then the rest one at a time.
#if CPU_DEVICE
#define ROW_LOG_SUM_EXP(r, classes, lse) \
    float16 m16_ = -INFINITY, s16_ = 0.0f; \
    int c_ = 0; \
    for (; c_ + 16 <= classes; c_ += 16) m16_ = fmax(m16_, vload16(0, r + c_)); \
    float m_ = max16(m16_); \
    for (; c_ < classes; ++c_) m_ = fmax(m_, r[c_]); \
    float shift_ = isfinite(m_) ? m_ : 0.0f; \
    for (c_ = 0; c_ + 16 <= classes; c_ += 16) s16_ += exp(vload16(0, r + c_) - shift_); \
    float s_ = sum16(s16_); \
    for (; c_ < classes; ++c_) s_ += exp(r[c_] - shift_); \
    float lse = shift_ + log(s_);
#else
#define ROW_LOG_SUM_EXP(r, classes, lse) \
    float m_ = -INFINITY; \
    for (int c = FIRST; c < classes; c += STEP) m_ = fmax(m_, r[c]); \
    m_ = ROW_MAX(m_); \
    float shift_ = isfinite(m_) ? m_ : 0.0f, s_ = 0.0f; \
    for (int c = FIRST; c < classes; c += STEP) s_ += exp(r[c] - shift_); \
    float lse = shift_ + log(ROW_SUM(s_));
#endif

// The row of work-item (CPU devices) or work-group (GPUs) `i`, and whether its target `y` is
// ignored or outside the classes (`skip`: the row's loops then run over no classes, so every
// work-item of a group reaches the same barriers). A GPU launch has a group per row exactly.
#if CPU_DEVICE
#define PAST_LAST_ROW(i) if (i >= rows) return;
#else
#define PAST_LAST_ROW(i)
#endif
#define ROW_TARGET \
    int i = ROW; \
    PAST_LAST_ROW(i) \
    long y = index_at(target, wide, t_off + i * t_stride); \
    bool ignored = ignoring && y == ignore, skip = ignored || y < 0 || y >= classes; \
    int span = skip ? 0 : classes;

// out[i] = (1 - smoothing) * w[y] * (lse - x[y]) + smoothing / classes * sum_c w[c] * (lse - x[c])
// (the row's term) and out[rows + i] = w[y] (its kept weight); both 0 for an ignored or
// out-of-range target (the latter reported).
__kernel void cross_entropy_rows(__global const float* x, int off, int row_stride, int rows, int classes,
                                 __global const int* target, int wide, int t_off, int t_stride,
                                 __global const float* weight, int weighted, float smoothing,
                                 __global float* out, int ignore, int ignoring, int site, volatile __global int* errors) {
    LOCAL_SCRATCH
    ROW_TARGET
    __global const float* r = x + off + (long)i * row_stride;
    ROW_LOG_SUM_EXP(r, span, lse)
    float smooth = 0.0f;
    if (smoothing != 0.0f) {
        for (int c = FIRST; c < span; c += STEP) smooth += (r[c] - lse) * (weighted ? weight[c] : 1.0f);
        smooth = ROW_SUM(smooth);
    }
    if (FIRST != 0) return;
    if (skip) {
        if (!ignored) report_index(errors, site, y, classes);
        out[i] = 0.0f;
        out[rows + i] = 0.0f;
    } else {
        float wy = weighted ? weight[y] : 1.0f;
        out[i] = -((r[y] - lse) * wy * (1.0f - smoothing) + smooth * (smoothing / classes));
        out[rows + i] = wy;
    }
}

// The logits' gradient of the terms, times g[g_off + i * g_stride] per row (divided by
// divisor[div_off] when `divided`: a mean's weight sum):
// g * (p[c] * ((1 - smoothing) * w[y] + smoothing / classes * sum_c w[c]) - smoothing / classes * w[c]
// - (c == y) * (1 - smoothing) * w[y]) with p the row's softmax; 0 for ignored or out-of-range targets.
__kernel void cross_entropy_backward_rows(__global const float* x, int off, int row_stride, int rows, int classes,
                                          __global const int* target, int wide, int t_off, int t_stride,
                                          __global const float* weight, int weighted, float smoothing,
                                          __global const float* g, int g_off, int g_stride,
                                          __global const float* divisor, int div_off, int divided, __global float* dx,
                                          int ignore, int ignoring) {
    LOCAL_SCRATCH
    ROW_TARGET
    __global const float* r = x + off + (long)i * row_stride;
    __global float* d = dx + (long)i * classes;
    ROW_LOG_SUM_EXP(r, span, lse)
    float total = classes;
    if (weighted) {
        total = 0.0f;
        for (int c = FIRST; c < classes; c += STEP) total += weight[c];
        total = ROW_SUM(total);
    }
    if (skip) {
        for (int c = FIRST; c < classes; c += STEP) d[c] = 0.0f;
        return;
    }
    float wy = weighted ? weight[y] : 1.0f, share = smoothing / classes, gi = g[g_off + i * g_stride];
    if (divided) gi = gi / divisor[div_off];
    float a = (1.0f - smoothing) * wy + share * total;
    int c = FIRST;
#if CPU_DEVICE
    // Whole runs of 16 classes as vectors, the target's term after them.
    for (; c + 16 <= classes; c += 16) {
        float16 v = exp(vload16(0, r + c) - lse) * a - share * (weighted ? vload16(0, weight + c) : (float16)1.0f);
        vstore16(gi * v, 0, d + c);
    }
    if (y < c) d[y] = gi * (exp(r[y] - lse) * a - share * (weighted ? weight[y] : 1.0f) - (1.0f - smoothing) * wy);
#endif
    for (; c < classes; c += STEP) {
        float v = exp(r[c] - lse) * a - share * (weighted ? weight[c] : 1.0f);
        if (c == y) v -= (1.0f - smoothing) * wy;
        d[c] = gi * v;
    }
}
