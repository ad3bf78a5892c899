"""Special functions (Lgamma, Digamma, Erfinv, Ndtri, Bessel I/K, Zeta, Polygamma) from elementwise/unary/select
layers.

TensorRT has no gamma-family or inverse-normal layers.  Each function here is a fixed formula evaluated in
float32 whose error was measured against TensorFlow's CPU kernels over wide ranges (see the table tests):

* ``Lgamma``/``Digamma``: for x ≥ 8 the Stirling / asymptotic series (truncation error < 1e-11); below 8 the
  recurrence shifts the argument by 8 (lgamma(x) = lgamma(x + 8) - log(x·(x+1)·…·(x+7)), digamma likewise with
  a sum of reciprocals); negative x by the reflection formula with sin(π·r)/tan(π·r) of r = x - round(x), which
  is exact in fp32, so poles and near-pole values keep their accuracy.
* ``Ndtri``/``Erfinv``: TensorFlow's own formula — Cephes' ndtri rational approximations (as in Eigen), and
  erfinv(x) = ndtri(x/2 + 1/2)/√2.  The rounding of x/2 + 1/2 is part of TensorFlow's result (erfinv(1 - 2^-24)
  is inf there; near ±1 it is up to 1e-3 off the true value), so a more accurate formula would not match it.

float16 inputs are computed in float32 and cast back.
"""

from __future__ import annotations

import math

import numpy as np

from ..context import Value
from .helpers import cast, elementwise, float_only, register, scalar_like, select, unary

_SHIFT = 8  # recurrence steps below the asymptotic range


class _F:
    """Tiny expression helpers over float32 Values, each layer named ``<node>/<prefix>_<n>``."""

    def __init__(self, ctx, prefix: str):
        self.ctx, self.prefix, self.n = ctx, prefix, 0

    def _name(self, what: str) -> str:
        self.n += 1
        return f"{self.prefix}_{what}_{self.n}"

    def c(self, like: Value, number) -> Value:
        return scalar_like(like, number)

    def ew(self, a, b, op):
        return elementwise(self.ctx, a, b, op, self._name(op.lower()))

    def add(self, a, b):
        return self.ew(a, b, "SUM")

    def sub(self, a, b):
        return self.ew(a, b, "SUB")

    def mul(self, a, b):
        return self.ew(a, b, "PROD")

    def div(self, a, b):
        return self.ew(a, b, "DIV")

    def un(self, a, op):
        return unary(self.ctx, a, op, self._name(op.lower()))

    def where(self, cond, a, b, suffix=None):
        return select(self.ctx, cond, a, b, suffix if suffix is not None else self._name("select"))

    def poly(self, x: Value, coeffs) -> Value:
        """Horner's Σ coeffs[k]·x^(n-k) (highest power first, as Cephes' polevl)."""
        acc = self.c(x, coeffs[0])
        for coef in coeffs[1:]:
            acc = self.add(self.mul(acc, x), self.c(x, coef))
        return acc


def _float32_in(ctx, x: Value):
    if x.dtype == np.float16:
        return cast(ctx, x, np.float32, "to_float"), True
    return x, False


def _float_out(ctx, f: _F, out: Value, half: bool, finish):
    """``finish(out, suffix)`` names the node's final layer; float16 results get a final cast instead."""
    if half:
        return cast(ctx, finish(out, f._name("final")), np.float16, None)
    return finish(out, None)


def _reduced(f: _F, x: Value) -> Value:
    """r = x - round(x) ∈ [-1/2, 1/2], exact in fp32: sin(π·x) = ±sin(π·r) without π·x's rounding."""
    return f.sub(x, f.un(x, "ROUND"))


