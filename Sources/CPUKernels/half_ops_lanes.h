// The loops of half_ops.c, included once per instruction set with NAME(), VF, VI, LANES and
// LOAD_F16, STORE_F16, LOAD_BF16, STORE_BF16 defined (a `VF` of LANES floats from and to LANES
// stored elements; and, for the wide ones, a `#pragma clang attribute` giving every function
// here the target): each op's float32 math is written once below, on GNU vectors, and every
// loop reads LANES elements, computes and writes them before it reads the next. A tail goes
// through a zero-padded local vector. It undefines those parameters at its end, ready for the
// next width.

// Every lane v (adding v to a zero vector would turn -0 into +0).
static inline __attribute__((always_inline)) VF NAME(splat)(float v) {
    VF out;
    for (int k = 0; k < LANES; k++) out[k] = v;
    return out;
}

static inline __attribute__((always_inline)) VF NAME(select_lanes)(VI mask, VF a, VF b) {
    return (VF)(((VI)a & mask) | ((VI)b & ~mask));
}

// The ops, as the Swift function objects of ElementwiseOps.swift compute them (same bits):
// maximum and minimum give the default NaN when either side is NaN, else Swift.max(a, b)
// (b >= a ? b : a) and Swift.min(a, b) (b < a ? b : a), so signed zeros come out as Swift's.
static inline __attribute__((always_inline)) VF NAME(add)(VF a, VF b) { return a + b; }
static inline __attribute__((always_inline)) VF NAME(sub)(VF a, VF b) { return a - b; }
static inline __attribute__((always_inline)) VF NAME(mul)(VF a, VF b) { return a * b; }
static inline __attribute__((always_inline)) VF NAME(div)(VF a, VF b) { return a / b; }
static inline __attribute__((always_inline)) VF NAME(maximum)(VF a, VF b) {
    return NAME(select_lanes)((a != a) | (b != b), NAME(splat)(__builtin_nanf("")), NAME(select_lanes)(b >= a, b, a));
}
static inline __attribute__((always_inline)) VF NAME(minimum)(VF a, VF b) {
    return NAME(select_lanes)((a != a) | (b != b), NAME(splat)(__builtin_nanf("")), NAME(select_lanes)(b < a, b, a));
}
static inline __attribute__((always_inline)) VF NAME(relu_gradient)(VF a, VF b) { return NAME(select_lanes)(b > 0.0f, a, (VF){}); }
static inline __attribute__((always_inline)) VF NAME(neg)(VF x) { return -x; }
static inline __attribute__((always_inline)) VF NAME(abs)(VF x) { return (VF)((VI)x & 0x7FFFFFFF); }
static inline __attribute__((always_inline)) VF NAME(relu)(VF x) { return NAME(select_lanes)(x > 0.0f, x, (VF){}); }
static inline __attribute__((always_inline)) VF NAME(square)(VF x) { return x * x; }

// y = op(a, b) over n elements of one format; a NULL operand is its scalar, splatted.
#define HALF_BINARY_LOOP(op, format, LOAD, STORE)                                                                    \
    static void NAME(op##_##format)(const uint16_t *a, float sa, const uint16_t *b, float sb, uint16_t *y, long n) { \
        long i = 0;                                                                                                  \
        VF va = NAME(splat)(sa), vb = NAME(splat)(sb);                                                               \
        if (a && b) {                                                                                                \
            for (; i + LANES <= n; i += LANES) STORE(NAME(op)(LOAD(a + i), LOAD(b + i)), y + i);                     \
        } else if (a) {                                                                                              \
            for (; i + LANES <= n; i += LANES) STORE(NAME(op)(LOAD(a + i), vb), y + i);                              \
        } else {                                                                                                     \
            for (; i + LANES <= n; i += LANES) STORE(NAME(op)(va, LOAD(b + i)), y + i);                              \
        }                                                                                                            \
        if (i == n) return;                                                                                          \
        uint16_t ta[LANES] = {0}, tb[LANES] = {0}, ty[LANES];                                                        \
        if (a) { memcpy(ta, a + i, (size_t)(n - i) * 2); va = LOAD(ta); }                                            \
        if (b) { memcpy(tb, b + i, (size_t)(n - i) * 2); vb = LOAD(tb); }                                            \
        STORE(NAME(op)(va, vb), ty);                                                                                 \
        memcpy(y + i, ty, (size_t)(n - i) * 2);                                                                      \
    }

