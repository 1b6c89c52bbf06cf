// Fused optimizer updates and the many-tensor reduction of gradient norms, over elements of
// the STORAGE type (storage.cl, prepended; the program is built once per float storage type).
// Every update reads the parameter, the gradient and the states once and writes the
// parameter and the states once, computing in float with the operations of the composed
// update in Optim/Optimizer.swift in the same order; contraction into FMA is off so each
// operation rounds as the CPU's does. Each work-item of an update takes a run of RUN
// consecutive elements (strided.cl's, prepended: 64 on CPU devices, a loop the compiler
// vectorises; 1 on GPUs).

#pragma OPENCL FP_CONTRACT OFF

#ifndef LS
#define LS 256
#endif

// Each launch updates up to 8 tensors (OpenCL 1.2 passes every buffer as its own argument):
// work-items starts[t] .. starts[t + 1] - 1 take tensor t's runs of RUN elements (its counts[t]
// elements, its gradient from g_offs[t]); a slot past the last tensor has its start at the
// number of work-items and repeats the last tensor's buffers, unread.
#define OPTIM_TENSORS 8
#define BUFFERS(Q, x) __global Q ELEM* x##0, __global Q ELEM* x##1, __global Q ELEM* x##2, __global Q ELEM* x##3, \
                      __global Q ELEM* x##4, __global Q ELEM* x##5, __global Q ELEM* x##6, __global Q ELEM* x##7
