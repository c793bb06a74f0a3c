"""The integer numeric contract: every format, width, rounding and saturation, defined once.

docs/numerics.md explains each item (section numbers §N below); model/integer.py composes these
primitives into the transformer, and hw/ cites the same constants and functions as its golden
reference. Everything here is integer arithmetic on NumPy int64 (or Python ints); floats appear
only in :func:`scale_from_float`, which prepares constants offline.

Rounding words used throughout:
* ``rshift_round(x, n)`` = floor((x + 2^(n-1)) / 2^n): round half up (toward +inf), arithmetic shift.
* "truncate magnitude" = sign(x) * (|x| >> n): round toward zero, keeps ``|x_n| <= max_n``.
"""

import math

import numpy as np

# §1 activations and weights
ACT_BITS = 8
ACT_MAX = (1 << (ACT_BITS - 1)) - 1   # quantized activations are in [-127, 127]; -128 never occurs
WEIGHT_CODE_BITS = 2          # stored code = w + 1 (0: -1, 1: 0, 2: +1; 3 is invalid), as HF packs

# §2 the absmax quantizer
NORM_BITS = 18                # normalized operands are signed 18-bit: |x| < 2^17 (MULT18X18)
NORM_MAX_BITLEN = NORM_BITS - 1
RECIP_SHIFT = 33              # R = ceil(2^33 / m_n) with m_n in [2^16, 2^17): R in (2^16, 2^17]

# §3 scales: value = mant * 2^exp, mant in [2^15, 2^16) or 0
SCALE_BITS = 16
SCALE_EXP_BITS = 12            # a scale's signed exponent in hardware (registers, KV cache, tables)
SCALE_ALIGN_BITS = 24         # guard bits when two scales are added

# §4 residual stream and other fixed-point vectors
RES_BITS = 32
RES_FRAC = 16                 # residual stream: int32 Q15.16, saturating
GAIN_BITS = 16                # RMSNorm gains: int16 with a per-vector exponent

# §5 RoPE
ROPE_FRAC = 14                # cos/sin tables: int16 Q1.14
ROPE_BITS = 16

# §6 attention and softmax (base 2)
SCORE_FRAC = 8                # attention logits in log2 units, Q.8
EXP_FRAC = 15                 # 2^-d in Q0.15 (2^15 = 1.0)
EXP_TABLE_BITS = 8            # table over the fractional part of d: 256 entries

# §7 SiLU
SILU_FRAC = 10                # SiLU input/output Q.10
SIGMOID_STEP_BITS = 6         # table step 1/64
SIGMOID_RANGE = 16            # table covers [-16, 16)
SIGMOID_FRAC = 16             # table entries Q0.16

# §8 sampling
XORSHIFT_BITS = 32


def acc_bits(k: int, act_bits: int = ACT_BITS) -> int:
    """Signed accumulator width for K products of a ternary and an ``act_bits``-bit value (§1).

    The extreme sum is K * 2^(act_bits-1) (all -1 weights times -128), which needs
    bitlen(K * 128) magnitude bits plus a sign: ceil(log2(K*128)) + 1 falls one short when K is a
    power of two.
    """
    if k < 1:
        raise ValueError(f"reduction length K must be >= 1, not {k}")
    return (k << (act_bits - 1)).bit_length() + 1


def bitlen(x) -> np.ndarray:
    """Bit length of |x| (0 for 0), elementwise; exact for |x| < 2^53."""
    a = np.abs(np.asarray(x, dtype=np.int64))
    if a.size and a.max() >= 2 ** 53:
        raise OverflowError("bitlen: operand exceeds 53 bits")
    return np.frexp(a.astype(np.float64))[1].astype(np.int64)


def rshift_round(x, n):
    """floor((x + 2^(n-1)) / 2^n) for n >= 1; x << -n for n <= 0 (exact)."""
    x, n = np.asarray(x, dtype=np.int64), np.asarray(n, dtype=np.int64)
    right = np.clip(n, 1, 62)
    rounded = (x + (np.int64(1) << (right - 1))) >> right
    return np.where(n > 0, rounded, x << np.clip(-n, 0, 62))


def truncate_magnitude(x, n):
    """sign(x) * (|x| >> n) for n >= 0; x << -n for n < 0."""
    x, n = np.asarray(x, dtype=np.int64), np.asarray(n, dtype=np.int64)
    shifted = np.sign(x) * (np.abs(x) >> np.clip(n, 0, 62))
    return np.where(n >= 0, shifted, x << np.clip(-n, 0, 62))


def saturate(x, bits: int) -> np.ndarray:
    """Clamp to the signed ``bits``-bit range."""
    lim = 1 << (bits - 1)
    return np.clip(np.asarray(x, dtype=np.int64), -lim, lim - 1)


