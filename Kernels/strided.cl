// Layout helpers of the elementwise kernels (prepended to elementwise.cl and to every fused
// kernel's program). Strided operands pass their collapsed shape and strides as int8 (at most
// 8 dims). Every elementwise kernel gives each work-item a run of RUN consecutive elements (of
// the dense range, or of one row of a strided view: a row is the last collapsed dim, the
// others number the rows), which it loops over: the divisions that locate a row are done once
// per run. RUN is 1 on GPUs (adjacent work-items touch adjacent elements) and 64 on CPU
// devices, where the loop is what the compiler vectorises (about 1.5x one element per
// work-item in float32, 5x in float16, whose conversions only vectorise in a loop).

// For work-item t of a dense kernel: its run of RUN consecutive elements, i0 up to end.
#define DENSE_RUN(n) \
    int i0 = get_global_id(0) * RUN; \
    if (i0 >= n) return; \
    int end = min(i0 + RUN, n);

// For work-item t of a strided kernel: the run's row, its first column j0, its output index i0 and length len.
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