# ------------------------------------------------------------------ lgamma
def _lgamma_positive(f: _F, y: Value) -> Value:
    """lgamma(y) for y > 0 (any y: the unused branches are discarded by the caller)."""
    small = f.ew(y, f.c(y, _SHIFT), "LESS")
    z = f.where(small, f.add(y, f.c(y, _SHIFT)), y)
    # Stirling: (z - 1/2)·(log z - 1) - 1/2 + log√(2π) + 1/(12z) - 1/(360z³) + 1/(1260z⁵) - 1/(1680z⁷)
    # ((z - 1/2)·log z - z rewritten so that it overflows only where lgamma does)
    inv = f.un(z, "RECIP")
    inv2 = f.mul(inv, inv)
    series = f.mul(inv, f.poly(inv2, [-1 / 1680, 1 / 1260, -1 / 360, 1 / 12]))
    main = f.sub(f.mul(f.sub(z, f.c(z, 0.5)), f.sub(f.un(z, "LOG"), f.c(z, 1))), f.c(z, 0.5))
    stirling = f.add(f.add(main, f.c(z, 0.5 * math.log(2 * math.pi))), series)
    # the product y·(y+1)·…·(y+7), from y clipped below 8 so that the unused branch stays finite
    yc = f.ew(y, f.c(y, _SHIFT), "MIN")
    prod = yc
    for k in range(1, _SHIFT):
        prod = f.mul(prod, f.add(yc, f.c(y, k)))
    return f.where(small, f.sub(stirling, f.un(prod, "LOG")), stirling)


@register("Lgamma", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="Stirling's series for x ≥ 8, the recurrence shifted by 8 below, reflection (with an exact "
                       "sin(π·(x - round(x)))) for x < 0; measured against TensorFlow within rtol 1e-4 / atol 1e-5 "
                       "on [-1e6, 1e30] incl. poles (inf) and the zeros at 1, 2 and near -2.457; float16 is "
                       "computed in float32; TensorFlow's CPU kernel flushes subnormal inputs, this does not")
def convert_lgamma(ctx, node, inputs):
    x, half = _float32_in(ctx, inputs[0])
    f = _F(ctx, "lgamma")
    negative = f.ew(x, f.c(x, 0), "LESS")
    y = f.where(negative, f.sub(f.c(x, 1), x), x)
    positive = _lgamma_positive(f, y)
    # lgamma(x) = log(π / |sin(πx)|) - lgamma(1 - x); at the poles sin is 0 and the log is +inf
    sin_pi = f.un(f.un(f.mul(_reduced(f, x), f.c(x, math.pi)), "SIN"), "ABS")
    reflected = f.sub(f.sub(f.c(x, math.log(math.pi)), f.un(sin_pi, "LOG")), positive)
    out = f.where(negative, reflected, positive)
    # |x| < 1e-20: lgamma(x) = -log|x| - γ·x + O(x²) is -log|x| in fp32; the formulas above lose a subnormal x's
    # bits in π·x and the product of the shift (lgamma(-1.4e-45) came out 103.325 for 103.279)
    out = f.where(f.ew(f.un(x, "ABS"), f.c(x, 1e-20), "LESS"), f.un(f.un(f.un(x, "ABS"), "LOG"), "NEG"), out)
    # ±inf and the poles (0 and the negative integers, every x ≤ -2^23 among them) give +inf: the formulas give
    # NaN from inf - inf where lgamma(1 - x) overflows; NaN stays NaN through every branch
    inf = f.c(x, np.inf)
    pole = f.ew(f.un(x, "ISINF"), f.ew(negative, f.ew(_reduced(f, x), f.c(x, 0), "EQUAL"), "AND"), "OR")
    return _float_out(ctx, f, out, half, lambda v, s: select(ctx, pole, inf, v, s))


# ------------------------------------------------------------------ digamma
def _digamma_positive(f: _F, y: Value) -> Value:
    small = f.ew(y, f.c(y, _SHIFT), "LESS")
    z = f.where(small, f.add(y, f.c(y, _SHIFT)), y)
    # ψ(z) = log z - 1/(2z) - 1/(12z²) + 1/(120z⁴) - 1/(252z⁶) + 1/(240z⁸) - 1/(132z¹⁰)
    inv = f.un(z, "RECIP")
    inv2 = f.mul(inv, inv)
    series = f.mul(inv2, f.poly(inv2, [-1 / 132, 1 / 240, -1 / 252, 1 / 120, -1 / 12]))
    asym = f.add(f.sub(f.un(z, "LOG"), f.mul(inv, f.c(z, 0.5))), series)
    # Σ 1/(y + k), k = 0..7, from y clipped below 8 (the unused branch stays finite)
    yc = f.ew(y, f.c(y, _SHIFT), "MIN")
    total = f.un(yc, "RECIP")
    for k in range(1, _SHIFT):
        total = f.add(total, f.un(f.add(yc, f.c(y, k)), "RECIP"))
    return f.where(small, f.sub(asym, total), asym)


