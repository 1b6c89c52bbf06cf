// The lanes of gelu.c, included once per instruction set with NAME(), VF, VI and LANES
// defined (and, for the wide ones, a `#pragma clang attribute` giving every function here the
// target): the one algorithm of ember_gelu and ember_gelu_gradient at every vector width.
// It undefines those four parameters at its end, ready for the next width.

static inline __attribute__((always_inline)) VF NAME(splat)(float v) { return (VF){} + v; }
static inline __attribute__((always_inline)) VF NAME(select_lanes)(VI mask, VF a, VF b) { return (VF)(((VI)a & mask) | ((VI)b & ~mask)); }
static inline __attribute__((always_inline)) VF NAME(vmin)(VF a, VF b) { return NAME(select_lanes)(a < b, a, b); }
static inline __attribute__((always_inline)) VF NAME(vmax)(VF a, VF b) { return NAME(select_lanes)(a > b, a, b); }

// e^y for y in [-87, 88], 0 below (VectorMath.exp's fit; the callers need no infinity).
static inline __attribute__((always_inline)) VF NAME(vexp)(VF y) {
    VF c = NAME(vmin)(NAME(vmax)(y, NAME(splat)(-87.0f)), NAME(splat)(88.0f));
    VF t = c * 1.44269504f + 12582912.0f;
    VF n = t - 12582912.0f;
    VF r = (c - n * 0.693145751953125f) - n * 1.428606765330187e-6f;
    VF p = 1.0f + r * (1.0f + r * (0.49999991059303284f + r * (0.16666419804096222f + r * (0.04166822507977486f
           + r * (0.008374815806746483f + r * 0.001383683760650456f)))));
    VF scale = (VF)(((VI)t - 0x4B400000 + 127) << 23);
    return NAME(select_lanes)(y < -87.0f, NAME(splat)(0.0f), p * scale);
}

// erf (VectorMath.erf's two fits) of finite x.
static inline __attribute__((always_inline)) VF NAME(verf)(VF x) {
    VI sign = (VI)x & (int32_t)0x80000000;
    VF a = (VF)((VI)x & 0x7FFFFFFF);
    VF u = a * a;
    VF small = a * (1.1283791065216064f + u * (-0.3761262595653534f + u * (0.1128358542919159f + u * (-0.026853810995817184f
               + u * (0.00518832728266716f + u * (-0.0008010189631022513f + u * 7.853847637306899e-05f))))));
    VF b = NAME(vmin)(NAME(vmax)(a, NAME(splat)(1.0f)), NAME(splat)(4.0f));
    VF s = 1.0f / b;
    VF q = 0.00012107435031794012f + s * (0.5617680549621582f + s * (0.020535307005047798f + s * (-0.3758607506752014f
           + s * (0.23038871586322784f + s * (0.23834536969661713f + s * (-0.5369620323181152f + s * (0.43825000524520874f
           + s * (-0.17971687018871307f + s * 0.03071470931172371f))))))));
    VF big = NAME(select_lanes)(a < 4.0f, 1.0f - NAME(vexp)(-(b * b)) * q, NAME(splat)(1.0f));
    VF magnitude = NAME(select_lanes)(a < 1.0f, small, big);
    return (VF)((VI)magnitude | sign);
}

// NaN lanes of x give NaN (the polynomials would not).
static inline __attribute__((always_inline)) VF NAME(keep_nan)(VF value, VF x) { return NAME(select_lanes)(x != x, x, value); }

static void NAME(gelu)(const float *x, float *y, long n) {
    for (long i = 0; i < n; i += LANES) {
        long m = n - i < LANES ? n - i : LANES;
        VF v = NAME(splat)(0.0f);
        memcpy(&v, x + i, (size_t)m * 4);
        VF r = NAME(keep_nan)(0.5f * v * (1.0f + NAME(verf)(v * 0.70710678118654752f)), v);
        memcpy(y + i, &r, (size_t)m * 4);
    }
}

static void NAME(gelu_gradient)(const float *g, const float *x, float *y, long n) {
    for (long i = 0; i < n; i += LANES) {
        long m = n - i < LANES ? n - i : LANES;
        VF gv = NAME(splat)(0.0f), xv = NAME(splat)(0.0f);
        memcpy(&gv, g + i, (size_t)m * 4);
        memcpy(&xv, x + i, (size_t)m * 4);
        VF d = 0.5f * (1.0f + NAME(verf)(xv * 0.70710678118654752f)) + 0.3989422804014327f * xv * NAME(vexp)(-0.5f * xv * xv);
        VF r = NAME(keep_nan)(gv * d, xv);
        memcpy(y + i, &r, (size_t)m * 4);
    }
}

#undef NAME
#undef VF
#undef VI
#undef LANES
