// Elementwise kernels: copies, casts, constants, unary / binary / select over broadcast
// strides. Op codes match UnaryOp.code and BinaryOp.rawValue in Backend.swift.
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

// The ops, as X(name, expression) lists: one kernel is generated per op and layout, so
// no kernel branches on an op code (branches keep PoCL from vectorising work-groups).
#define UNARY_OPS(X) \
    X(neg, -x) X(abs, fabs(x)) X(sign, x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x)) \
    X(exp, exp(x)) X(log, log(x)) X(sqrt, sqrt(x)) X(rsqrt, 1.0f / sqrt(x)) X(square, x * x) \
    X(reciprocal, 1.0f / x) X(sin, sin(x)) X(cos, cos(x)) X(tanh, tanh(x)) \
    X(sigmoid, 1.0f / (1.0f + exp(-x))) X(relu, x > 0.0f ? x : 0.0f) \
    X(gelu, 0.5f * x * (1.0f + erf(x * 0.70710678118654752f))) X(erf, erf(x)) \
    X(gelu_tanh, 0.5f * x * (1.0f + tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)))) \
    X(leaky_relu, x > 0.0f ? x : p0 * x) X(clamp, fmin(fmax(x, p0), p1)) X(pow_scalar, pow(x, p0))

#define BINARY_OPS(X) \
    X(add, a + b) X(sub, a - b) X(mul, a * b) X(div, a / b) X(pow, pow(a, b)) \
    X(maximum, (isnan(a) || isnan(b)) ? NAN : fmax(a, b)) X(minimum, (isnan(a) || isnan(b)) ? NAN : fmin(a, b)) \
    X(eq, a == b ? 1.0f : 0.0f) X(ne, a != b ? 1.0f : 0.0f) X(lt, a < b ? 1.0f : 0.0f) \
    X(le, a <= b ? 1.0f : 0.0f) X(gt, a > b ? 1.0f : 0.0f) X(ge, a >= b ? 1.0f : 0.0f)

// One operand of binary/select along a run: its first element's offset and step, or a
// scalar when is_scalar != 0 (offset and step 0 on the fallback buffer, never read).
#define OPERAND_RUN(name, off, stride, is_scalar) \
    int name##_at = is_scalar ? 0 : off + view_offset(row, j0, rank, shape, stride); \
    int name##_step = is_scalar ? 0 : int8_entry(rank - 1, stride);
#define OPERAND_VALUE(name, p, scalar, is_scalar, k) (is_scalar ? scalar : p[name##_at + (k) * name##_step])

// unary_<op>: dense source; unary_<op>_strided: any strided source.
#define DEFINE_UNARY(name, expression) \
__kernel void unary_##name(__global const float* src, int src_off, __global float* dst, int n, float p0, float p1) { \
    int i = get_global_id(0); \
    if (i >= n) return; \
    float x = src[src_off + i]; \
    dst[i] = expression; \
} \
__kernel void unary_##name##_strided(__global const float* src, int src_off, __global float* dst, int n, \
                                     int rank, int8 shape, int8 stride, float p0, float p1) { \
    STRIDED_RUN(n, rank, shape) \
    int at = src_off + view_offset(row, j0, rank, shape, stride), step = int8_entry(rank - 1, stride); \
    for (int k = 0; k < len; ++k) { \
        float x = src[at + k * step]; \
        dst[i0 + k] = expression; \
    } \
}
UNARY_OPS(DEFINE_UNARY)

// binary_<op>_tt: two dense tensors; _ts / _st: a dense tensor and a scalar;
// _strided: broadcast or strided operands (either may be a scalar).
#define DEFINE_BINARY(name, expression) \
__kernel void binary_##name##_tt(__global const float* x, int x_off, __global const float* y, int y_off, __global float* dst, int n) { \
    int i = get_global_id(0); \
    if (i >= n) return; \
    float a = x[x_off + i], b = y[y_off + i]; \
    dst[i] = expression; \
} \
__kernel void binary_##name##_ts(__global const float* x, int x_off, float b, __global float* dst, int n) { \
    int i = get_global_id(0); \
    if (i >= n) return; \
    float a = x[x_off + i]; \
    dst[i] = expression; \
} \
__kernel void binary_##name##_st(float a, __global const float* y, int y_off, __global float* dst, int n) { \
    int i = get_global_id(0); \
    if (i >= n) return; \
    float b = y[y_off + i]; \
    dst[i] = expression; \
} \
__kernel void binary_##name##_strided(__global const float* x, int x_off, int8 x_stride, float x_scalar, int x_is_scalar, \
                                      __global const float* y, int y_off, int8 y_stride, float y_scalar, int y_is_scalar, \
                                      __global float* dst, int n, int rank, int8 shape) { \
    STRIDED_RUN(n, rank, shape) \
    OPERAND_RUN(xa, x_off, x_stride, x_is_scalar) \
    OPERAND_RUN(ya, y_off, y_stride, y_is_scalar) \
    for (int k = 0; k < len; ++k) { \
        float a = OPERAND_VALUE(xa, x, x_scalar, x_is_scalar, k); \
        float b = OPERAND_VALUE(ya, y, y_scalar, y_is_scalar, k); \
        dst[i0 + k] = expression; \
    } \
}

__kernel void copy_strided(__global const uint* src, int src_off, __global uint* dst, int n,
                           int rank, int8 shape, int8 stride) {
    STRIDED_RUN(n, rank, shape)
    int at = src_off + view_offset(row, j0, rank, shape, stride), step = int8_entry(rank - 1, stride);
    for (int k = 0; k < len; ++k) dst[i0 + k] = src[at + k * step];
}

__kernel void cast_float_to_int(__global const float* src, int src_off, __global int* dst, int n,
                                int rank, int8 shape, int8 stride) {
    STRIDED_RUN(n, rank, shape)
    int at = src_off + view_offset(row, j0, rank, shape, stride), step = int8_entry(rank - 1, stride);
    for (int k = 0; k < len; ++k) dst[i0 + k] = convert_int_sat_rtz(src[at + k * step]);
}

__kernel void cast_int_to_float(__global const int* src, int src_off, __global float* dst, int n,
                                int rank, int8 shape, int8 stride) {
    STRIDED_RUN(n, rank, shape)
    int at = src_off + view_offset(row, j0, rank, shape, stride), step = int8_entry(rank - 1, stride);
    for (int k = 0; k < len; ++k) dst[i0 + k] = (float)src[at + k * step];
}

__kernel void fill_bits(__global uint* dst, int n, uint bits) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = bits;
}

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

BINARY_OPS(DEFINE_BINARY)

__kernel void select_where(__global const float* c, int c_off, int8 c_stride,
                           __global const float* a, int a_off, int8 a_stride, float a_scalar, int a_is_scalar,
                           __global const float* b, int b_off, int8 b_stride, float b_scalar, int b_is_scalar,
                           __global float* dst, int n, int rank, int8 shape) {
    STRIDED_RUN(n, rank, shape)
    int c_at = c_off + view_offset(row, j0, rank, shape, c_stride), c_step = int8_entry(rank - 1, c_stride);
    OPERAND_RUN(xa, a_off, a_stride, a_is_scalar)
    OPERAND_RUN(ya, b_off, b_stride, b_is_scalar)
    for (int k = 0; k < len; ++k) {
        dst[i0 + k] = c[c_at + k * c_step] != 0.0f ? OPERAND_VALUE(xa, a, a_scalar, a_is_scalar, k)
                                                   : OPERAND_VALUE(ya, b, b_scalar, b_is_scalar, k);
    }
}