@register("Digamma", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="the asymptotic series for x ≥ 8, the recurrence shifted by 8 below, reflection "
                       "ψ(1 - x) - π/tan(π·(x - round(x))) for x ≤ 0 (NaN at 0 and the negative integers, as in "
                       "TensorFlow); measured against TensorFlow within rtol 1e-4 / atol 1e-5 on [-1e6, 1e30]; "
                       "float16 is computed in float32")
def convert_digamma(ctx, node, inputs):
    x, half = _float32_in(ctx, inputs[0])
    f = _F(ctx, "digamma")
    out = _digamma(f, x)
    return _float_out(ctx, f, out, half,
                      lambda v, s: select(ctx, f.ew(x, f.c(x, np.inf), "EQUAL"), f.c(x, np.inf), v, s))


def _digamma(f: _F, x: Value) -> Value:
    """ψ(x) except at x = +inf (the caller's final select gives +inf there)."""
    negative = f.ew(x, f.c(x, 0), "LESS")
    y = f.where(negative, f.sub(f.c(x, 1), x), x)
    positive = _digamma_positive(f, y)
    r = _reduced(f, x)
    tan_pi = f.un(f.mul(r, f.c(x, math.pi)), "TAN")
    reflected = f.sub(positive, f.div(f.c(x, math.pi), tan_pi))
    out = f.where(negative, reflected, positive)
    # TensorFlow (Eigen): NaN at x = 0 and the negative integers, NaN for -inf, +inf for +inf
    pole = f.ew(f.ew(r, f.c(x, 0), "EQUAL"), f.un(f.ew(x, f.c(x, 0), "GREATER"), "NOT"), "AND")
    return f.where(pole, f.c(x, np.nan), out)


# ------------------------------------------------------------------ ndtri / erfinv
_EXP_NEG_TWO = 0.13533528323661269189
_P0 = (-5.99633501014107895267e1, 9.80010754185999661536e1, -5.66762857469070293439e1, 1.39312609387279679503e1,
       -1.23916583867381258016e0)
_Q0 = (1.0, 1.95448858338141759834e0, 4.67627912898881538453e0, 8.63602421390890590575e1, -2.25462687854119370527e2,
       2.00260212380060660359e2, -8.20372256168333339912e1, 1.59056225126211695515e1, -1.18331621121330003142e0)
_P1 = (4.05544892305962419923e0, 3.15251094599893866154e1, 5.71628192246421288162e1, 4.40805073893200834700e1,
       1.46849561928858024014e1, 2.18663306850790267539e0, -1.40256079171354495875e-1, -3.50424626827848203418e-2,
       -8.57456785154685413611e-4)
_Q1 = (1.0, 1.57799883256466749731e1, 4.53907635128879210584e1, 4.13172038254672030440e1, 1.50425385692907503408e1,
       2.50464946208309415979e0, -1.42182922854787788574e-1, -3.80806407691578277194e-2, -9.33259480895457427372e-4)
_P2 = (3.23774891776946035970e0, 6.91522889068984211695e0, 3.93881025292474443415e0, 1.33303460815807542389e0,
       2.01485389549179081538e-1, 1.23716634817820021358e-2, 3.01581553508235416007e-4, 2.65806974686737550832e-6,
       6.23974539184983293730e-9)
_Q2 = (1.0, 6.02427039364742014255e0, 3.67983563856160859403e0, 1.37702099489081330271e0, 2.16236993594496635890e-1,
       1.34204006088543189037e-2, 3.28014464682127739104e-4, 2.89247864745380683936e-6, 6.79019408009981274425e-9)


