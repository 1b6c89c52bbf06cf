// Elementwise kernels: copies, ranges and select; ElementwiseSource
// (Devices/ElementwiseOps.swift) generates the op kernels from the ops' definitions and
// appends them to this file, with the casts between dtypes.
// The program is built once per float storage type (storage.cl, prepended); every kernel
// computes in float.
// The layout helpers (STRIDED_RUN, view_offset, OPERAND_RUN) are in strided.cl, prepended.

// The dtype-independent kernels are in the float32 build only.
#if STORAGE == 0
// copy_into_<bytes>: elements of 1, 2, 4 or 8 bytes copied bit for bit from a strided view of
// src into a strided view of dst (a dense destination has contiguous strides). Runs that are
// contiguous on both sides (a permutation that keeps the last dim, as splitting heads does)
// take a loop of unit steps, which the compiler vectorises.
#define DEFINE_COPY(bytes, type) \
__kernel void copy_into_##bytes(__global const type* src, int src_off, __global type* dst, int dst_off, int n, int rank, \
                                int8 shape, int8 stride, int8 dst_stride) { \
    STRIDED_RUN(n, rank, shape) \
    int at = src_off + view_offset(row, j0, rank, shape, stride), step = int8_entry(rank - 1, stride); \
    int to = dst_off + view_offset(row, j0, rank, shape, dst_stride), dst_step = int8_entry(rank - 1, dst_stride); \
    if (step == 1 && dst_step == 1) { \
        for (int k = 0; k < len; ++k) dst[to + k] = src[at + k]; \
        return; \
    } \
    for (int k = 0; k < len; ++k) dst[to + k * dst_step] = src[at + k * step]; \
}
DEFINE_COPY(1, uchar)
DEFINE_COPY(2, ushort)
DEFINE_COPY(4, uint)
DEFINE_COPY(8, ulong)

__kernel void arange_float(__global float* dst, int n, float start, float step) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = start + (float)i * step;
}

__kernel void arange_int(__global int* dst, int n, int start, int step) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = start + i * step;
}
#endif

__kernel void select_where(__global const uchar* c, int c_off, int8 c_stride,
                           __global const ELEM* a, int a_off, int8 a_stride, float a_scalar, int a_is_scalar,
                           __global const ELEM* b, int b_off, int8 b_stride, float b_scalar, int b_is_scalar,
                           __global ELEM* dst, int n, int rank, int8 shape) {
    STRIDED_RUN(n, rank, shape)
    int c_at = c_off + view_offset(row, j0, rank, shape, c_stride), c_step = int8_entry(rank - 1, c_stride);
    OPERAND_RUN(xa, a_off, a_stride, a_is_scalar)
    OPERAND_RUN(ya, b_off, b_stride, b_is_scalar)
    for (int k = 0; k < len; ++k) {
        STORE(dst, i0 + k, c[c_at + k * c_step] != 0 ? OPERAND_VALUE(xa, a, a_scalar, a_is_scalar, k)
                                                     : OPERAND_VALUE(ya, b, b_scalar, b_is_scalar, k));
    }
}
