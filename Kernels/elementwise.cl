// Elementwise kernels: copies, constants, select, and the layout helpers and storage
// macros of the op kernels that ElementwiseSource (Devices/ElementwiseOps.swift) generates
// from the ops' definitions and appends to this file, with the casts between dtypes.
// The program is built once per float storage type (storage.cl, prepended); every kernel
// computes in float.
// Strided operands pass their collapsed shape and strides as int8 (at most 8 dims).
// Strided kernels give each work-item a run of RUN consecutive elements of one row (a row
// is the last collapsed dim; the others number the rows), which it loops over: the
// divisions that locate a row are done once per run. RUN is 1 on GPUs (adjacent work-items
// touch adjacent elements) and 64 on CPU devices (a loop the compiler vectorises).

// For work-item t: the run's row, its first column j0, its output index i0 and length len.
#define STRIDED_RUN(n, rank, shape) \
    int last = int8_entry(rank - 1, shape), runs_ = (last + RUN - 1) / RUN; \
    int t_ = get_global_id(0); \
    if (t_ >= n / last * runs_) return; \
    int row = t_ / runs_, j0 = t_ % runs_ * RUN; \
    int len = min(RUN, last - j0), i0 = row * last + j0;

// Entry `d` of an int8.
inline int int8_entry(int d, int8 v) {
    int a[8];
    vstore8(v, 0, a);
    return a[d];
}

// Element offset of (row, j) in a view with `stride` over the collapsed `shape`.
inline int view_offset(int row, int j, int rank, int8 shape, int8 stride) {
    int sh[8], st[8];
    vstore8(shape, 0, sh);
    vstore8(stride, 0, st);
    int off = j * st[rank - 1];
    for (int d = rank - 2; d >= 0; --d) {
        off += (row % sh[d]) * st[d];
        row /= sh[d];
    }
    return off;
}

// One operand of binary/select along a run: its first element's offset and step, or a
// scalar when is_scalar != 0 (offset and step 0 on the fallback buffer, never read).
#define OPERAND_RUN(name, off, stride, is_scalar) \
    int name##_at = is_scalar ? 0 : off + view_offset(row, j0, rank, shape, stride); \
    int name##_step = is_scalar ? 0 : int8_entry(rank - 1, stride);
#define OPERAND_VALUE(name, p, scalar, is_scalar, k) (is_scalar ? scalar : LOAD(p, name##_at + (k) * name##_step))

// The dtype-independent kernels are in the float32 build only.
#if STORAGE == 0
// copy_<bytes>: a strided gather of elements of 1, 2, 4 or 8 bytes (bit for bit) into dst
// from element dst_off on.
#define DEFINE_COPY(bytes, type) \
__kernel void copy_##bytes(__global const type* src, int src_off, __global type* dst, int dst_off, int n, int rank, int8 shape, \
                           int8 stride) { \
    STRIDED_RUN(n, rank, shape) \
    int at = src_off + view_offset(row, j0, rank, shape, stride), step = int8_entry(rank - 1, stride); \
    for (int k = 0; k < len; ++k) dst[dst_off + i0 + k] = src[at + k * step]; \
} \
__kernel void fill_##bytes(__global type* dst, int n, type bits) { \
    int i = get_global_id(0); \
    if (i >= n) return; \
    dst[i] = bits; \
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