def _ndtri(f: _F, a: Value) -> Value:
    """Cephes' ndtri (as Eigen evaluates it for TensorFlow) without the a = 0 / a = 1 ends."""
    flip = f.ew(f.ew(a, f.c(a, 1 - _EXP_NEG_TWO), "LESS"), f.ew(a, f.c(a, 1 - _EXP_NEG_TWO), "EQUAL"), "OR")
    b = f.where(flip, a, f.sub(f.c(a, 1), a))
    # central part: b > exp(-2)
    c = f.sub(b, f.c(a, 0.5))
    c2 = f.mul(c, c)
    central = f.mul(f.add(f.mul(c, f.mul(c2, f.div(f.poly(c2, _P0), f.poly(c2, _Q0)))), c),
                    f.c(a, 2.50662827463100050242e0))
    # tails: x = sqrt(-2 log b), x - log(x)/x - P(1/x)/(x·Q(1/x)); b clipped into (0, exp(-2)] for this branch
    # (clipped at the smallest subnormal, not the smallest normal: ndtri(1e-40) is -13.3, TensorFlow's float64
    # kernel for subnormal inputs)
    bt = f.ew(f.ew(b, f.c(a, _EXP_NEG_TWO), "MIN"), f.c(a, 2.0 ** -149), "MAX")
    x = f.un(f.mul(f.c(a, -2), f.un(bt, "LOG")), "SQRT")
    x0 = f.sub(x, f.div(f.un(x, "LOG"), x))
    z = f.un(x, "RECIP")
    near = f.div(f.poly(z, _P1), f.poly(z, _Q1))
    far = f.div(f.poly(z, _P2), f.poly(z, _Q2))
    x1 = f.mul(z, f.where(f.ew(x, f.c(a, 8), "LESS"), near, far))
    tail = f.sub(x0, x1)
    tail = f.where(flip, f.un(tail, "NEG"), tail)
    return f.where(f.ew(f.c(a, _EXP_NEG_TWO), b, "LESS"), central, tail)


def _ndtri_ends(ctx, f: _F, a: Value, value: Value, suffix):
    """a = 0 → -inf, a = 1 → +inf, outside [0, 1] (and NaN) → NaN, as TensorFlow's kernel."""
    inside = f.ew(f.ew(a, f.c(a, 0), "GREATER"), f.ew(a, f.c(a, 1), "LESS"), "AND")
    ends = f.where(f.ew(a, f.c(a, 0), "EQUAL"), f.c(a, -np.inf),
                   f.where(f.ew(a, f.c(a, 1), "EQUAL"), f.c(a, np.inf), f.c(a, np.nan)))
    return select(ctx, inside, value, ends, suffix)


@register("Ndtri", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="TensorFlow's (Cephes') rational approximations evaluated in float32; -inf/inf at 0/1, NaN "
                       "outside [0, 1]; float16 is computed in float32")
def convert_ndtri(ctx, node, inputs):
    a, half = _float32_in(ctx, inputs[0])
    f = _F(ctx, "ndtri")
    value = _ndtri(f, a)
    return _float_out(ctx, f, value, half, lambda v, s: _ndtri_ends(ctx, f, a, v, s))


@register("Erfinv", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="TensorFlow's formula ndtri(x/2 + 1/2)/√2 with its rational approximations (its rounding "
                       "of x/2 + 1/2 included: erfinv(1 - 2^-24) = inf, as in TensorFlow); ±inf at ±1, NaN "
                       "outside [-1, 1]; float16 is computed in float32")
def convert_erfinv(ctx, node, inputs):
    x, half = _float32_in(ctx, inputs[0])
    f = _F(ctx, "erfinv")
    a = f.add(f.mul(x, f.c(x, 0.5)), f.c(x, 0.5))
    value = f.mul(_ndtri(f, a), f.c(x, math.sqrt(0.5)))
    return _float_out(ctx, f, value, half, lambda v, s: _ndtri_ends(ctx, f, a, v, s))