def normalize(x) -> tuple[int, np.ndarray]:
    """§2 step 1: shift e >= 0 so that max|x >> e| < 2^17 (truncate magnitude); returns (e, x_n)."""
    x = np.asarray(x, dtype=np.int64)
    e = max(0, int(bitlen(np.abs(x).max(initial=0))) - NORM_MAX_BITLEN)
    return e, truncate_magnitude(x, e)


# -- §2 absmax quantizer ------------------------------------------------------------------------

def codes_reciprocal(mn: int) -> int:
    """R = ceil(2^33 / m_n), the codes' reciprocal of a peak normalized to [2^16, 2^17) (§2)."""
    return -(-(1 << RECIP_SHIFT) // mn)


def absmax_quantize(u) -> tuple[np.ndarray, int]:
    """Per-token int8 codes q_i ≈ round(127 u_i / max|u|) and m = max|u| (§2).

    m = 0 gives all zeros. Otherwise u and m are brought to 17 bits (m_n in [2^16, 2^17), shift e
    left or right, truncating magnitudes), R = ceil(2^33 / m_n), and
    q_i = sign(u_i) * ((|u_n,i| * R * 127 + 2^32) >> 33), which never exceeds 127. R rounds up,
    so exact ties round away from zero and values less than 2^-9 below a half may too.
    """
    u = np.asarray(u, dtype=np.int64)
    m = int(np.abs(u).max(initial=0))
    if m == 0:
        return np.zeros(u.shape, dtype=np.int64), 0
    e = int(bitlen(m)) - NORM_MAX_BITLEN
    un = truncate_magnitude(u, e)
    mn = int(truncate_magnitude(m, e))
    recip = codes_reciprocal(mn)
    q = np.sign(un) * ((np.abs(un) * recip * ACT_MAX + (1 << (RECIP_SHIFT - 1))) >> RECIP_SHIFT)
    return q, m


# -- §3 scales ----------------------------------------------------------------------------------

def scale_from_int(n, exp) -> tuple[np.ndarray, np.ndarray]:
    """The scale n * 2^exp (n >= 0) rounded to a 16-bit mantissa, half up; 0 stays (0, 0)."""
    n, exp = np.asarray(n, dtype=np.int64), np.asarray(exp, dtype=np.int64)
    if (n < 0).any():
        raise ValueError("scale_from_int: n must be >= 0")
    shift = bitlen(n) - SCALE_BITS
    mant = rshift_round(n, shift)
    carry = mant >> SCALE_BITS          # rounding up to 2^16 renormalizes
    mant, shift = mant >> carry, shift + carry
    zero = n == 0
    return np.where(zero, 0, mant), np.where(zero, 0, exp + shift)


def scale_from_float(value: float) -> tuple[int, int]:
    """Offline constant preparation: a positive float as (mant, exp), mantissa rounded half up."""
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"a scale must be finite and >= 0, not {value}")
    if value == 0:
        return 0, 0
    frac, exp = math.frexp(value)          # value = frac * 2^exp, frac in [0.5, 1)
    mant = math.floor(frac * (1 << SCALE_BITS) + 0.5)
    if mant == 1 << SCALE_BITS:
        mant, exp = mant >> 1, exp + 1
    return mant, exp - SCALE_BITS


def scale_to_float(s) -> np.ndarray:
    """For reports and float outputs only, never inside the datapath."""
    return np.asarray(s[0], dtype=np.float64) * np.exp2(np.asarray(s[1], dtype=np.float64))


def scale_mul(a, b):
    """a * b: the 32-bit mantissa product renormalized (half up)."""
    return scale_from_int(np.asarray(a[0], np.int64) * np.asarray(b[0], np.int64),
                          np.asarray(a[1], np.int64) + np.asarray(b[1], np.int64))


