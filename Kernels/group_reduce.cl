// The GPU row kernels' combine (prepended to attention.cl and loss.cl): the work-group's sum
// (or maximum) of v, which every work-item gets. LS is the work-group size.
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