# ------------------------------------------------------------------ modified Bessel functions of order 0 and 1
# Cephes' single-precision Chebyshev coefficients (i0f.c / i1f.c), the ones Eigen evaluates for TensorFlow's
# float kernels: exp(-x)·I(x) on [0, 8] in the variable x/2 - 2, exp(-x)·√x·I(x) on (8, inf) in 32/x - 2.
_I0_A = (-1.30002500998624804212E-8, 6.04699502254191894932E-8, -2.67079385394061173391E-7,
         1.11738753912010371815E-6, -4.41673835845875056359E-6, 1.64484480707288970893E-5,
         -5.75419501008210370398E-5, 1.88502885095841655729E-4, -5.76375574538582365885E-4,
         1.63947561694133579842E-3, -4.32430999505057594430E-3, 1.05464603945949983183E-2,
         -2.37374148058994688156E-2, 4.93052842396707084878E-2, -9.49010970480476444210E-2,
         1.71620901522208775349E-1, -3.04682672343198398683E-1, 6.76795274409476084995E-1)
_I0_B = (3.39623202570838634515E-9, 2.26666899049817806459E-8, 2.04891858946906374183E-7,
         2.89137052083475648297E-6, 6.88975834691682398426E-5, 3.36911647825569408990E-3,
         8.04490411014108831608E-1)
_I1_A = (9.38153738649577178388E-9, -4.44505912879632808065E-8, 2.00329475355213526229E-7,
         -8.56872026469545474066E-7, 3.47025130813767847674E-6, -1.32731636560394358279E-5,
         4.78156510755005422638E-5, -1.61760815825896745588E-4, 5.12285956168575772895E-4,
         -1.51357245063125314899E-3, 4.15642294431288815669E-3, -1.05640848946261981558E-2,
         2.47264490306265168283E-2, -5.29459812080949914269E-2, 1.02643658689847095384E-1,
         -1.76416518357834055153E-1, 2.52587186443633654823E-1)
_I1_B = (-3.83538038596423702205E-9, -2.63146884688951950684E-8, -2.51223623787020892529E-7,
         -3.88256480887769039346E-6, -1.10588938762623716291E-4, -9.76109749136146840777E-3,
         7.78576235018280120474E-1)


def _chbevl(f: _F, x: Value, coeffs) -> Value:
    """Cephes' chbevl: Σ' c_i·T_i(x/2) by Clenshaw's recurrence, coefficients highest order first."""
    b0, b1, b2 = f.c(x, coeffs[0]), f.c(x, 0.0), f.c(x, 0.0)
    for coef in coeffs[1:]:
        b2, b1 = b1, b0
        b0 = f.add(f.sub(f.mul(x, b1), b2), f.c(x, coef))
    return f.mul(f.sub(b0, b2), f.c(x, 0.5))


def _bessel_e(f: _F, x: Value, order: int) -> tuple[Value, Value, Value]:
    """exp(-|x|)·I_order(|x|) as Eigen's generic_i0e / generic_i1e for float, as (y ≤ 8, near, far)."""
    a_coeffs, b_coeffs = (_I0_A, _I0_B) if order == 0 else (_I1_A, _I1_B)
    y = f.un(x, "ABS")
    small = f.un(f.ew(y, f.c(x, 8), "GREATER"), "NOT")  # y ≤ 8 (NaN gives NaN in either branch)
    near = _chbevl(f, f.sub(f.mul(y, f.c(x, 0.5)), f.c(x, 2)), a_coeffs)
    if order == 1:
        near = f.mul(near, y)
    far = f.mul(_chbevl(f, f.sub(f.div(f.c(x, 32), y), f.c(x, 2)), b_coeffs), f.un(f.un(y, "SQRT"), "RECIP"))
    return small, near, far


_BESSEL = {"BesselI0e": (0, False), "BesselI1e": (1, False), "BesselI0": (0, True), "BesselI1": (1, True)}


@register(*_BESSEL, layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="TensorFlow's (Eigen's, Cephes') Chebyshev expansions for float evaluated in float32: "
                       "exp(-|x|)·I(x) on |x| ≤ 8 and exp(-|x|)·√|x|·I(x) beyond; BesselI0/I1 multiply by "
                       "exp(|x|) as TensorFlow does (inf where that overflows); float16 is computed in float32")