def scale_recip(a):
    """1 / a: floor(2^31 / mant) renormalized; 1/0 is an error."""
    mant = np.asarray(a[0], dtype=np.int64)
    if (mant == 0).any():
        raise ZeroDivisionError("scale_recip of a zero scale")
    shift = 2 * SCALE_BITS - 1
    return scale_from_int((np.int64(1) << shift) // mant, -shift - np.asarray(a[1], np.int64))


def isqrt(n) -> np.ndarray:
    """floor(sqrt(n)) elementwise for 0 <= n < 2^52 (float estimate, then exact correction)."""
    n = np.asarray(n, dtype=np.int64)
    r = np.floor(np.sqrt(n.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > n, r - 1, r)
    return np.where((r + 1) * (r + 1) <= n, r + 1, r)


def scale_rsqrt(a):
    """1 / sqrt(a): exponent made even, isqrt(mant * 2^30) (a 23-bit root), then a reciprocal."""
    mant, exp = np.asarray(a[0], dtype=np.int64), np.asarray(a[1], dtype=np.int64)
    odd = exp & 1
    root = isqrt((mant << odd) << 30)
    return scale_recip(scale_from_int(root, (exp - odd - 30) // 2))


def scale_add(a, b):
    """a + b: both mantissas aligned to the larger exponent with 24 guard bits (floor), summed."""
    ma, ea = np.asarray(a[0], np.int64), np.asarray(a[1], np.int64)
    mb, eb = np.asarray(b[0], np.int64), np.asarray(b[1], np.int64)
    ea = np.where(ma == 0, eb, ea)
    eb = np.where(mb == 0, ea, eb)
    top = np.maximum(ea, eb)
    total = ((ma << SCALE_ALIGN_BITS) >> np.clip(top - ea, 0, 62)) + \
            ((mb << SCALE_ALIGN_BITS) >> np.clip(top - eb, 0, 62))
    return scale_from_int(total, top - SCALE_ALIGN_BITS)


def apply_scale(x, s, frac: int) -> np.ndarray:
    """round_half_up(x * s * 2^frac): an integer vector times a scale into a Q.frac format."""
    x = np.asarray(x, dtype=np.int64)
    mant, exp = np.asarray(s[0], np.int64), np.asarray(s[1], np.int64)
    product = x * mant
    if product.size and np.abs(product).max() >= 2 ** 61:
        raise OverflowError("apply_scale: product exceeds 61 bits")
    return rshift_round(product, -(exp + frac))


INV_ACT_MAX = scale_from_float(1 / ACT_MAX)
RES_UNIT = scale_from_float(2.0 ** -RES_FRAC)      # the real value of one residual LSB


# -- §5 RoPE ------------------------------------------------------------------------------------

def rope_int_tables(head_dim: int, theta: float, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [positions, head_dim/2] in Q1.14, prepared offline from theta (float64)."""
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.arange(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    one = 1 << ROPE_FRAC
    return (np.floor(np.cos(angles) * one + 0.5).astype(np.int64),
            np.floor(np.sin(angles) * one + 0.5).astype(np.int64))


def rope_rotate(x, cos, sin) -> np.ndarray:
    """Rotate pairs (i, i + d/2) of x [..., d] by one position's cos/sin [d/2] (rotate_half layout)."""
    x = np.asarray(x, dtype=np.int64)
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([rshift_round(a * cos - b * sin, ROPE_FRAC),
                           rshift_round(b * cos + a * sin, ROPE_FRAC)], axis=-1)


# -- §6 softmax in base 2 -----------------------------------------------------------------------

EXP2_TABLE = np.floor(
    (1 << EXP_FRAC) * np.exp2(-np.arange(1 << EXP_TABLE_BITS) / (1 << EXP_TABLE_BITS)) + 0.5
).astype(np.int64)


def exp2_neg(delta) -> np.ndarray:
    """2^(-delta / 2^8) in Q0.15 for delta >= 0 (Q.8): table[frac] >> int part; 0 from 2^-16 on."""
    delta = np.asarray(delta, dtype=np.int64)
    if (delta < 0).any():
        raise ValueError("exp2_neg: delta must be >= 0")
    whole = delta >> SCORE_FRAC
    value = EXP2_TABLE[delta & ((1 << EXP_TABLE_BITS) - 1)] >> np.minimum(whole, 62)
    return np.where(whole > EXP_FRAC, 0, value)


# -- §7 SiLU ------------------------------------------------------------------------------------

SIGMOID_TABLE = np.floor(
    (1 << SIGMOID_FRAC) / (1 + np.exp(-(np.arange(2 * SIGMOID_RANGE << SIGMOID_STEP_BITS)
                                       / (1 << SIGMOID_STEP_BITS) - SIGMOID_RANGE))) + 0.5
).astype(np.int64).clip(0, (1 << SIGMOID_FRAC) - 1)


def sigmoid_q16(x) -> np.ndarray:
    """The sigmoid table's entry for a Q.10 input: sigmoid_table[clamp(x >> 4 + 1024)] (§7)."""
    x = np.asarray(x, dtype=np.int64)
    index = (x >> (SILU_FRAC - SIGMOID_STEP_BITS)) + (SIGMOID_RANGE << SIGMOID_STEP_BITS)
    return SIGMOID_TABLE[np.clip(index, 0, SIGMOID_TABLE.size - 1)]


def silu_q10(x) -> np.ndarray:
    """SiLU of a Q.10 input: x * sigmoid_q16(x) >> 16, half up (§7)."""
    x = np.asarray(x, dtype=np.int64)
    return rshift_round(x * sigmoid_q16(x), SIGMOID_FRAC)


# -- §8 sampling --------------------------------------------------------------------------------

def xorshift32(state: int) -> int:
    """Marsaglia's xorshift32 (13, 17, 5): a linear feedback generator, period 2^32 - 1."""
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state


def xorshift_seed(seed: int) -> int:
    """The generator state for a user seed: its low 32 bits, or 1 where they are 0."""
    return (seed & 0xFFFFFFFF) or 1


def sampling_coefficient(temperature: float) -> tuple[int, int] | None:
    """The sampler's scale ``log2(e)/T`` for a temperature, or None at temperature 0 (greedy)."""
    return None if temperature <= 0 else scale_from_float(math.log2(math.e) / temperature)