// Declares `x`, tensor t's buffer among arguments x0 .. x7.
#define PICK(Q, x) __global Q ELEM* x; { \
        __global Q ELEM* const all_[OPTIM_TENSORS] = {x##0, x##1, x##2, x##3, x##4, x##5, x##6, x##7}; x = all_[t]; }

#define TENSOR_RUN(starts, counts) \
    int item_ = get_global_id(0), t = 0; \
    while (t + 1 < OPTIM_TENSORS && item_ >= int8_entry(t + 1, starts)) ++t; \
    int n = int8_entry(t, counts), i0 = (item_ - int8_entry(t, starts)) * RUN; \
    if (i0 >= n) return; \
    int end = min(i0 + RUN, n);

// SGD; `b` (the momentum buffer) is read only when has_momentum (otherwise it is `p`, unread).
__kernel void optim_sgd(int8 starts, int8 counts, int8 g_offs, BUFFERS(, p), BUFFERS(const, g), BUFFERS(, b),
                        float lr, float wd, float momentum, float keep, int dampened, int nesterov, int first,
                        int has_momentum) {
    TENSOR_RUN(starts, counts)
    PICK(, p) PICK(const, g) PICK(, b)
    g += int8_entry(t, g_offs);
    for (int i = i0; i < end; ++i) {
        float x = LOAD(p, i), d = LOAD(g, i);
        if (wd != 0.0f) d = d + x * wd;
        if (has_momentum) {
            float m;
            if (first) {
                m = d;
            } else {
                m = LOAD(b, i) * momentum;
                m = m + (dampened ? d * keep : d);
            }
            STORE(b, i, m);
            d = nesterov ? d + m * momentum : m;
        }
        STORE(p, i, x - d * lr);
    }
}

// Adam and AdamW (decoupled: the parameter is multiplied by decay_factor first).
__kernel void optim_adam(int8 starts, int8 counts, int8 g_offs, BUFFERS(, p), BUFFERS(const, g), BUFFERS(, m),
                         BUFFERS(, v), float wd, int decoupled, float decay_factor, float beta1, float one_minus_beta1,
                         float beta2, float one_minus_beta2, float step_size, float correction2, float eps) {
    TENSOR_RUN(starts, counts)
    PICK(, p) PICK(const, g) PICK(, m) PICK(, v)
    g += int8_entry(t, g_offs);
    for (int i = i0; i < end; ++i) {
        float x = LOAD(p, i), d = LOAD(g, i);
        if (wd != 0.0f) {
            if (decoupled) x = x * decay_factor; else d = d + x * wd;
        }
        float mean = LOAD(m, i) * beta1;
        mean = mean + d * one_minus_beta1;
        float square = LOAD(v, i) * beta2;
        square = square + d * d * one_minus_beta2;
        STORE(m, i, mean);
        STORE(v, i, square);
        float denominator = sqrt(square / correction2) + eps;
        STORE(p, i, x - mean * step_size / denominator);
    }
}

// RMSprop; `avg` (grad_avg) is read when centered and `b` (momentum_buffer) when
// has_momentum (otherwise each is `p`, unread).
__kernel void optim_rmsprop(int8 starts, int8 counts, int8 g_offs, BUFFERS(, p), BUFFERS(const, g), BUFFERS(, sq),
                            BUFFERS(, avg), BUFFERS(, b), float lr, float wd, float alpha, float one_minus_alpha,
                            float eps, float momentum, int centered, int has_momentum) {
    TENSOR_RUN(starts, counts)
    PICK(, p) PICK(const, g) PICK(, sq) PICK(, avg) PICK(, b)
    g += int8_entry(t, g_offs);
    for (int i = i0; i < end; ++i) {
        float x = LOAD(p, i), d = LOAD(g, i);
        if (wd != 0.0f) d = d + x * wd;
        float square = LOAD(sq, i) * alpha;
        square = square + d * d * one_minus_alpha;
        STORE(sq, i, square);
        float average;
        if (centered) {
            float mean = LOAD(avg, i) * alpha;
            mean = mean + d * one_minus_alpha;
            STORE(avg, i, mean);
            average = sqrt(square - mean * mean) + eps;
        } else {
            average = sqrt(square) + eps;
        }
        if (has_momentum) {
            float mo = LOAD(b, i) * momentum;
            mo = mo + d / average;
            STORE(b, i, mo);
            STORE(p, i, x - mo * lr);
        } else {
            STORE(p, i, x - d / average * lr);
        }
    }
}

// Norm reduction modes (NormPower): 0 sum of x * x, 1 sum of pow(|x|, q), 2 max |x| (NaN wins).
inline float norm_term(int mode, float x, float q) {
    return mode == 0 ? x * x : mode == 1 ? pow(fabs(x), q) : fabs(x);
}

inline float norm_combine(int mode, float a, float b) {
    return mode == 2 ? ((isnan(a) || isnan(b)) ? NAN : fmax(a, b)) : a + b;
}

inline int int16_entry(int d, int16 v) {
    int a[16];
    vstore16(v, 0, a);
    return a[d];
}

// Partial results of up to 16 tensors in one launch: work-item (k, t) of the [items, count]
// range (items = the global size along dim 0) reduces its share of tensor t (contiguous from
// offsets[t], counts[t] elements; a contiguous slice on CPU devices, summed sixteen lanes at a
// time for squares, every items-th element on GPUs) into partials[(slot + t) * items + k].
__kernel void power_sum_partials(int mode, float q, int16 offsets, int16 counts,
                                 __global const ELEM* s0, __global const ELEM* s1, __global const ELEM* s2, __global const ELEM* s3,
                                 __global const ELEM* s4, __global const ELEM* s5, __global const ELEM* s6, __global const ELEM* s7,
                                 __global const ELEM* s8, __global const ELEM* s9, __global const ELEM* s10, __global const ELEM* s11,
                                 __global const ELEM* s12, __global const ELEM* s13, __global const ELEM* s14, __global const ELEM* s15,
                                 __global float* partials, int slot) {
    int k = get_global_id(0), t = get_global_id(1), items = get_global_size(0);
    __global const ELEM* const sources[16] = {s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15};
    __global const ELEM* src = sources[t];
    int off = int16_entry(t, offsets), n = int16_entry(t, counts);
    float acc = 0.0f;
#if CPU_DEVICE
    int per = (n + items - 1) / items;
    int j = k * per, last = min(n, j + per), step = 1;
    if (mode == 0) {
        float16 squares = 0.0f;
        for (; j + 16 <= last; j += 16) {
            float16 x = LOAD16(src, off + j);
            squares = fma(x, x, squares);
        }
        acc = sum16(squares);
    }
#else
    int j = k, last = n, step = items;
#endif
    for (; j < last; j += step) acc = norm_combine(mode, acc, norm_term(mode, LOAD(src, off + j), q));
    partials[(slot + t) * items + k] = acc;
}

// Combines `count` partial results into dst[0] with one work-group of LS items.
__kernel void power_sum_finish(__global const float* partials, int count, int mode, __global float* dst) {
    __local float lv[LS];
    int lid = get_local_id(0);
    float acc = 0.0f;
    for (int j = lid; j < count; j += LS) acc = norm_combine(mode, acc, partials[j]);
    lv[lid] = acc;
    for (int s = LS / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) lv[lid] = norm_combine(mode, lv[lid], lv[lid + s]);
    }
    if (lid == 0) dst[0] = lv[0];
}