def convert_bessel(ctx, node, inputs):
    x, half = _float32_in(ctx, inputs[0])
    order, unscaled = _BESSEL[node.op]
    f = _F(ctx, node.op.lower())
    small, near, far = _bessel_e(f, x, order)
    steps = [lambda v, s: select(ctx, small, near, far, s)]
    if order == 1:  # I1 is odd
        steps.append(lambda v, s: select(ctx, f.ew(x, f.c(x, 0), "LESS"), f.un(v, "NEG"), v, s))
    if unscaled:
        steps.append(lambda v, s: elementwise(ctx, v, f.un(f.un(x, "ABS"), "EXP"), "PROD", s))
    value = None
    for step in steps[:-1]:
        value = step(value, f._name("step"))
    return _float_out(ctx, f, value, half, steps[-1])


def _bessel_i(f: _F, x: Value, order: int) -> Value:
    """I_order(x) = exp(|x|)·I_order_e(x), as Eigen's generic_i0 / generic_i1."""
    small, near, far = _bessel_e(f, x, order)
    value = f.where(small, near, far)
    if order == 1:
        value = f.where(f.ew(x, f.c(x, 0), "LESS"), f.un(value, "NEG"), value)
    return f.mul(value, f.un(f.un(x, "ABS"), "EXP"))


# Cephes' k0f.c / k1f.c coefficients (as Eigen's float generic_k0/k0e/k1/k1e): on (0, 2] a Chebyshev series in
# x² - 2 plus the I(x)·log(x/2) term, beyond exp(x)·√x·K(x) in 8/x - 2
_K0_A = (1.90451637722020886025E-9, 2.53479107902614945675E-7, 2.28621210311945178607E-5,
         1.26461541144692592338E-3, 3.59799365153615016266E-2, 3.44289899924628486886E-1,
         -5.35327393233902768720E-1)
_K0_B = (-1.69753450938905987466E-9, 8.57403401741422608519E-9, -4.66048989768794782956E-8,
         2.76681363944501510342E-7, -1.83175552271911948767E-6, 1.39498137188764993662E-5,
         -1.28495495816278026384E-4, 1.56988388573005337491E-3, -3.14481013119645005427E-2,
         2.44030308206595545468E0)
_K1_A = (-2.21338763073472585583E-8, -2.43340614156596823496E-6, -1.73028895751305206302E-4,
         -6.97572385963986435018E-3, -1.22611180822657148235E-1, -3.53155960776544875667E-1,
         1.52530022733894777053E0)
_K1_B = (2.01504975519703286596E-9, -1.03457624656780970260E-8, 5.74108412545004946722E-8,
         -3.50196060308781257119E-7, 2.40648494783721712015E-6, -1.93619797416608296024E-5,
         1.95215518471351631108E-4, -2.85781685962277938680E-3, 1.03923736576817238437E-1,
         2.72062619048444266945E0)
_BESSEL_K = {"BesselK0e": (0, True), "BesselK1e": (1, True), "BesselK0": (0, False), "BesselK1": (1, False)}


@register(*_BESSEL_K, layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="TensorFlow's (Eigen's, Cephes') float expansions evaluated in float32: on (0, 2] a "
                       "Chebyshev series in x² - 2 plus the I(x)·log(x/2) term (scaled by exp(x) for K0e/K1e), "
                       "beyond a Chebyshev series in 8/x - 2 over √x (times exp(-x) for K0/K1); inf for x ≤ 0 as "
                       "in TensorFlow; below x = 2^-125 log(x/2) is log(x) - log 2 (TensorFlow's CPU kernel flushes "
                       "x/2 to 0 there: K0 inf, K1 NaN at x = 2^-126); float16 is computed in float32")