// y = op(x) over n elements of one format.
#define HALF_UNARY_LOOP(op, format, LOAD, STORE)                                \
    static void NAME(op##_##format)(const uint16_t *x, uint16_t *y, long n) {   \
        long i = 0;                                                             \
        for (; i + LANES <= n; i += LANES) STORE(NAME(op)(LOAD(x + i)), y + i); \
        if (i == n) return;                                                     \
        uint16_t tx[LANES] = {0}, ty[LANES];                                    \
        memcpy(tx, x + i, (size_t)(n - i) * 2);                                 \
        STORE(NAME(op)(LOAD(tx)), ty);                                          \
        memcpy(y + i, ty, (size_t)(n - i) * 2);                                 \
    }

// The sum of n elements of one format in float32, over four vectors of partial sums.
#define HALF_SUM_LOOP(format, LOAD)                              \
    static float NAME(sum_##format)(const uint16_t *x, long n) { \
        VF s0 = {}, s1 = {}, s2 = {}, s3 = {};                   \
        long i = 0;                                              \
        for (; i + 4 * LANES <= n; i += 4 * LANES) {             \
            s0 += LOAD(x + i);                                   \
            s1 += LOAD(x + i + LANES);                           \
            s2 += LOAD(x + i + 2 * LANES);                       \
            s3 += LOAD(x + i + 3 * LANES);                       \
        }                                                        \
        for (; i + LANES <= n; i += LANES) s0 += LOAD(x + i);    \
        if (i < n) {                                             \
            uint16_t tx[LANES] = {0};                            \
            memcpy(tx, x + i, (size_t)(n - i) * 2);              \
            s1 += LOAD(tx);                                      \
        }                                                        \
        VF s = (s0 + s1) + (s2 + s3);                            \
        float total = 0;                                         \
        for (int k = 0; k < LANES; k++) total += s[k];           \
        return total;                                            \
    }

#define HALF_FORMATS(format, LOAD, STORE)                \
    HALF_BINARY_LOOP(add, format, LOAD, STORE)           \
    HALF_BINARY_LOOP(sub, format, LOAD, STORE)           \
    HALF_BINARY_LOOP(mul, format, LOAD, STORE)           \
    HALF_BINARY_LOOP(div, format, LOAD, STORE)           \
    HALF_BINARY_LOOP(maximum, format, LOAD, STORE)       \
    HALF_BINARY_LOOP(minimum, format, LOAD, STORE)       \
    HALF_BINARY_LOOP(relu_gradient, format, LOAD, STORE) \
    HALF_UNARY_LOOP(neg, format, LOAD, STORE)            \
    HALF_UNARY_LOOP(abs, format, LOAD, STORE)            \
    HALF_UNARY_LOOP(relu, format, LOAD, STORE)           \
    HALF_UNARY_LOOP(square, format, LOAD, STORE)         \
    HALF_SUM_LOOP(format, LOAD)

HALF_FORMATS(f16, LOAD_F16, STORE_F16)
HALF_FORMATS(bf16, LOAD_BF16, STORE_BF16)

// The op tables the entry points index by `ember_half_binary_op` / `ember_half_unary_op`.
typedef void (*NAME(binary_fn))(const uint16_t *, float, const uint16_t *, float, uint16_t *, long);
typedef void (*NAME(unary_fn))(const uint16_t *, uint16_t *, long);
static const NAME(binary_fn) NAME(binary_table)[2][EMBER_HALF_BINARY_OP_COUNT] = {
    {NAME(add_f16), NAME(sub_f16), NAME(mul_f16), NAME(div_f16), NAME(maximum_f16), NAME(minimum_f16), NAME(relu_gradient_f16)},
    {NAME(add_bf16), NAME(sub_bf16), NAME(mul_bf16), NAME(div_bf16), NAME(maximum_bf16), NAME(minimum_bf16), NAME(relu_gradient_bf16)},
};
static const NAME(unary_fn) NAME(unary_table)[2][EMBER_HALF_UNARY_OP_COUNT] = {
    {NAME(neg_f16), NAME(abs_f16), NAME(relu_f16), NAME(square_f16)},
    {NAME(neg_bf16), NAME(abs_bf16), NAME(relu_bf16), NAME(square_bf16)},
};

#undef HALF_BINARY_LOOP
#undef HALF_UNARY_LOOP
#undef HALF_SUM_LOOP
#undef HALF_FORMATS
#undef NAME
#undef VF
#undef VI
#undef LANES
#undef LOAD_F16
#undef STORE_F16
#undef LOAD_BF16
#undef STORE_BF16
