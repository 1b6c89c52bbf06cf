// Combines of partial results (prepended to the programs of OpenCLBackend.combiningPrograms).

// The sum and the maximum (fmax: NaN lanes are passed over, as fmax does) of a float16's
// lanes: CPU devices' vector loops end with these.
inline float sum16(float16 v) {
    float8 h8 = v.lo + v.hi;
    float4 h4 = h8.lo + h8.hi;
    return (h4.x + h4.y) + (h4.z + h4.w);
}
inline float max16(float16 v) {
    float8 h8 = fmax(v.lo, v.hi);
    float4 h4 = fmax(h8.lo, h8.hi);
    return fmax(fmax(h4.x, h4.y), fmax(h4.z, h4.w));
}

// The GPU row kernels' combine: the work-group's sum (or maximum) of v, which every
// work-item gets. LS is the work-group size.
#if !CPU_DEVICE
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
#endif