def convert_bessel_k(ctx, node, inputs):
    x, half = _float32_in(ctx, inputs[0])
    order, scaled = _BESSEL_K[node.op]
    f = _F(ctx, node.op.lower())
    a_coeffs, b_coeffs = (_K0_A, _K0_B) if order == 0 else (_K1_A, _K1_B)
    two = f.c(x, 2)
    xc = f.ew(x, two, "MIN")  # the (0, 2] branch from x clipped into it (the unused values stay finite)
    series = _chbevl(f, f.sub(f.mul(xc, xc), two), a_coeffs)
    # log(x/2), and log(x) - log 2 where x/2 is subnormal: TensorFlow's CPU kernel flushes x/2 to 0 there (K0 =
    # inf, K1 = NaN at x = 2^-126); the true value, which its float64 kernel gives for subnormal x, is finite
    log_half = f.where(f.ew(xc, f.c(x, 2.0 ** -125), "LESS"), f.sub(f.un(xc, "LOG"), f.c(x, math.log(2))),
                       f.un(f.mul(f.c(x, 0.5), xc), "LOG"))
    if order == 0:
        near = f.add(f.mul(_bessel_i(f, xc, 0), f.un(log_half, "NEG")), series)
    else:
        near = f.add(f.mul(_bessel_i(f, xc, 1), log_half), f.div(series, xc))
    if scaled:
        near = f.mul(near, f.un(xc, "EXP"))
    far = _chbevl(f, f.sub(f.div(f.c(x, 8), x), two), b_coeffs)
    if not scaled:
        far = f.mul(f.un(f.un(x, "NEG"), "EXP"), far)
    far = f.mul(far, f.un(f.un(x, "SQRT"), "RECIP"))
    # x ≤ 0 and x ≤ 2 as Eigen's comparisons: false for NaN, which takes the far branch (NaN)
    nonpositive = f.ew(f.ew(x, f.c(x, 0), "LESS"), f.ew(x, f.c(x, 0), "EQUAL"), "OR")
    near = f.where(nonpositive, f.c(x, np.inf), near)
    in_near = f.ew(f.ew(x, two, "LESS"), f.ew(x, two, "EQUAL"), "OR")
    return _float_out(ctx, f, near, half, lambda v, s: select(ctx, in_near, v, far, s))

# ------------------------------------------------------------------ Hurwitz zeta and polygamma
#: Eigen's float machine epsilon for its early exits (1 - machep == 1)
_MACHEP = 5.9604645e-08
_ZETA_A = (12.0, -720.0, 30240.0, -1209600.0, 47900160.0, -1.8924375803183791606e9, 7.47242496e10,
           -2.950130727918164224e12, 1.1646782814350067249e14, -4.5979787224074726105e15, 1.8152105401943546773e17,
           -7.1661652561756670113e18)


def _zeta(f: _F, x: Value, q: Value) -> Value:
    """Eigen's zeta_impl for float (Cephes' zeta) unrolled, its early exits as masks: s = q^-x plus the nine
    terms (a + 1)^-x, a = q, q + 1, …; stop once a term is below machep relative to s, or when the ninth term is
    0; else the Euler-Maclaurin tail at w = q + 9 with Eigen's 12 Bernoulli terms, stopping likewise.  Every
    step is the same float32 operation as Eigen's, in its order."""

    def small(term, total):
        return f.ew(f.un(f.div(term, total), "ABS"), f.c(x, _MACHEP), "LESS")

    neg_x = f.un(x, "NEG")
    s = f.ew(q, neg_x, "POW")
    a, done = q, None
    for _ in range(9):
        a = f.add(a, f.c(q, 1))
        b = f.ew(a, neg_x, "POW")
        s = f.add(s, b) if done is None else f.where(done, s, f.add(s, b))
        done = small(b, s) if done is None else f.ew(done, small(b, s), "OR")
    # a zero ninth term: the tail is zero too (and would be inf·0 where a·(x + k) overflows)
    done = f.ew(done, f.ew(b, f.c(x, 0), "EQUAL"), "OR")
    w = a
    one = f.c(x, 1)
    s = f.where(done, s, f.add(s, f.div(f.mul(b, w), f.sub(x, one))))
    s = f.where(done, s, f.sub(s, f.mul(f.c(x, 0.5), b)))
    a, k = one, 0.0
    for i, coef in enumerate(_ZETA_A):
        a = f.mul(a, f.add(x, f.c(x, k)))
        b = f.div(b, w)
        t = f.div(f.mul(a, b), f.c(x, coef))
        s = f.where(done, s, f.add(s, t))
        if i + 1 < len(_ZETA_A):
            done = f.ew(done, small(t, s), "OR")
        k += 1
        a = f.mul(a, f.add(x, f.c(x, k)))
        b = f.div(b, w)
        k += 1
    return s


