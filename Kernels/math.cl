// Float32 exp and erf without branches or library calls, the same polynomials as the CPU's
// VectorMath (Sources/Ember/Devices/VectorMath.swift; bounds checked by VectorMathTests),
// for float and float8 operands (one body, written with select, which takes both). PoCL's
// erf is a scalar library call (about 25 ns an element here), and these keep the two
// devices' GELUs alike. Prepended to the elementwise program and to every fused kernel,
// whose op expressions call them.

// ember_exp: e^y within 1.3 ulp for y in [-87, 88]; 0 below, +infinity above, NaN for NaN.
// Only where such limits do not matter (the exp op itself keeps the builtin, for subnormal
// results). Adding 1.5 * 2^23 rounds c * log2(e) to the integer n, held in t's low mantissa
// bits; e^c = 2^n * e^r with |r| <= ln(2)/2, ln 2 split in two for an exact n * ln 2.
// ember_erf: the Gauss error function within 2.3 ulp: x * P(x^2) for |x| < 1,
// 1 - e^(-x^2) * Q(1/|x|) up to 4, +-1 beyond, NaN for NaN.
#define EMBER_MATH(T, AS_T, AS_U) \
inline T __attribute__((overloadable)) ember_exp(T y) { \
    T c = fmin(fmax(y, -87.0f), 88.0f); \
    T t = c * 1.44269504f + 12582912.0f; \
    T n = t - 12582912.0f; \
    T r = (c - n * 0.693145751953125f) - n * 1.428606765330187e-6f; \
    T p = 1.0f + r * (1.0f + r * (0.49999991059303284f + r * (0.16666419804096222f \
          + r * (0.04166822507977486f + r * (0.008374815806746483f + r * 0.001383683760650456f))))); \
    T scale = AS_T((AS_U(t) - 0x4B400000u + 127u) << 23); \
    T value = select(select(p * scale, (T)0.0f, y < -87.0f), (T)INFINITY, y > 88.0f); \
    return select(value, y, isnan(y)); \
} \
inline T __attribute__((overloadable)) ember_erf(T x) { \
    T a = fabs(x); \
    T u = a * a; \
    T small = a * (1.1283791065216064f + u * (-0.3761262595653534f + u * (0.1128358542919159f \
              + u * (-0.026853810995817184f + u * (0.00518832728266716f + u * (-0.0008010189631022513f \
              + u * 7.853847637306899e-5f)))))); \
    T b = fmin(fmax(a, 1.0f), 4.0f); \
    T s = 1.0f / b; \
    T q = 0.00012107435031794012f + s * (0.5617680549621582f + s * (0.020535307005047798f \
          + s * (-0.3758607506752014f + s * (0.23038871586322784f + s * (0.23834536969661713f \
          + s * (-0.5369620323181152f + s * (0.43825000524520874f + s * (-0.17971687018871307f \
          + s * 0.03071470931172371f)))))))); \
    T big = 1.0f - ember_exp(-(b * b)) * q; \
    T magnitude = select(select((T)1.0f, big, a < 4.0f), small, a < 1.0f); \
    T signed_value = AS_T(AS_U(magnitude) | (AS_U(x) & 0x80000000u)); \
    return select(signed_value, x, isnan(x)); \
}

EMBER_MATH(float, as_float, as_uint)
EMBER_MATH(float8, as_float8, as_uint8)

// Python's (and PyTorch's) remainder, with the divisor's sign, and floor division of floats,
// as torch.remainder and torch.floor_divide compute them.
inline float ember_remainder(float a, float b) {
    float m = fmod(a, b);
    return (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) ? m + b : m;
}
inline float ember_floor_divide(float a, float b) {
    if (b == 0.0f) return a / b;
    float m = fmod(a, b);
    float d = (a - m) / b;
    if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) d -= 1.0f;
    if (d == 0.0f) return copysign(0.0f, a / b);
    float f = floor(d);
    return d - f > 0.5f ? f + 1.0f : f;
}
