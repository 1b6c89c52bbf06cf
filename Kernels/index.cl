// Gather and scatter-add along axis 1 of [outer, size, inner] blocks. Index views are Int32,
// or Int64 when `wide`, with strides (s0, s1, s2) over [outer, j, inner]. An index equal to
// `ignore` (when `ignoring`, a loss's ignore_index) reads 0 or adds nothing. Any other index
// outside 0..<size reads 0 or adds nothing too, and is reported (index_check.cl's
// report_index, prepended), so the host stops with the CPU's message.

// gather_<bytes>: elements of 1, 2, 4 or 8 bytes, copied bit for bit. Each work-item takes a
// run of RUN consecutive outputs (strided.cl's DENSE_RUN, prepended), as scatter_add does, in
// segments along `inner` (SEGMENTS: the run's position is divided out once per segment, and
// an index broadcast along inner, s2 == 0 as an embedding's, is read once per segment).
#define SEGMENTS(body) \
    for (int t = i0; t < end; ) { \
        int i = t % inner, jj = (t / inner) % j, o = t / (inner * j); \
        int len = min(end - t, inner - i); \
        int at = index_off + o * s0 + jj * s1 + i * s2; \
        body \
        t += len; \
    }
#define DEFINE_GATHER(bytes, type) \
__kernel void gather_##bytes(__global const type* src, int off, int size, int inner, int j, \
                             __global const int* index, int wide, int index_off, int s0, int s1, int s2, \
                             __global type* dst, int n, int ignore, int ignoring, int site, \
                             volatile __global int* errors) { \
    DENSE_RUN(n) \
    SEGMENTS({ \
        for (int q = 0; q < len; ++q) { \
            long k = index_at(index, wide, at + q * s2); \
            bool skip = ignoring && k == ignore; \
            bool valid = k >= 0 && k < size; \
            if (!valid && !skip) report_index(errors, site, k, size); \
            if (s2 != 0 || !valid || skip) { \
                dst[t + q] = (valid && !skip) ? src[off + ((long)o * size + k) * inner + i + q] : (type)0; \
                continue; \
            } \
            __global const type* row = src + off + ((long)o * size + k) * inner + i; \
            for (int c = q; c < len; ++c) dst[t + c] = row[c]; \
            break; \
        } \
    }) \
}
DEFINE_GATHER(1, uchar)
DEFINE_GATHER(2, ushort)
DEFINE_GATHER(4, uint)
DEFINE_GATHER(8, ulong)

// Float atomic add through a compare-and-swap loop on the bits (OpenCL 1.2 has no float atomics).
inline void atomic_add_float(volatile __global float* address, float value) {
    volatile __global int* bits = (volatile __global int*)address;
    int expected = *bits;
    while (true) {
        int desired = as_int(as_float(expected) + value);
        int seen = atomic_cmpxchg(bits, expected, desired);
        if (seen == expected) break;
        expected = seen;
    }
}

__kernel void scatter_add(__global const float* values, int values_off, int v0, int v1, int v2,
                          __global const int* index, int wide, int index_off, int s0, int s1, int s2,
                          int size, int inner, int j, __global float* dst, int n,
                          int ignore, int ignoring, int site, volatile __global int* errors) {
    DENSE_RUN(n)
    SEGMENTS({
        for (int q = 0; q < len; ++q) {
            long k = index_at(index, wide, at + q * s2);
            if (ignoring && k == ignore) continue;
            if (k < 0 || k >= size) {
                report_index(errors, site, k, size);
                continue;
            }
            atomic_add_float(dst + ((long)o * size + k) * inner + i + q, values[values_off + o * v0 + jj * v1 + (i + q) * v2]);
        }
    })
}