def _zeta_ends(f: _F, x: Value, q: Value, value: Value, finish):
    """Eigen's special cases: inf at x = 1, NaN for x < 1; q ≤ 0: at an integer q inf for an even integer x and
    NaN otherwise, for a non-integer q NaN unless x is an integer."""
    x_int = f.ew(f.un(x, "FLOOR"), x, "EQUAL")
    half_x = f.mul(x, f.c(x, 0.5))
    x_even = f.ew(x_int, f.ew(f.un(half_x, "FLOOR"), half_x, "EQUAL"), "AND")
    q_int = f.ew(f.un(q, "FLOOR"), q, "EQUAL")
    q_pos = f.ew(q, f.c(q, 0), "GREATER")
    pole = f.where(x_even, f.c(x, np.inf), f.c(x, np.nan))
    out = f.where(f.ew(q_int, f.un(q_pos, "NOT"), "AND"), pole, value)
    nonpos_bad = f.ew(f.un(q_pos, "NOT"), f.un(x_int, "NOT"), "AND")
    out = f.where(f.ew(nonpos_bad, f.un(q_int, "NOT"), "AND"), f.c(x, np.nan), out)
    out = f.where(f.ew(x, f.c(x, 1), "LESS"), f.c(x, np.nan), out)
    return finish(f, f.ew(x, f.c(x, 1), "EQUAL"), f.c(x, np.inf), out)


@register("Zeta", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="Eigen's float Hurwitz zeta (Cephes') unrolled with its early exits as masks: q^-x + 9 terms "
                       "(q + i)^-x, then 12 Euler-Maclaurin terms, in float32; inf at x = 1, NaN for x < 1 and the "
                       "poles as in TensorFlow; broadcasting; float16 is computed in float32")
def convert_zeta(ctx, node, inputs):
    x, half = _float32_in(ctx, inputs[0])
    q, _ = _float32_in(ctx, inputs[1])
    f = _F(ctx, "zeta")
    value = _zeta(f, x, q)
    if half:
        out = _zeta_ends(f, x, q, value, lambda f, c, a, b: f.where(c, a, b))
        return cast(ctx, out, np.float16, None)
    return _zeta_ends(f, x, q, value, lambda f, c, a, b: select(ctx, c, a, b, None))


@register("Polygamma", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="TensorFlow's formula: digamma(x) for n = 0, (-1)^(n+1)·exp(lgamma(n+1))·zeta(n+1, x) for "
                       "n = 1, 2, … (the Zeta and Digamma constructions above), NaN for negative or non-integer n; "
                       "float16 is computed in float32")
def convert_polygamma(ctx, node, inputs):
    n, half = _float32_in(ctx, inputs[0])
    x, _ = _float32_in(ctx, inputs[1])
    f = _F(ctx, "polygamma")
    n1 = f.add(n, f.c(n, 1))
    # zeta(n + 1, x) for n ≥ 1 (n1 clipped to ≥ 2 so that the unused branches stay finite)
    order = f.ew(n1, f.c(n, 2), "MAX")
    zeta = _zeta_ends(f, order, x, _zeta(f, order, x), lambda f, c, a, b: f.where(c, a, b))
    factorial = f.un(_lgamma_positive(f, order), "EXP")
    half_n1 = f.mul(n1, f.c(n, 0.5))
    sign = f.where(f.ew(f.un(half_n1, "FLOOR"), half_n1, "EQUAL"), f.c(n, 1), f.c(n, -1))
    value = f.mul(f.mul(sign, factorial), zeta)
    digamma = f.where(f.ew(x, f.c(x, np.inf), "EQUAL"), f.c(x, np.inf), _digamma(f, x))
    value = f.where(f.ew(n, f.c(n, 0), "EQUAL"), digamma, value)
    bad = f.ew(f.ew(n, f.c(n, 0), "LESS"), f.un(f.ew(f.un(n, "FLOOR"), n, "EQUAL"), "NOT"), "OR")
    return _float_out(ctx, f, value, half, lambda v, s: select(ctx, bad, f.c(v, np.nan), v, s))
