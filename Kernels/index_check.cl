// Reading and checking class or gather indices, prepended to index.cl and loss.cl. An index
// outside 0..<size is reported in `errors`, the queue's record [reported, site, index's low 32
// bits, size, index's high 32 bits]: the first work-item to claim it writes the op's site code,
// the index and the bound, which the host reads at its next synchronisation.

inline void report_index(volatile __global int* errors, int site, long k, int size) {
    if (atomic_cmpxchg(errors, 0, 1) == 0) {
        errors[1] = site;
        errors[2] = (int)k;
        errors[3] = size;
        errors[4] = (int)(k >> 32);
    }
}

// Entry `at` of an Int32 index view, or of an Int64 one when `wide`.
inline long index_at(__global const int* index, int wide, int at) {
    return wide ? ((__global const long*)index)[at] : (long)index[at];
}
