// In-block sequential sweep of a blocked FreeNet evaluator, forward and backward, on the CPU.
//
// Activations are neuron-major: row j of z, h, dh and g is neuron j over the batch columns.
// The sweep is independent per column, so the batch is cut into tiles of `tile` columns and each
// tile sweeps the whole block with its accumulators in registers ("pull" form):
//
//   forward,  j = 0..b-1:    z[j] += sum_{i<j, w[i,j] != 0} w[i,j] * h[i]   (i ascending)
//                            h[j]  = act_j(z[j])
//   backward, i = b-1..0:    dh[i] += sum_{j>i, w[i,j] != 0} w[i,j] * g[j]  (j descending)
//                            g[i]  = dh[i] * act_i'(z[i])
//
// These are the orders of summation of the "push" loops of the torch reference in sweep.py, so
// both agree up to rounding of fused multiply-adds. Edges of weight exactly 0 are dropped when the
// edge lists are built, once per call.
//
// Rows are swept two at a time: while the first row of a pair accumulates a source row, the
// second accumulates it too, so each loaded source row feeds two FMAs (the loop is bound by
// loads, not arithmetic). Then the first row is finished, its edge into the second added, and the
// second finished. Tiles are spread over threads with parallel_chunks; a partial last tile runs
// through zero-padded scratch rows.
//
// Inner loops run over `tile` contiguous columns with compile-time trip counts so that the
// compiler vectorises them (the float32 tanh and sigmoid use a branch-free Cephes exp for that).
// On x86-64 with GCC the tile loops are compiled for SSE2, AVX2+FMA and AVX-512, with a tile of
// 4 vector registers per row, and the widest the CPU supports is picked at run time: the build
// stays portable (no -march=native).

// Only the headers needed (not <torch/extension.h>): this halves the first build.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

// The codes of ncg/activations.py's ACTIVATIONS table. Each activation also has one case in
// activate_row and one in derivative_row; tests/test_activations.py checks them and
// needs_preactivation against the table.
enum Activation : uint8_t {
  kIdentity = 0,
  kRelu = 1,
  kSquareRelu = 2,
  kTanh = 3,
  kSigmoid = 4,
  kGelu = 5,
  kSilu = 6,
  kElu = 7,
  kLeakyRelu = 8,
  kNumActivations = 9,
};

// The activations whose derivative is no function of h (Activation.needs_preactivation): their
// derivative_row case reads z, so the backward needs the pre-activations.
constexpr bool needs_preactivation(uint8_t code) { return code == kGelu || code == kSilu; }

#define NCG_INLINE inline __attribute__((always_inline))

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define NCG_X86_DISPATCH 1
#else
#define NCG_X86_DISPATCH 0
#endif

// ---------------------------------------------------------------- float32 transcendental math

NCG_INLINE float bits_to_float(int32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// exp(x) for float, about 1 ulp (Cephes expf), branch-free so that loops over it vectorise.
// The input is clamped to [-87.3, 88.3]: results stay normal and finite there; NaN passes through.
NCG_INLINE float exp_f32(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  // Round x / ln 2 to the nearest integer: adding 1.5 * 2^23 pushes the fraction bits out.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const int32_t exponent = static_cast<int32_t>(n) + 127;
  return p * bits_to_float(exponent << 23);
}

// tanh(x) for float, a few ulp (Cephes tanhf): odd polynomial below 0.625, exp form above.
NCG_INLINE float tanh_f32(float x) {
  const float ax = std::fabs(x);
  const float x2 = x * x;
  float p = -5.70498872745e-3f;
  p = p * x2 + 2.06390887954e-2f;
  p = p * x2 - 5.37397155531e-2f;
  p = p * x2 + 1.33314422036e-1f;
  p = p * x2 - 3.33332819422e-1f;
  const float small = p * x2 * x + x;
  const float large_abs = 1.0f - 2.0f / (exp_f32(2.0f * ax) + 1.0f);
  const float large = x < 0.0f ? -large_abs : large_abs;
  return ax < 0.625f ? small : large;
}

NCG_INLINE float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

NCG_INLINE float exp_of(float x) { return exp_f32(x); }
NCG_INLINE double exp_of(double x) { return std::exp(x); }
NCG_INLINE float tanh_of(float x) { return tanh_f32(x); }
NCG_INLINE double tanh_of(double x) { return std::tanh(x); }
NCG_INLINE float sigmoid_of(float x) { return sigmoid_f32(x); }
NCG_INLINE double sigmoid_of(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The exact (erf) GELU, z Phi(z), and its derivative Phi(z) + z phi(z).
template <typename T>
NCG_INLINE T gelu_of(T x) { return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440))); }
template <typename T>
NCG_INLINE T gelu_derivative_of(T x) {
  return T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440))) +
         x * std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
}

// leaky_relu's slope below 0 (nn.LeakyReLU's default).
constexpr double kLeakySlope = 0.01;

// ---------------------------------------------------------------- one row of a tile

// out[t] = act(z[t]). relu keeps NaN, as torch.relu does: x < 0 is false for it.
template <typename T, int64_t N>
NCG_INLINE void activate_row(uint8_t code, const T* __restrict__ z, T* __restrict__ out) {
  switch (code) {
    case kIdentity:
      for (int64_t t = 0; t < N; ++t) out[t] = z[t];
      break;
    case kRelu:
      for (int64_t t = 0; t < N; ++t) out[t] = z[t] < T(0) ? T(0) : z[t];
      break;
    case kSquareRelu:
      for (int64_t t = 0; t < N; ++t) {
        const T r = z[t] < T(0) ? T(0) : z[t];
        out[t] = r * r;
      }
      break;
    case kTanh:
      for (int64_t t = 0; t < N; ++t) out[t] = tanh_of(z[t]);
      break;
    case kGelu:
      for (int64_t t = 0; t < N; ++t) out[t] = gelu_of(z[t]);
      break;
    case kSilu:
      for (int64_t t = 0; t < N; ++t) out[t] = z[t] / (T(1) + exp_of(-z[t]));
      break;
    case kElu:
      for (int64_t t = 0; t < N; ++t) out[t] = z[t] > T(0) ? z[t] : std::expm1(z[t]);
      break;
    case kLeakyRelu:
      for (int64_t t = 0; t < N; ++t) out[t] = z[t] > T(0) ? z[t] : T(kLeakySlope) * z[t];
      break;
    default:  // kSigmoid
      for (int64_t t = 0; t < N; ++t) out[t] = sigmoid_of(z[t]);
      break;
  }
}

// g[t] = dh[t] * act'(z[t]), from h[t] = act(z[t]) alone where the derivative is a function of
// it (so z need not be kept; z may then be null), else from z[t] (needs_preactivation), written
// with the same operations as the torch reference. sqrt(r * r) == r for square_relu, barring
// underflow.
template <typename T, int64_t N>
NCG_INLINE void derivative_row(uint8_t code, const T* __restrict__ dh, const T* __restrict__ h,
                               const T* __restrict__ z, T* __restrict__ g) {
  switch (code) {
    case kIdentity:
      for (int64_t t = 0; t < N; ++t) g[t] = dh[t];
      break;
    case kRelu:
      for (int64_t t = 0; t < N; ++t) g[t] = dh[t] * (h[t] > T(0) ? T(1) : T(0));
      break;
    case kSquareRelu:
      for (int64_t t = 0; t < N; ++t) g[t] = dh[t] * (T(2) * std::sqrt(h[t]));
      break;
    case kTanh:
      for (int64_t t = 0; t < N; ++t) g[t] = dh[t] * (T(1) - h[t] * h[t]);
      break;
    case kGelu:
      for (int64_t t = 0; t < N; ++t) g[t] = dh[t] * gelu_derivative_of(z[t]);
      break;
    case kSilu:
      for (int64_t t = 0; t < N; ++t) {
        const T s = T(1) / (T(1) + exp_of(-z[t]));
        g[t] = dh[t] * (s * (T(1) + z[t] * (T(1) - s)));
      }
      break;
    case kElu:  // alpha = 1: h = exp(z) - 1 below 0
      for (int64_t t = 0; t < N; ++t) g[t] = dh[t] * (h[t] > T(0) ? T(1) : h[t] + T(1));
      break;
    case kLeakyRelu:
      for (int64_t t = 0; t < N; ++t) g[t] = dh[t] * (h[t] > T(0) ? T(1) : T(kLeakySlope));
      break;
    default:  // kSigmoid
      for (int64_t t = 0; t < N; ++t) g[t] = dh[t] * (h[t] * (T(1) - h[t]));
      break;
  }
}

// ---------------------------------------------------------------- edge lists

// The block's edges in sweep order, grouped by pairs of rows. Pair p handles rows first[p] and
// second[p] (second[p] = -1 when the pair is a single row); its entries ptr[p]..ptr[p+1] are the
// far ends `other` of the edges into (forward) or out of (backward) those rows, with the weights
// for the first row (w_first) and the second (w_second; 0 where only the first row has an edge).
// `inner[p]` is the weight of the edge between the two rows of the pair.
template <typename T>
struct PairLists {
  std::vector<int64_t> first, second, ptr;
  std::vector<int32_t> other;
  std::vector<T> w_first, w_second, inner;
};

// Built from two rows of a b x b matrix `m` (row stride ld): forward, m = w^T and pair p is rows
// (2p, 2p+1) with sources i < 2p ascending; backward, m = w and pair p is rows (b-1-2p, b-2-2p)
// with targets j > b-1-2p descending. Either way the inner weight is m[second, first]. Entries
// whose two weights are both exactly 0 are dropped (branch-free: every entry is written, and the
// cursor only moves past kept ones).
template <typename T>
PairLists<T> pair_lists(const T* m, int64_t ld, int64_t b, bool forward) {
  const int64_t pairs = (b + 1) / 2;
  PairLists<T> l;
  l.first.resize(pairs);
  l.second.resize(pairs);
  l.inner.resize(pairs);
  l.ptr.resize(pairs + 1);
  const int64_t capacity = pairs * b + 1;  // each pair has fewer than b entries; +1 of slack
  l.other.resize(capacity);
  l.w_first.resize(capacity);
  l.w_second.resize(capacity);
  int32_t* other = l.other.data();
  T* w0 = l.w_first.data();
  T* w1 = l.w_second.data();
  int64_t n = 0;
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t first = forward ? 2 * p : b - 1 - 2 * p;
    const int64_t second = forward ? (first + 1 < b ? first + 1 : -1) : first - 1;
    const T* row0 = m + first * ld;
    const T* row1 = second >= 0 ? m + second * ld : nullptr;
    l.first[p] = first;
    l.second[p] = second;
    l.inner[p] = row1 != nullptr ? row1[first] : T(0);
    l.ptr[p] = n;
    const int64_t count = forward ? first : b - 1 - first;
    for (int64_t k = 0; k < count; ++k) {
      const int64_t col = forward ? k : b - 1 - k;
      const T a = row0[col];
      const T c = row1 != nullptr ? row1[col] : T(0);
      other[n] = static_cast<int32_t>(col);
      w0[n] = a;
      w1[n] = c;
      n += (a != T(0)) | (c != T(0));
    }
  }
  l.ptr[pairs] = n;
  return l;
}

// The strictly upper part of w (row stride ldw) transposed into wt (row stride b): the incoming
// weights of neuron j become row j of wt. Done in 16 x 16 blocks to stay in cache.
template <typename T>
void transpose_strict_upper(const T* w, int64_t ldw, int64_t b, T* wt) {
  constexpr int64_t kBlock = 16;
  for (int64_t i0 = 0; i0 < b; i0 += kBlock) {
    const int64_t i1 = std::min(i0 + kBlock, b);
    for (int64_t j0 = i0; j0 < b; j0 += kBlock) {
      const int64_t j1 = std::min(j0 + kBlock, b);
      for (int64_t i = i0; i < i1; ++i) {
        for (int64_t j = std::max(j0, i + 1); j < j1; ++j) wt[j * b + i] = w[i * ldw + j];
      }
    }
  }
}

// ---------------------------------------------------------------- whole-block sweep of one tile

template <typename T>
struct ForwardArgs {
  T* z;  // [b, ldz], updated in place
  T* h;  // [b, ldh], written
  int64_t ldz, ldh;
  const uint8_t* codes;
  const PairLists<T>* lists;
};

template <typename T>
struct BackwardArgs {
  const T* h;  // [b, ldh]
  T* dh;       // [b, lddh], updated in place
  T* g;        // [b, ldg], written
  int64_t ldh, lddh, ldg;
  const uint8_t* codes;
  const PairLists<T>* lists;
  const T* z;  // [b, ldz]: the pre-activations, or null when no code needs them
  int64_t ldz;
};

// acc0 += w0 * src and acc1 += w1 * src over the entries [begin, end) of a pair.
template <typename T, int64_t N>
NCG_INLINE void accumulate_pair(T* __restrict__ acc0, T* __restrict__ acc1, const T* rows,
                                int64_t ld, const int32_t* other, const T* w0, const T* w1,
                                int64_t begin, int64_t end) {
  for (int64_t e = begin; e < end; ++e) {
    const T a = w0[e], c = w1[e];
    const T* __restrict__ src = rows + other[e] * ld;
    for (int64_t t = 0; t < N; ++t) {
      const T x = src[t];
      acc0[t] += a * x;
      acc1[t] += c * x;
    }
  }
}

// acc += w0 * src over the entries [begin, end) of a single-row pair.
template <typename T, int64_t N>
NCG_INLINE void accumulate_row(T* __restrict__ acc, const T* rows, int64_t ld,
                               const int32_t* other, const T* w0, int64_t begin, int64_t end) {
  for (int64_t e = begin; e < end; ++e) {
    const T a = w0[e];
    const T* __restrict__ src = rows + other[e] * ld;
    for (int64_t t = 0; t < N; ++t) acc[t] += a * src[t];
  }
}

template <typename T, int64_t N>
NCG_INLINE void forward_tile(const ForwardArgs<T>& a, int64_t col) {
  const PairLists<T>& l = *a.lists;
  // Not restrict: h may be z itself (each row's z is stored before its h).
  T* z = a.z + col;
  T* h = a.h + col;
  const int64_t ldz = a.ldz, ldh = a.ldh;
  const int64_t pairs = static_cast<int64_t>(l.first.size());
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t j0 = l.first[p], j1 = l.second[p];
    T acc0[N], acc1[N];
    T* z0 = z + j0 * ldz;
    T* h0 = h + j0 * ldh;
    for (int64_t t = 0; t < N; ++t) acc0[t] = z0[t];
    if (j1 < 0) {
      accumulate_row<T, N>(acc0, h, ldh, l.other.data(), l.w_first.data(), l.ptr[p],
                           l.ptr[p + 1]);
    } else {
      T* z1 = z + j1 * ldz;
      for (int64_t t = 0; t < N; ++t) acc1[t] = z1[t];
      accumulate_pair<T, N>(acc0, acc1, h, ldh, l.other.data(), l.w_first.data(),
                            l.w_second.data(), l.ptr[p], l.ptr[p + 1]);
    }
    for (int64_t t = 0; t < N; ++t) z0[t] = acc0[t];
    activate_row<T, N>(a.codes[j0], acc0, h0);
    if (j1 < 0) continue;
    const T inner = l.inner[p];
    if (inner != T(0)) {
      for (int64_t t = 0; t < N; ++t) acc1[t] += inner * h0[t];
    }
    T* z1 = z + j1 * ldz;
    for (int64_t t = 0; t < N; ++t) z1[t] = acc1[t];
    activate_row<T, N>(a.codes[j1], acc1, h + j1 * ldh);
  }
}

template <typename T, int64_t N>
NCG_INLINE void backward_tile(const BackwardArgs<T>& a, int64_t col) {
  const PairLists<T>& l = *a.lists;
  const T* __restrict__ h = a.h + col;
  const T* __restrict__ z = a.z != nullptr ? a.z + col : nullptr;
  // Not restrict: g may be dh itself (each row's dh is read before its g is written).
  T* dh = a.dh + col;
  T* g = a.g + col;
  const int64_t ldh = a.ldh, lddh = a.lddh, ldg = a.ldg, ldz = a.ldz;
  const int64_t pairs = static_cast<int64_t>(l.first.size());
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t i0 = l.first[p], i1 = l.second[p];
    T acc0[N], acc1[N];
    T* dh0 = dh + i0 * lddh;
    T* g0 = g + i0 * ldg;
    for (int64_t t = 0; t < N; ++t) acc0[t] = dh0[t];
    if (i1 < 0) {
      accumulate_row<T, N>(acc0, g, ldg, l.other.data(), l.w_first.data(), l.ptr[p],
                           l.ptr[p + 1]);
    } else {
      T* dh1 = dh + i1 * lddh;
      for (int64_t t = 0; t < N; ++t) acc1[t] = dh1[t];
      accumulate_pair<T, N>(acc0, acc1, g, ldg, l.other.data(), l.w_first.data(),
                            l.w_second.data(), l.ptr[p], l.ptr[p + 1]);
    }
    for (int64_t t = 0; t < N; ++t) dh0[t] = acc0[t];
    derivative_row<T, N>(a.codes[i0], acc0, h + i0 * ldh, z != nullptr ? z + i0 * ldz : nullptr, g0);
    if (i1 < 0) continue;
    const T inner = l.inner[p];
    if (inner != T(0)) {
      for (int64_t t = 0; t < N; ++t) acc1[t] += inner * g0[t];
    }
    T* dh1 = dh + i1 * lddh;
    for (int64_t t = 0; t < N; ++t) dh1[t] = acc1[t];
    derivative_row<T, N>(a.codes[i1], acc1, h + i1 * ldh, z != nullptr ? z + i1 * ldz : nullptr, g + i1 * ldg);
  }
}

// ---------------------------------------------------------------- sparse (CSR) sweep of one tile

// Rows start..end of a DAG in position order whose incoming edges are a CSR: the edges into row p
// are the slots indptr[p]..indptr[p+1], with source rows src[e] < p and weights w[e]. Unlike the
// dense block sweep, sources may be any earlier row of the whole [N, B] activation matrix, so one
// call can cover everything a block receives, from earlier blocks and from inside it.
//
//   forward,  p = start..end-1:  z[p] += sum_e w[e] * h[src[e]]      (pull, in registers)
//                                h[p]  = act_p(z[p])
//   backward, p = end-1..start:  g[p]  = dh[p] * act_p'(z[p])
//                                dh[src[e]] += w[e] * g[p]           (push to earlier rows)
//
// The backward pushes, so that whatever evaluates the rows after `end` (dense or sparse) has
// already added its share to dh[start:end] when these rows are reached.
template <typename T>
struct CsrArgs {
  T* z;  // backward: the pre-activations, read only, or null when no code needs them
  T* h;
  T* dh;
  T* g;
  int64_t ldz, ldh, lddh, ldg;
  const uint8_t* codes;
  const int64_t* indptr;
  const int32_t* src;
  const T* w;
  int64_t start, end;
  T* dw;  // backward: dL/dw of the slots indptr[start].. added here when not null
  int64_t push_from;  // backward: rows below this need no dL/dh (input nodes): not pushed to
};

template <typename T, int64_t N>
NCG_INLINE void csr_forward_tile(const CsrArgs<T>& a, int64_t col) {
  // Not restrict: h may be z itself (each row's z is stored before its h).
  T* z = a.z + col;
  T* h = a.h + col;
  for (int64_t p = a.start; p < a.end; ++p) {
    T acc[N];
    T* zp = z + p * a.ldz;
    for (int64_t t = 0; t < N; ++t) acc[t] = zp[t];
    accumulate_row<T, N>(acc, h, a.ldh, a.src, a.w, a.indptr[p], a.indptr[p + 1]);
    for (int64_t t = 0; t < N; ++t) zp[t] = acc[t];
    activate_row<T, N>(a.codes[p], acc, h + p * a.ldh);
  }
}

// sum_t x[t] * y[t] over a tile, in min(N, 16) lanes folded pairwise, so that it vectorises.
template <typename T, int64_t N>
NCG_INLINE T dot_row(const T* __restrict__ x, const T* __restrict__ y) {
  constexpr int64_t kLanes = N < 16 ? N : 16;
  static_assert(N % kLanes == 0 && (kLanes & (kLanes - 1)) == 0, "tile must be a multiple of a power of 2");
  T lanes[kLanes] = {};
  for (int64_t t = 0; t < N; t += kLanes) {
    for (int64_t k = 0; k < kLanes; ++k) lanes[k] += x[t + k] * y[t + k];
  }
  for (int64_t width = kLanes / 2; width >= 1; width /= 2) {
    for (int64_t k = 0; k < width; ++k) lanes[k] += lanes[k + width];
  }
  return lanes[0];
}

#if NCG_X86_DISPATCH
// Edge gradients sixteen (eight) at a time for float32 tiles of 128 (64) columns, the AVX-512
// (AVX2) wide tiles: each edge's products accumulate in one 16-lane (8-lane) vector, and the
// vectors are summed lane-wise by a butterfly of shuffles ending in a bit-reversal, where folding
// each vector alone takes four (three) shuffle-and-add steps per edge.
typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

template <typename V>
NCG_INLINE V load_vec(const float* x) {
  V v;
  std::memcpy(&v, x, sizeof(v));
  return v;
}

// out[k] = sum_l a[k][l].
NCG_INLINE v8f sum8(const v8f* a) {
  v8f b[4], c[2];
  for (int j = 0; j < 4; ++j) {  // b[j] = [4-lane sums of a[j], of a[j + 4]]
    b[j] = __builtin_shuffle(a[j], a[j + 4], (v8i){0, 1, 2, 3, 8, 9, 10, 11}) +
           __builtin_shuffle(a[j], a[j + 4], (v8i){4, 5, 6, 7, 12, 13, 14, 15});
  }
  for (int j = 0; j < 2; ++j) {  // 2-lane sums of rows j, j + 4, j + 2, j + 6
    c[j] = __builtin_shuffle(b[j], b[j + 2], (v8i){0, 1, 4, 5, 8, 9, 12, 13}) +
           __builtin_shuffle(b[j], b[j + 2], (v8i){2, 3, 6, 7, 10, 11, 14, 15});
  }
  const v8f r = __builtin_shuffle(c[0], c[1], (v8i){0, 2, 4, 6, 8, 10, 12, 14}) +
                __builtin_shuffle(c[0], c[1], (v8i){1, 3, 5, 7, 9, 11, 13, 15});
  return __builtin_shuffle(r, (v8i){0, 4, 2, 6, 1, 5, 3, 7});  // r is bit-reversed
}

// out[k] = sum_l a[k][l].
NCG_INLINE v16f sum16(const v16f* a) {
  v16f b[8], c[4], d[2];
  for (int j = 0; j < 8; ++j) {  // b[j] = [8-lane sums of a[j], of a[j + 8]]
    b[j] = __builtin_shuffle(a[j], a[j + 8], (v16i){0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}) +
           __builtin_shuffle(a[j], a[j + 8], (v16i){8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31});
  }
  for (int j = 0; j < 4; ++j) {  // 4-lane sums of rows j, j + 8, j + 4, j + 12
    c[j] = __builtin_shuffle(b[j], b[j + 4], (v16i){0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27}) +
           __builtin_shuffle(b[j], b[j + 4], (v16i){4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31});
  }
  for (int j = 0; j < 2; ++j) {
    d[j] = __builtin_shuffle(c[j], c[j + 2], (v16i){0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29}) +
           __builtin_shuffle(c[j], c[j + 2], (v16i){2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31});
  }
  const v16f r = __builtin_shuffle(d[0], d[1], (v16i){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}) +
                 __builtin_shuffle(d[0], d[1], (v16i){1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31});
  return __builtin_shuffle(r, (v16i){0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15});  // r is bit-reversed
}
#endif

template <typename T, int64_t N>
NCG_INLINE void push_row(T* __restrict__ d, T wv, const T* gp) {
  for (int64_t t = 0; t < N; ++t) d[t] += wv * gp[t];
}

#if NCG_X86_DISPATCH
NCG_INLINE v16f lane_sums(const v16f* a) { return sum16(a); }
NCG_INLINE v8f lane_sums(const v8f* a) { return sum8(a); }

// The slots e.. of one row in groups of as many edges as V has lanes: each edge pushed as in the
// one-at-a-time loop, its products with gp kept in one lane vector, the group's vectors summed
// together into dw; returns the first slot left for that loop.
template <typename V, int64_t N>
NCG_INLINE int64_t grouped_edge_gradients(const CsrArgs<float>& a, int64_t e, int64_t last, const float* h,
                                          float* dh, const float* gp, float* dw) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  for (; e + kLanes <= last; e += kLanes) {
    V acc[kLanes];
    for (int j = 0; j < kLanes; ++j) {
      const int64_t s = a.src[e + j];
      if (s >= a.push_from) push_row<float, N>(dh + s * a.lddh, a.w[e + j], gp);
      const float* x = h + s * a.ldh;
      V lanes = load_vec<V>(x) * load_vec<V>(gp);
      for (int64_t t = kLanes; t < N; t += kLanes) lanes += load_vec<V>(x + t) * load_vec<V>(gp + t);
      acc[j] = lanes;
    }
    const V sums = load_vec<V>(dw + e) + lane_sums(acc);
    std::memcpy(dw + e, &sums, sizeof(sums));
  }
  return e;
}
#endif

// With kGrad, each slot's dL/dw over this tile's columns, <h[src[e]], g[p]>, is added to
// a.dw[e - indptr[start]] while the slot's source rows are loaded for the push anyway.
template <typename T, int64_t N, bool kGrad>
NCG_INLINE void csr_backward_tile(const CsrArgs<T>& a, int64_t col) {
  const T* h = a.h + col;
  T* dh = a.dh + col;
  T* g = a.g + col;
  const T* z = a.z != nullptr ? a.z + col : nullptr;
  T* dw = kGrad ? a.dw - a.indptr[a.start] : nullptr;
  for (int64_t p = a.end - 1; p >= a.start; --p) {
    T gp[N];
    derivative_row<T, N>(a.codes[p], dh + p * a.lddh, h + p * a.ldh, z != nullptr ? z + p * a.ldz : nullptr, gp);
    T* __restrict__ gr = g + p * a.ldg;
    for (int64_t t = 0; t < N; ++t) gr[t] = gp[t];
    int64_t e = a.indptr[p];
    const int64_t last = a.indptr[p + 1];
#if NCG_X86_DISPATCH
    if constexpr (kGrad && std::is_same_v<T, float> && N == 128) {
      e = grouped_edge_gradients<v16f, N>(a, e, last, h, dh, gp, dw);
    } else if constexpr (kGrad && std::is_same_v<T, float> && N == 64) {
      e = grouped_edge_gradients<v8f, N>(a, e, last, h, dh, gp, dw);
    }
#endif
    for (; e < last; ++e) {
      const T wv = a.w[e];
      const int64_t s = a.src[e];
      if (s >= a.push_from) push_row<T, N>(dh + s * a.lddh, wv, gp);
      if constexpr (kGrad) dw[e] += dot_row<T, N>(h + s * a.ldh, gp);
    }
  }
}

template <typename T, int64_t N>
NCG_INLINE void csr_backward_tile(const CsrArgs<T>& a, int64_t col) {
  if (a.dw != nullptr) {
    csr_backward_tile<T, N, true>(a, col);
  } else {
    csr_backward_tile<T, N, false>(a, col);
  }
}

// ---------------------------------------------------------------- whole-network inference

// Inference over a plan whose blocks are all sparse, in one call: batch-major x in, batch-major
// outputs out. Each tile of columns is evaluated in a thread-private [n, tile] scratch that
// stays in the caches: rows start as the biases, the input nodes' rows take their features, the
// CSR forward runs over every row, and the output rows are copied out. Nothing of size [N, B]
// exists, and no autograd state is kept.
template <typename T>
struct InferArgs {
  const T* x;                 // [B, F], row stride ldx
  int64_t ldx, features;
  const int64_t* input_pos;   // [F]: the row of input node f
  const T* bias;              // [n], position order
  const uint8_t* codes;
  const int64_t* indptr;
  const int32_t* src;
  const T* w;
  int64_t n;
  const int64_t* out_pos;     // [K]
  int64_t outputs;
  T* out;                     // [B, K]
};

// Columns col..col+cols-1 (cols <= N) through the scratch s ([n, N]).
template <typename T, int64_t N>
NCG_INLINE void infer_tile(const InferArgs<T>& a, int64_t col, int64_t cols, T* __restrict__ s) {
  for (int64_t p = 0; p < a.n; ++p) {
    const T b = a.bias[p];
    for (int64_t t = 0; t < N; ++t) s[p * N + t] = b;
  }
  // Feature-major, so that each input row of the scratch is written contiguously; the tile's
  // rows of x (cols x F) stay in the caches while their lines are read 16 features at a time.
  const T* __restrict__ xt = a.x + col * a.ldx;
  for (int64_t f = 0; f < a.features; ++f) {
    T* __restrict__ row = s + a.input_pos[f] * N;
    for (int64_t t = 0; t < cols; ++t) row[t] = xt[t * a.ldx + f];
  }
  const CsrArgs<T> c{s, s, nullptr, nullptr, N, N, N, N, a.codes, a.indptr, a.src, a.w, 0, a.n, nullptr, 0};
  csr_forward_tile<T, N>(c, 0);
  for (int64_t t = 0; t < cols; ++t) {
    T* __restrict__ o = a.out + (col + t) * a.outputs;
    for (int64_t k = 0; k < a.outputs; ++k) o[k] = s[a.out_pos[k] * N + t];
  }
}

// One column (a batch of one, or the columns past the last full tile): each row's sum runs in
// four independent partial sums, so that it is not one chain of dependent adds.
template <typename T>
void infer_column(const InferArgs<T>& a, int64_t col, T* __restrict__ s) {
  for (int64_t p = 0; p < a.n; ++p) s[p] = a.bias[p];
  const T* __restrict__ xr = a.x + col * a.ldx;
  for (int64_t f = 0; f < a.features; ++f) s[a.input_pos[f]] = xr[f];
  for (int64_t p = 0; p < a.n; ++p) {
    const int64_t end = a.indptr[p + 1];
    int64_t e = a.indptr[p];
    if (e == end && a.codes[p] == kIdentity) continue;
    T part[4] = {T(0), T(0), T(0), T(0)};
    for (; e + 4 <= end; e += 4) {
      for (int64_t k = 0; k < 4; ++k) part[k] += a.w[e + k] * s[a.src[e + k]];
    }
    for (; e < end; ++e) part[0] += a.w[e] * s[a.src[e]];
    T z = s[p] + ((part[0] + part[1]) + (part[2] + part[3]));
    activate_row<T, 1>(a.codes[p], &z, s + p);
  }
  T* __restrict__ o = a.out + col * a.outputs;
  for (int64_t k = 0; k < a.outputs; ++k) o[k] = s[a.out_pos[k]];
}

// ---------------------------------------------------------------- per-instruction-set entry points

// Sweeps tiles [begin, end) of full width.
template <typename T>
struct TileKernels {
  int64_t tile;
  void (*forward)(const ForwardArgs<T>&, int64_t begin, int64_t end);
  void (*backward)(const BackwardArgs<T>&, int64_t begin, int64_t end);
  void (*csr_forward)(const CsrArgs<T>&, int64_t begin, int64_t end);
  void (*csr_backward)(const CsrArgs<T>&, int64_t begin, int64_t end);
  void (*infer)(const InferArgs<T>&, int64_t begin, int64_t end);
  // The backward with the weight gradient over tiles of twice the width: each slot's dL/dw
  // costs one horizontal reduction per tile, so wider tiles halve them.
  void (*csr_backward_wide)(const CsrArgs<T>&, int64_t begin, int64_t end);
};

// One forward and one backward entry point for element type T and a tile of WIDTH_BYTES bytes
// per row, compiled with the given function attributes (an instruction set).
#define NCG_TILE_KERNELS(NAME, T, WIDTH_BYTES, ATTRIBUTES)                                 \
  constexpr int64_t NAME##_tile = (WIDTH_BYTES) / sizeof(T);                               \
  ATTRIBUTES void NAME##_forward(const ForwardArgs<T>& a, int64_t begin, int64_t end) {    \
    for (int64_t k = begin; k < end; ++k) forward_tile<T, NAME##_tile>(a, k * NAME##_tile); \
  }                                                                                         \
  ATTRIBUTES void NAME##_backward(const BackwardArgs<T>& a, int64_t begin, int64_t end) {  \
    for (int64_t k = begin; k < end; ++k) {                                                 \
      backward_tile<T, NAME##_tile>(a, k * NAME##_tile);                                    \
    }                                                                                       \
  }                                                                                         \
  ATTRIBUTES void NAME##_csr_forward(const CsrArgs<T>& a, int64_t begin, int64_t end) {    \
    for (int64_t k = begin; k < end; ++k) csr_forward_tile<T, NAME##_tile>(a, k * NAME##_tile); \
  }                                                                                         \
  ATTRIBUTES void NAME##_csr_backward(const CsrArgs<T>& a, int64_t begin, int64_t end) {   \
    for (int64_t k = begin; k < end; ++k) {                                                 \
      csr_backward_tile<T, NAME##_tile>(a, k * NAME##_tile);                                \
    }                                                                                       \
  }                                                                                         \
  ATTRIBUTES void NAME##_infer(const InferArgs<T>& a, int64_t begin, int64_t end) {        \
    std::unique_ptr<T[]> scratch(new T[a.n * NAME##_tile]);                                 \
    for (int64_t k = begin; k < end; ++k) {                                                 \
      infer_tile<T, NAME##_tile>(a, k * NAME##_tile, NAME##_tile, scratch.get());           \
    }                                                                                       \
  }                                                                                         \
  ATTRIBUTES void NAME##_csr_backward_wide(const CsrArgs<T>& a, int64_t begin, int64_t end) { \
    for (int64_t k = begin; k < end; ++k) {                                                 \
      csr_backward_tile<T, 2 * NAME##_tile>(a, k * 2 * NAME##_tile);                        \
    }                                                                                       \
  }                                                                                         \
  constexpr TileKernels<T> NAME{NAME##_tile, NAME##_forward, NAME##_backward, NAME##_csr_forward, \
                                NAME##_csr_backward, NAME##_infer, NAME##_csr_backward_wide};

#if NCG_X86_DISPATCH
#define NCG_AVX2 __attribute__((target("avx2,fma")))
#define NCG_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))

// Four vector registers per row: SSE2 16 B, AVX2 32 B, AVX-512 64 B.
NCG_TILE_KERNELS(sse2_f32, float, 64, )
NCG_TILE_KERNELS(sse2_f64, double, 64, )
NCG_TILE_KERNELS(avx2_f32, float, 128, NCG_AVX2)
NCG_TILE_KERNELS(avx2_f64, double, 128, NCG_AVX2)
NCG_TILE_KERNELS(avx512_f32, float, 256, NCG_AVX512)
NCG_TILE_KERNELS(avx512_f64, double, 256, NCG_AVX512)

// The widest instruction set that this CPU (and OS) supports.
template <typename T>
TileKernels<T> pick(const TileKernels<T>& sse2, const TileKernels<T>& avx2,
                    const TileKernels<T>& avx512) {
  __builtin_cpu_init();
  const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (has_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
    return avx512;
  }
  return has_avx2 ? avx2 : sse2;
}

const TileKernels<float>& kernels(float) {
  static const TileKernels<float> chosen = pick(sse2_f32, avx2_f32, avx512_f32);
  return chosen;
}
const TileKernels<double>& kernels(double) {
  static const TileKernels<double> chosen = pick(sse2_f64, avx2_f64, avx512_f64);
  return chosen;
}
#else
NCG_TILE_KERNELS(generic_f32, float, 128, )
NCG_TILE_KERNELS(generic_f64, double, 128, )
const TileKernels<float>& kernels(float) { return generic_f32; }
const TileKernels<double>& kernels(double) { return generic_f64; }
#endif

// ---------------------------------------------------------------- threads

// Threads whose caller never waits for one that has not started. at::parallel_for (OpenMP) splits
// a range statically and ends at a barrier, so on a machine where another process holds a core
// the caller spins at the barrier for a thread that is not running: with two threads and one busy
// process on two cores, steps were 25-80x slower than on one thread. Here the range is cut into
// chunks that threads claim from a counter; the caller claims too, and at the end waits only for
// chunks already claimed (being run). A helper that wakes late finds nothing left and sleeps again.
// Chunk boundaries depend on the range and the thread count only, never on who runs a chunk, so
// results do not depend on scheduling.
class Pool {
 public:
  using Body = std::function<void(int64_t, int64_t)>;

  static Pool& instance() {
    static std::once_flag registered;
    std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, [] { current() = new Pool(); }); });
    return *current();
  }

  // body(lo, hi) over [begin, end) in chunks of at least `grain`, on up to at::get_num_threads()
  // threads, the caller included.
  void run(int64_t begin, int64_t end, int64_t grain, const Body& body) {
    const int64_t range = end - begin;
    if (range <= 0) return;
    const int threads = std::max(1, at::get_num_threads());
    const int64_t most = (range + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1);
    if (threads == 1 || most <= 1) {
      body(begin, end);
      return;
    }
    auto job = std::make_shared<Job>();
    job->body = &body;
    job->begin = begin;
    job->end = end;
    const int64_t chunks = std::min<int64_t>(most, 4 * static_cast<int64_t>(threads));
    job->size = (range + chunks - 1) / chunks;
    job->chunks = (range + job->size - 1) / job->size;
    job->max_helpers = threads - 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (; workers_ < threads - 1; ++workers_) std::thread([this] { serve(); }).detach();
      job_ = job;
      ++generation_;
    }
    wake_.notify_all();
    job->work();
    while (job->done.load(std::memory_order_acquire) < job->chunks) std::this_thread::yield();
    std::lock_guard<std::mutex> lock(mutex_);
    if (job_ == job) job_.reset();
  }

 private:
  struct Job {
    const Body* body = nullptr;  // the caller's: only called for chunks claimed before it returns
    int64_t begin = 0, end = 0, size = 1, chunks = 0;
    int max_helpers = 0;
    std::atomic<int64_t> next{0}, done{0};
    std::atomic<int> helpers{0};

    void work() {
      for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
        const int64_t lo = begin + c * size;
        (*body)(lo, std::min(end, lo + size));
        done.fetch_add(1, std::memory_order_release);
      }
    }
  };

  // Pools are never destroyed (detached workers hold `this`); a forked child, which has none of
  // the parent's threads, starts a new one.
  static Pool*& current() {
    static Pool* pool = new Pool();
    return pool;
  }

  void serve() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
      }
      if (job && job->helpers.fetch_add(1) < job->max_helpers) job->work();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
  int workers_ = 0;
};

void parallel_chunks(int64_t begin, int64_t end, int64_t grain, const Pool::Body& body) {
  Pool::instance().run(begin, end, grain, body);
}

// ---------------------------------------------------------------- drivers

// Tiles one thread takes at least: about 0.4 ms of work (2^24 row updates), so that a chunk
// amortises waking a helper thread that may find its core held by torch's OpenMP threads, still
// spinning after the previous op. Measured on the learned main-job net (batch 256): at 2^17 the
// two-thread train step took 4.1 ms against 2.7 ms on one thread; small batches therefore stay
// on the calling thread, large ones (inference at batch 10,000) still spread.
int64_t grain_in_tiles(int64_t tile, int64_t b, int64_t entries) {
  constexpr int64_t kMinUpdatesPerChunk = 1 << 24;
  const int64_t per_tile = tile * (2 * entries + b);
  return std::max<int64_t>(1, (kMinUpdatesPerChunk + per_tile - 1) / per_tile);
}

bool unit_column_stride(const at::Tensor& t) { return t.size(1) <= 1 || t.stride(1) == 1; }

// t itself when its rows are contiguous (any row stride, e.g. a diagonal block of a larger
// matrix), else a contiguous copy.
at::Tensor with_unit_column_stride(const at::Tensor& t) {
  return unit_column_stride(t) ? t : t.contiguous();
}

// Copies `count` columns of b rows between two row-strided buffers.
template <typename T>
void copy_columns(const T* src, int64_t lds, T* dst, int64_t ldd, int64_t b, int64_t count) {
  for (int64_t r = 0; r < b; ++r) std::memcpy(dst + r * ldd, src + r * lds, count * sizeof(T));
}

template <typename T>
void forward_impl(at::Tensor& z, const at::Tensor& w, const uint8_t* codes, at::Tensor& h) {
  const TileKernels<T>& kern = kernels(T());
  const int64_t tile = kern.tile;
  const int64_t b = z.size(0), cols = z.size(1);
  const at::Tensor wr = with_unit_column_stride(w);
  std::unique_ptr<T[]> wt(new T[b * b]);
  transpose_strict_upper(wr.data_ptr<T>(), wr.stride(0), b, wt.get());
  const PairLists<T> lists = pair_lists<T>(wt.get(), b, b, /*forward=*/true);
  const ForwardArgs<T> a{z.data_ptr<T>(), h.data_ptr<T>(), z.stride(0), h.stride(0), codes,
                         &lists};
  const int64_t full = cols / tile;
  if (full > 0) {
    const int64_t grain = grain_in_tiles(tile, b, lists.ptr.back());
    parallel_chunks(0, full, grain, [&](int64_t begin, int64_t end) {
      kern.forward(a, begin, end);
    });
  }
  const int64_t rest = cols - full * tile, col = full * tile;
  if (rest > 0) {
    std::vector<T> z_pad(b * tile, T(0)), h_pad(b * tile, T(0));
    copy_columns(a.z + col, a.ldz, z_pad.data(), tile, b, rest);
    const ForwardArgs<T> pad{z_pad.data(), h_pad.data(), tile, tile, codes, &lists};
    kern.forward(pad, 0, 1);
    copy_columns(z_pad.data(), tile, a.z + col, a.ldz, b, rest);
    copy_columns(h_pad.data(), tile, a.h + col, a.ldh, b, rest);
  }
}

// z: the pre-activations (unit column stride), or undefined when no code needs them.
template <typename T>
void backward_impl(const at::Tensor& h, const at::Tensor& w, const uint8_t* codes, at::Tensor& dh,
                   at::Tensor& g, const at::Tensor& z) {
  const TileKernels<T>& kern = kernels(T());
  const int64_t tile = kern.tile;
  const int64_t b = h.size(0), cols = h.size(1);
  const at::Tensor wr = with_unit_column_stride(w);
  const PairLists<T> lists = pair_lists<T>(wr.data_ptr<T>(), wr.stride(0), b, /*forward=*/false);
  const BackwardArgs<T> a{h.data_ptr<T>(), dh.data_ptr<T>(), g.data_ptr<T>(),
                          h.stride(0),     dh.stride(0),     g.stride(0),
                          codes,           &lists,           z.defined() ? z.data_ptr<T>() : nullptr,
                          z.defined() ? z.stride(0) : 0};
  const int64_t full = cols / tile;
  if (full > 0) {
    const int64_t grain = grain_in_tiles(tile, b, lists.ptr.back());
    parallel_chunks(0, full, grain, [&](int64_t begin, int64_t end) {
      kern.backward(a, begin, end);
    });
  }
  const int64_t rest = cols - full * tile, col = full * tile;
  if (rest > 0) {
    std::vector<T> h_pad(b * tile, T(0)), dh_pad(b * tile, T(0)), g_pad(b * tile, T(0));
    std::vector<T> z_pad(a.z != nullptr ? b * tile : 0, T(0));
    copy_columns(a.h + col, a.ldh, h_pad.data(), tile, b, rest);
    copy_columns(a.dh + col, a.lddh, dh_pad.data(), tile, b, rest);
    if (a.z != nullptr) copy_columns(a.z + col, a.ldz, z_pad.data(), tile, b, rest);
    const BackwardArgs<T> pad{h_pad.data(), dh_pad.data(), g_pad.data(), tile, tile, tile, codes, &lists,
                              a.z != nullptr ? z_pad.data() : nullptr, tile};
    kern.backward(pad, 0, 1);
    copy_columns(dh_pad.data(), tile, a.dh + col, a.lddh, b, rest);
    copy_columns(g_pad.data(), tile, a.g + col, a.ldg, b, rest);
  }
}

// ---------------------------------------------------------------- Python entry points

// Errors are ValueErrors (TORCH_CHECK_VALUE) that name the argument, the expected and the found.
// `z` is the block's reference tensor, called `name` in the messages (z forward, h backward).
void check_block(const at::Tensor& z, const at::Tensor& w, const at::Tensor& codes, const char* name = "z") {
  TORCH_CHECK_VALUE(z.dim() == 2, name, " must be a 2-D tensor [b, B], got shape ", z.sizes());
  TORCH_CHECK_VALUE(z.device().is_cpu(), name, " must be on the CPU, got ", z.device());
  TORCH_CHECK_VALUE(z.scalar_type() == at::kFloat || z.scalar_type() == at::kDouble,
                    name, " must be float32 or float64, got ", z.scalar_type());
  const int64_t b = z.size(0);
  TORCH_CHECK_VALUE(w.dim() == 2 && w.size(0) == b && w.size(1) == b, "w must have shape [", b,
                    ", ", b, "] to match ", name, ", got ", w.sizes());
  TORCH_CHECK_VALUE(w.scalar_type() == z.scalar_type(), "w must have dtype ", z.scalar_type(),
                    " like ", name, ", got ", w.scalar_type());
  TORCH_CHECK_VALUE(w.device().is_cpu(), "w must be on the CPU like ", name, ", got ", w.device());
  TORCH_CHECK_VALUE(codes.dim() == 1 && codes.size(0) == b, "codes must have shape [", b,
                    "] to match ", name, ", got ", codes.sizes());
  TORCH_CHECK_VALUE(codes.scalar_type() == at::kByte, "codes must be uint8, got ",
                    codes.scalar_type());
  TORCH_CHECK_VALUE(codes.device().is_cpu(), "codes must be on the CPU, got ", codes.device());
}

void check_like(const char* name, const at::Tensor& t, const at::Tensor& z, const char* ref = "z") {
  TORCH_CHECK_VALUE(t.sizes() == z.sizes(), name, " must have shape ", z.sizes(),
                    " like ", ref, ", got ", t.sizes());
  TORCH_CHECK_VALUE(t.scalar_type() == z.scalar_type(), name, " must have dtype ",
                    z.scalar_type(), " like ", ref, ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == z.device(), name, " must be on ", z.device(),
                    " like ", ref, ", got ", t.device());
}

// The codes as a contiguous array, each checked to be an activation code.
at::Tensor checked_codes(const at::Tensor& codes) {
  at::Tensor c = codes.contiguous();
  const uint8_t* code = c.data_ptr<uint8_t>();
  for (int64_t j = 0; j < c.numel(); ++j) {
    TORCH_CHECK_VALUE(code[j] < kNumActivations, "codes[", j, "] = ", int(code[j]),
                      " is not an activation code (0..", int(kNumActivations) - 1, ")");
  }
  return c;
}

// The pre-activations a backward reads: z with unit column stride when given, else undefined;
// required when one of codes[begin, end) needs them.
at::Tensor checked_preactivations(const at::Tensor& codes, int64_t begin, int64_t end,
                                  const std::optional<at::Tensor>& z, const at::Tensor& h, bool contiguous) {
  if (z.has_value()) {
    check_like("z", *z, h, "h");
    if (contiguous) TORCH_CHECK_VALUE(z->is_contiguous(), "z must be contiguous");
    return contiguous ? *z : with_unit_column_stride(*z);
  }
  const uint8_t* code = codes.data_ptr<uint8_t>();
  for (int64_t j = begin; j < end; ++j) {
    TORCH_CHECK_VALUE(!needs_preactivation(code[j]), "z is required: codes[", j, "] = ", int(code[j]),
                      " is an activation whose derivative needs the pre-activation");
  }
  return at::Tensor();
}

// Where the result goes: `out` when given (rows may be strided, columns must be contiguous),
// else a new contiguous tensor.
at::Tensor result_tensor(const std::optional<at::Tensor>& out, const at::Tensor& z, const char* ref = "z") {
  if (!out.has_value()) return at::empty(z.sizes(), z.options());
  check_like("out", *out, z, ref);
  TORCH_CHECK_VALUE(unit_column_stride(*out), "out must have contiguous rows (column stride 1), ",
                    "got strides ", out->strides());
  return *out;
}

at::Tensor sweep_forward(at::Tensor z, const at::Tensor& w, const at::Tensor& codes,
                         const std::optional<at::Tensor>& out) {
  check_block(z, w, codes);
  const at::Tensor c = checked_codes(codes);
  at::Tensor h = result_tensor(out, z);
  if (z.numel() == 0) return h;
  // The kernel needs unit column stride; other layouts go through a contiguous copy.
  at::Tensor zw = with_unit_column_stride(z);
  if (z.scalar_type() == at::kFloat) {
    forward_impl<float>(zw, w, c.data_ptr<uint8_t>(), h);
  } else {
    forward_impl<double>(zw, w, c.data_ptr<uint8_t>(), h);
  }
  if (!zw.is_same(z)) z.copy_(zw);
  return h;
}

// out may be dh itself: it is then turned into g in place. z: the final pre-activations of the
// block, needed when a code's derivative is no function of h.
at::Tensor sweep_backward(const at::Tensor& h, const at::Tensor& w, const at::Tensor& codes, at::Tensor dh,
                          const std::optional<at::Tensor>& out, const std::optional<at::Tensor>& z) {
  check_block(h, w, codes, "h");
  check_like("dh", dh, h, "h");
  const at::Tensor c = checked_codes(codes);
  const at::Tensor zc = checked_preactivations(c, 0, c.numel(), z, h, /*contiguous=*/false);
  at::Tensor g = result_tensor(out, h, "h");
  if (h.numel() == 0) return g;
  const at::Tensor hc = with_unit_column_stride(h);
  at::Tensor dhw = with_unit_column_stride(dh);
  if (h.scalar_type() == at::kFloat) {
    backward_impl<float>(hc, w, c.data_ptr<uint8_t>(), dhw, g, zc);
  } else {
    backward_impl<double>(hc, w, c.data_ptr<uint8_t>(), dhw, g, zc);
  }
  if (!dhw.is_same(dh)) dh.copy_(dhw);
  return g;
}

// ---------------------------------------------------------------- sparse (CSR) drivers

// Columns past the last full tile, one at a time (the N = 1 instantiation).
template <typename T>
void csr_columns(const CsrArgs<T>& a, int64_t first, int64_t cols, bool forward) {
  for (int64_t c = first; c < cols; ++c) {
    if (forward) {
      csr_forward_tile<T, 1>(a, c);
    } else {
      csr_backward_tile<T, 1>(a, c);
    }
  }
}

template <typename T>
void csr_sweep_impl(const CsrArgs<T>& a, int64_t cols, bool forward) {
  const TileKernels<T>& kern = kernels(T());
  const int64_t tile = kern.tile;
  const int64_t full = cols / tile;
  if (full > 0) {
    const int64_t rows = a.end - a.start;
    const int64_t grain = grain_in_tiles(tile, rows, a.indptr[a.end] - a.indptr[a.start]);
    parallel_chunks(0, full, grain, [&](int64_t begin, int64_t end) {
      (forward ? kern.csr_forward : kern.csr_backward)(a, begin, end);
    });
  }
  csr_columns(a, full * tile, cols, forward);
}

// The backward with the weight gradient: the full tiles are cut into one run per chunk, each
// chunk adds its columns' share of dL/dw into its own buffer (chunk 0 into a.dw), and the
// buffers are summed; the last partial tile then adds its share.
template <typename T>
void csr_backward_with_grad(const CsrArgs<T>& a, int64_t cols) {
  const TileKernels<T>& kern = kernels(T());
  const int64_t tile = kern.tile, wide = 2 * tile;
  const int64_t full = cols / wide;
  const int64_t slots = a.indptr[a.end] - a.indptr[a.start];
  std::fill(a.dw, a.dw + slots, T(0));
  if (full > 0) {
    const int64_t grain = grain_in_tiles(wide, a.end - a.start, slots);
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), full / grain));
    std::vector<T> partial((chunks - 1) * slots, T(0));
    parallel_chunks(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        CsrArgs<T> mine = a;
        mine.dw = c == 0 ? a.dw : partial.data() + (c - 1) * slots;
        kern.csr_backward_wide(mine, c * full / chunks, (c + 1) * full / chunks);
      }
    });
    for (int64_t c = 1; c < chunks; ++c) {
      const T* part = partial.data() + (c - 1) * slots;
      for (int64_t e = 0; e < slots; ++e) a.dw[e] += part[e];
    }
  }
  // What is left: at most one tile of the regular width, then single columns.
  int64_t done = full * wide;
  if (cols - done >= tile) {
    kern.csr_backward(a, done / tile, done / tile + 1);
    done += tile;
  }
  csr_columns(a, done, cols, /*forward=*/false);
}

// Rows [start, end) of an [n, B] matrix and a CSR whose slots there point at earlier rows.
void check_structure(int64_t n, const at::Tensor& indptr, const at::Tensor& src, int64_t start, int64_t end) {
  TORCH_CHECK_VALUE(0 <= start && start <= end && end <= n, "rows [", start, ", ", end,
                    ") must lie in [0, ", n, "]");
  TORCH_CHECK_VALUE(indptr.dim() == 1 && indptr.size(0) == n + 1 && indptr.scalar_type() == at::kLong &&
                        indptr.is_contiguous() && indptr.device().is_cpu(),
                    "indptr must be a contiguous int64 CPU tensor of shape [", n + 1, "], got ",
                    indptr.sizes(), " ", indptr.scalar_type());
  TORCH_CHECK_VALUE(src.dim() == 1 && src.scalar_type() == at::kInt && src.is_contiguous() &&
                        src.device().is_cpu(),
                    "src must be a contiguous int32 CPU tensor [E], got ", src.sizes(), " ",
                    src.scalar_type());
  const int64_t* ip = indptr.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(ip[0] == 0 && ip[n] == src.size(0), "indptr must run from 0 to E = ", src.size(0),
                    ", got ", ip[0], " .. ", ip[n]);
  const int32_t* sp = src.data_ptr<int32_t>();
  for (int64_t p = start; p < end; ++p) {
    TORCH_CHECK_VALUE(ip[p] <= ip[p + 1], "indptr must be non-decreasing, got indptr[", p, "] = ", ip[p],
                      " > indptr[", p + 1, "] = ", ip[p + 1]);
    for (int64_t e = ip[p]; e < ip[p + 1]; ++e) {
      TORCH_CHECK_VALUE(0 <= sp[e] && sp[e] < p, "src[", e, "] = ", sp[e],
                        " must be an earlier row than its target ", p);
    }
  }
}

void check_matrix(const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.dim() == 2 && t.is_contiguous(), name, " must be a contiguous 2-D tensor [N, B], got shape ",
                    t.sizes(), " strides ", t.strides());
  TORCH_CHECK_VALUE(t.device().is_cpu(), name, " must be on the CPU, got ", t.device());
  TORCH_CHECK_VALUE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
                    name, " must be float32 or float64, got ", t.scalar_type());
}

// A contiguous 1-D CPU tensor of `size` entries of `dtype`.
void check_vector(const char* name, const at::Tensor& t, int64_t size, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == size && t.is_contiguous() && t.scalar_type() == dtype &&
                        t.device().is_cpu(),
                    name, " must be a contiguous [", size, "] CPU tensor of dtype ", dtype, ", got ", t.sizes(), " ",
                    t.scalar_type());
}

void check_csr(const at::Tensor& z, const at::Tensor& indptr, const at::Tensor& src,
               const at::Tensor& w, const at::Tensor& codes, int64_t start, int64_t end, const char* name = "z") {
  check_matrix(name, z);
  const int64_t n = z.size(0);
  check_structure(n, indptr, src, start, end);
  check_vector("w", w, src.size(0), z.scalar_type());
  TORCH_CHECK_VALUE(codes.dim() == 1 && codes.size(0) == n && codes.scalar_type() == at::kByte,
                    "codes must be uint8 of shape [", n, "], got ", codes.sizes(), " ",
                    codes.scalar_type());
}

template <typename T>
CsrArgs<T> csr_args(const at::Tensor& z, const at::Tensor& h, T* dh, T* g, int64_t ld,
                    const uint8_t* codes, const at::Tensor& indptr, const at::Tensor& src,
                    const at::Tensor& w, int64_t start, int64_t end, T* dw = nullptr, int64_t push_from = 0) {
  return CsrArgs<T>{z.data_ptr<T>(),           h.data_ptr<T>(),         dh, g, ld, ld, ld, ld, codes,
                    indptr.data_ptr<int64_t>(), src.data_ptr<int32_t>(), w.data_ptr<T>(), start, end, dw,
                    push_from};
}

void check_full(const char* name, const at::Tensor& t, const at::Tensor& z, const char* ref = "z") {
  check_like(name, t, z, ref);
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

void csr_sweep_forward(at::Tensor z, at::Tensor h, const at::Tensor& indptr, const at::Tensor& src,
                       const at::Tensor& w, const at::Tensor& codes, int64_t start, int64_t end) {
  check_csr(z, indptr, src, w, codes, start, end);
  check_full("h", h, z);
  const at::Tensor c = checked_codes(codes);
  const int64_t ld = z.size(1);
  if (ld == 0) return;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "csr_sweep_forward", [&] {
    const auto a = csr_args<scalar_t>(z, h, nullptr, nullptr, ld, c.data_ptr<uint8_t>(), indptr, src, w, start, end);
    csr_sweep_impl<scalar_t>(a, ld, /*forward=*/true);
  });
}

// g may be dh itself: row p of dh is read before g[p] is written, and dh only receives pushes
// to rows before p. With dw ([E] for all slots, or [slots of start:end]), dL/dw of the slots of
// rows [start, end) is written there.
// Rows below push_from (the input nodes, whose dL/dh nobody reads) receive no pushes. z ([N, B]
// like h): the pre-activations, needed when a code of rows [start, end) is no function of h.
void csr_sweep_backward(const at::Tensor& h, at::Tensor dh, at::Tensor g, const at::Tensor& indptr,
                        const at::Tensor& src, const at::Tensor& w, const at::Tensor& codes, int64_t start,
                        int64_t end, const std::optional<at::Tensor>& dw, int64_t push_from,
                        const std::optional<at::Tensor>& z) {
  check_csr(h, indptr, src, w, codes, start, end, "h");
  check_full("dh", dh, h, "h");
  check_full("g", g, h, "h");
  const int64_t* ip = indptr.data_ptr<int64_t>();
  if (dw.has_value()) {
    TORCH_CHECK_VALUE(dw->dim() == 1 && dw->size(0) == ip[end] - ip[start] && dw->is_contiguous() &&
                          dw->scalar_type() == h.scalar_type() && dw->device().is_cpu(),
                      "dw must be a contiguous [", ip[end] - ip[start], "] CPU tensor of dtype ", h.scalar_type(),
                      " (one entry per slot of rows [", start, ", ", end, ")), got ", dw->sizes(), " ",
                      dw->scalar_type());
  }
  const at::Tensor c = checked_codes(codes);
  const at::Tensor zc = checked_preactivations(c, start, end, z, h, /*contiguous=*/true);
  const int64_t ld = h.size(1);
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "csr_sweep_backward", [&] {
    auto a = csr_args<scalar_t>(h, h, dh.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), ld,
                                c.data_ptr<uint8_t>(), indptr, src, w, start, end,
                                dw.has_value() ? dw->data_ptr<scalar_t>() : nullptr, push_from);
    a.z = zc.defined() ? zc.data_ptr<scalar_t>() : nullptr;
    if (a.dw != nullptr) {
      csr_backward_with_grad<scalar_t>(a, ld);
    } else if (ld > 0) {
      csr_sweep_impl<scalar_t>(a, ld, /*forward=*/false);
    }
  });
}

// out[k] = sum_t a[ra[k], t] * b[rb[k], t] for chosen row pairs of two [N, B] matrices (a
// sampled dense-dense product: the gradients of candidate edges), spread over pairs.
template <typename T>
void pair_dots_impl(const T* a, const T* b, int64_t cols, const int64_t* ra, const int64_t* rb, T* out,
                    int64_t begin, int64_t end) {
  constexpr int64_t kLanes = 16;
  for (int64_t k = begin; k < end; ++k) {
    const T* __restrict__ x = a + ra[k] * cols;
    const T* __restrict__ y = b + rb[k] * cols;
    T lanes[kLanes] = {};
    int64_t t = 0;
    for (; t + kLanes <= cols; t += kLanes) {
      for (int64_t l = 0; l < kLanes; ++l) lanes[l] += x[t + l] * y[t + l];
    }
    T sum = T(0);
    for (; t < cols; ++t) sum += x[t] * y[t];
    for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
    out[k] = sum;
  }
}

void check_rows(const char* name, const at::Tensor& rows, int64_t count, int64_t n) {
  TORCH_CHECK_VALUE(rows.dim() == 1 && rows.size(0) == count && rows.scalar_type() == at::kLong &&
                        rows.is_contiguous() && rows.device().is_cpu(),
                    name, " must be a contiguous int64 CPU tensor of shape [", count, "], got ", rows.sizes(), " ",
                    rows.scalar_type());
  const int64_t* r = rows.data_ptr<int64_t>();
  for (int64_t k = 0; k < count; ++k) {
    TORCH_CHECK_VALUE(0 <= r[k] && r[k] < n, name, "[", k, "] = ", r[k], " is not a row of [0, ", n, ")");
  }
}

at::Tensor pair_dots(const at::Tensor& a, const at::Tensor& b, const at::Tensor& rows_a, const at::Tensor& rows_b) {
  check_matrix("a", a);
  check_full("b", b, a, "a");
  const int64_t count = rows_a.dim() == 1 ? rows_a.size(0) : -1;
  check_rows("rows_a", rows_a, count, a.size(0));
  check_rows("rows_b", rows_b, count, a.size(0));
  at::Tensor out = at::empty({count}, a.options());
  const int64_t cols = a.size(1);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "pair_dots", [&] {
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, cols));
    parallel_chunks(0, count, grain, [&](int64_t begin, int64_t end) {
      pair_dots_impl<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), cols, rows_a.data_ptr<int64_t>(),
                               rows_b.data_ptr<int64_t>(), out.data_ptr<scalar_t>(), begin, end);
    });
  });
  return out;
}


// Whole-network inference of a plan whose blocks are all sparse (see InferArgs). `check`
// validates the CSR structure (O(E)); callers that hold a plan from build_plan check it once.
at::Tensor csr_infer(const at::Tensor& x, const at::Tensor& input_pos, const at::Tensor& bias,
                     const at::Tensor& indptr, const at::Tensor& src, const at::Tensor& w,
                     const at::Tensor& codes, const at::Tensor& out_pos, bool check) {
  TORCH_CHECK_VALUE(x.dim() == 2 && x.device().is_cpu() && x.stride(1) == 1 &&
                        (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble),
                    "x must be a float32/float64 CPU tensor [B, F] with contiguous rows, got ", x.sizes(), " ",
                    x.scalar_type(), " strides ", x.strides());
  const int64_t n = bias.dim() == 1 ? bias.size(0) : -1;
  TORCH_CHECK_VALUE(bias.dim() == 1 && bias.is_contiguous() && bias.scalar_type() == x.scalar_type(),
                    "bias must be a contiguous [N] tensor of dtype ", x.scalar_type(), ", got ", bias.sizes(), " ",
                    bias.scalar_type());
  check_vector("w", w, src.size(0), x.scalar_type());
  TORCH_CHECK_VALUE(codes.dim() == 1 && codes.size(0) == n && codes.scalar_type() == at::kByte &&
                        codes.is_contiguous(),
                    "codes must be contiguous uint8 of shape [", n, "], got ", codes.sizes(), " ", codes.scalar_type());
  const int64_t features = x.size(1);
  if (check) {
    check_structure(n, indptr, src, 0, n);
    checked_codes(codes);
    check_rows("input_pos", input_pos, features, n);
    check_rows("out_pos", out_pos, out_pos.dim() == 1 ? out_pos.size(0) : -1, n);
  }
  const int64_t cols = x.size(0), outputs = out_pos.size(0);
  at::Tensor out = at::empty({cols, outputs}, x.options());
  if (cols == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "csr_infer", [&] {
    const InferArgs<scalar_t> a{x.data_ptr<scalar_t>(), x.stride(0), features, input_pos.data_ptr<int64_t>(),
                                bias.data_ptr<scalar_t>(), codes.data_ptr<uint8_t>(), indptr.data_ptr<int64_t>(),
                                src.data_ptr<int32_t>(), w.data_ptr<scalar_t>(), n, out_pos.data_ptr<int64_t>(),
                                outputs, out.data_ptr<scalar_t>()};
    const TileKernels<scalar_t>& kern = kernels(scalar_t());
    const int64_t full = cols / kern.tile;
    if (full > 0) {
      const int64_t grain = grain_in_tiles(kern.tile, n, src.size(0));
      parallel_chunks(0, full, grain, [&](int64_t begin, int64_t end) { kern.infer(a, begin, end); });
    }
    std::vector<scalar_t> scratch(n);
    for (int64_t c = full * kern.tile; c < cols; ++c) infer_column<scalar_t>(a, c, scratch.data());
  });
  return out;
}

// ---------------------------------------------------------------- whole-network training step

// The training forward and backward of a network whose F input nodes are rows 0..F-1 of the
// position order (feature order) and whose plan is all sparse, one call each: the features'
// transpose, the biases, the weights' gather into slot order, the sweep, and on the way back the
// output rows' gradient, the sweep, the weight gradient's scatter into edge order and the bias
// gradient. Rows 0..F-1 have no incoming edges and need no gradient, so no pass touches them
// but the transpose that fills them and the weight gradient's reads.

// rows: each of the rows [lo, n) exactly once (check_rows, and no row twice or below lo).
void check_distinct_rows(const char* name, const at::Tensor& rows, int64_t lo, int64_t n) {
  check_rows(name, rows, n - lo, n);
  std::vector<char> seen(n, 0);
  const int64_t* r = rows.data_ptr<int64_t>();
  for (int64_t k = 0; k < n - lo; ++k) {
    TORCH_CHECK_VALUE(r[k] >= lo && !seen[r[k]], name, "[", k, "] = ", r[k], " must be a distinct row of [", lo,
                      ", ", n, ")");
    seen[r[k]] = 1;
  }
}

// Validates what graph_forward / graph_backward index with, once per plan: the CSR, the codes
// (no code of rows F.. needs z), bias_pos (a permutation of the rows F..N-1), out_pos and edge.
void check_graph(int64_t n, int64_t features, const at::Tensor& bias_pos, const at::Tensor& edge,
                 const at::Tensor& indptr, const at::Tensor& src, const at::Tensor& codes, const at::Tensor& out_pos) {
  TORCH_CHECK_VALUE(0 <= features && features <= n, "features = ", features, " must lie in [0, ", n, "]");
  check_structure(n, indptr, src, 0, n);
  const int64_t* ip = indptr.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(ip[features] == 0, "the input rows 0..", features - 1, " must have no incoming edges, got ",
                    ip[features]);
  TORCH_CHECK_VALUE(codes.dim() == 1 && codes.size(0) == n && codes.is_contiguous(), "codes must be contiguous [",
                    n, "], got ", codes.sizes());
  checked_preactivations(checked_codes(codes), features, n, std::nullopt, at::Tensor(), false);
  check_distinct_rows("bias_pos", bias_pos, features, n);
  check_rows("out_pos", out_pos, out_pos.dim() == 1 ? out_pos.size(0) : -1, n);
  check_distinct_rows("edge", edge, 0, src.size(0));
}

// dst[f * rows + t] = x[t * ldx + f * stride] for t < rows, f < features: x [rows, features]
// transposed into the first rows of a [N, rows] matrix, 64 of its columns at a time so that the
// lines of those rows of x stay in L1 while each destination row is written contiguously.
template <typename T>
void transpose_into(const T* x, int64_t ldx, int64_t stride, int64_t rows, int64_t features, T* dst) {
  constexpr int64_t kBlock = 64;
  for (int64_t t0 = 0; t0 < rows; t0 += kBlock) {
    const int64_t t1 = std::min(rows, t0 + kBlock);
    for (int64_t f = 0; f < features; ++f) {
      T* __restrict__ row = dst + f * rows;
      const T* __restrict__ col = x + f * stride;
      for (int64_t t = t0; t < t1; ++t) row[t] = col[t * ldx];
    }
  }
}

// h [N, B] (rows 0..F-1 the features, row p >= F act(z[p])), the output rows [K, B] and the
// weights in slot order, which the backward reads.
std::vector<at::Tensor> graph_forward(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& bias_pos,
                                      const at::Tensor& weight, const at::Tensor& edge, const at::Tensor& indptr,
                                      const at::Tensor& src, const at::Tensor& codes, const at::Tensor& out_pos,
                                      bool check) {
  TORCH_CHECK_VALUE(x.dim() == 2 && x.device().is_cpu() &&
                        (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble),
                    "x must be a float32/float64 CPU tensor [B, F], got ", x.sizes(), " ", x.scalar_type());
  const int64_t n = indptr.dim() == 1 ? indptr.size(0) - 1 : -1, features = x.size(1), cols = x.size(0);
  check_vector("bias", bias, n - features, x.scalar_type());
  check_vector("weight", weight, src.size(0), x.scalar_type());
  if (check) check_graph(n, features, bias_pos, edge, indptr, src, codes, out_pos);
  at::Tensor h = at::empty({n, cols}, x.options());
  at::Tensor w_slot = at::empty(weight.sizes(), weight.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "graph_forward", [&] {
    scalar_t* hp = h.data_ptr<scalar_t>();
    transpose_into(x.data_ptr<scalar_t>(), x.stride(0), x.stride(1), cols, features, hp);
    const scalar_t* b = bias.data_ptr<scalar_t>();
    const int64_t* bp = bias_pos.data_ptr<int64_t>();
    for (int64_t k = 0; k < n - features; ++k) std::fill(hp + bp[k] * cols, hp + (bp[k] + 1) * cols, b[k]);
    const scalar_t* w = weight.data_ptr<scalar_t>();
    scalar_t* ws = w_slot.data_ptr<scalar_t>();
    const int64_t* ed = edge.data_ptr<int64_t>();
    for (int64_t s = 0; s < w_slot.size(0); ++s) ws[s] = w[ed[s]];
    if (cols > 0) {
      const auto a = csr_args<scalar_t>(h, h, nullptr, nullptr, cols, codes.data_ptr<uint8_t>(), indptr, src, w_slot,
                                        features, n);
      csr_sweep_impl<scalar_t>(a, cols, /*forward=*/true);
    }
  });
  return {h, h.index_select(0, out_pos), w_slot};
}

// {dL/dweight in edge order (undefined unless need_weight), dL/dbias (undefined unless
// need_bias)} from h, w_slot (graph_forward's) and the output rows' gradient grad_out [K, B].
std::vector<at::Tensor> graph_backward(const at::Tensor& h, const at::Tensor& grad_out, const at::Tensor& w_slot,
                                       const at::Tensor& bias_pos, const at::Tensor& edge, const at::Tensor& indptr,
                                       const at::Tensor& src, const at::Tensor& codes, const at::Tensor& out_pos,
                                       int64_t features, bool need_weight, bool need_bias) {
  check_matrix("h", h);
  const int64_t n = h.size(0), cols = h.size(1), slots = src.size(0);
  TORCH_CHECK_VALUE(indptr.dim() == 1 && indptr.size(0) == n + 1, "indptr must have shape [", n + 1, "], got ",
                    indptr.sizes());
  TORCH_CHECK_VALUE(grad_out.dim() == 2 && grad_out.size(0) == out_pos.size(0) && grad_out.size(1) == cols &&
                        grad_out.scalar_type() == h.scalar_type(),
                    "grad_out must be a [", out_pos.size(0), ", ", cols, "] tensor of dtype ", h.scalar_type(),
                    ", got ", grad_out.sizes(), " ", grad_out.scalar_type());
  check_vector("w_slot", w_slot, slots, h.scalar_type());
  at::Tensor g = at::empty(h.sizes(), h.options());
  at::Tensor dweight = need_weight ? at::empty({slots}, h.options()) : at::Tensor();
  at::Tensor dbias = need_bias ? at::empty({n - features}, h.options()) : at::Tensor();
  const at::Tensor go = grad_out.contiguous();
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "graph_backward", [&] {
    scalar_t* gp = g.data_ptr<scalar_t>();
    std::fill(gp + features * cols, gp + n * cols, scalar_t(0));
    const scalar_t* gop = go.data_ptr<scalar_t>();
    const int64_t* op = out_pos.data_ptr<int64_t>();
    for (int64_t k = 0; k < go.size(0); ++k) {
      scalar_t* row = gp + op[k] * cols;
      for (int64_t t = 0; t < cols; ++t) row[t] += gop[k * cols + t];
    }
    std::vector<scalar_t> dw_slot(need_weight ? slots : 0);
    auto a = csr_args<scalar_t>(h, h, gp, gp, cols, codes.data_ptr<uint8_t>(), indptr, src, w_slot, features, n,
                                need_weight ? dw_slot.data() : nullptr, features);
    if (need_weight) {
      csr_backward_with_grad<scalar_t>(a, cols);
      scalar_t* dw = dweight.data_ptr<scalar_t>();
      const int64_t* ed = edge.data_ptr<int64_t>();
      for (int64_t s = 0; s < slots; ++s) dw[ed[s]] = dw_slot[s];
    } else if (cols > 0) {
      csr_sweep_impl<scalar_t>(a, cols, /*forward=*/false);
    }
    if (need_bias) {
      scalar_t* db = dbias.data_ptr<scalar_t>();
      const int64_t* bp = bias_pos.data_ptr<int64_t>();
      for (int64_t k = 0; k < n - features; ++k) {
        const scalar_t* row = gp + bp[k] * cols;
        scalar_t lanes[16] = {};
        int64_t t = 0;
        for (; t + 16 <= cols; t += 16) {
          for (int64_t l = 0; l < 16; ++l) lanes[l] += row[t + l];
        }
        scalar_t sum = scalar_t(0);
        for (; t < cols; ++t) sum += row[t];
        for (int64_t l = 0; l < 16; ++l) sum += lanes[l];
        db[k] = sum;
      }
    }
  });
  return {dweight, dbias};
}
}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "ncg in-block sweep kernels (see ncg/kernels/sweep.cpp)";
  m.def("sweep_forward", &sweep_forward, "In-block forward sweep; z is updated in place",
        pybind11::arg("z"), pybind11::arg("w"), pybind11::arg("codes"),
        pybind11::arg("out") = pybind11::none());
  m.def("sweep_backward", &sweep_backward, "In-block backward sweep; dh is updated in place",
        pybind11::arg("h"), pybind11::arg("w"), pybind11::arg("codes"),
        pybind11::arg("dh"), pybind11::arg("out") = pybind11::none(), pybind11::arg("z") = pybind11::none());
  m.def("csr_sweep_forward", &csr_sweep_forward,
        "Sparse forward over rows [start, end) of [N, B] z (updated in place) and h (written)");
  m.def("csr_sweep_backward", &csr_sweep_backward,
        "Sparse backward over rows [start, end): g written, dh of earlier rows updated in place, "
        "dL/dw of their slots written into dw when given",
        pybind11::arg("h"), pybind11::arg("dh"), pybind11::arg("g"), pybind11::arg("indptr"),
        pybind11::arg("src"), pybind11::arg("w"), pybind11::arg("codes"), pybind11::arg("start"),
        pybind11::arg("end"), pybind11::arg("dw") = pybind11::none(), pybind11::arg("push_from") = 0,
        pybind11::arg("z") = pybind11::none());
  m.def("csr_infer", &csr_infer,
        "Whole-network inference of an all-sparse plan: x [B, F] -> the output rows [B, K]",
        pybind11::arg("x"), pybind11::arg("input_pos"), pybind11::arg("bias"), pybind11::arg("indptr"),
        pybind11::arg("src"), pybind11::arg("w"), pybind11::arg("codes"), pybind11::arg("out_pos"),
        pybind11::arg("check") = true);
  m.def("graph_forward", &graph_forward,
        "Training forward of an all-sparse plan whose F input nodes are rows 0..F-1: {h [N, B], the output "
        "rows [K, B], the weights in slot order}");
  m.def("graph_backward", &graph_backward,
        "Training backward of graph_forward: {dL/dweight in edge order, dL/dbias}, each undefined unless asked");
  m.def("pair_dots", &pair_dots, "out[k] = <a[rows_a[k]], b[rows_b[k]]> for [N, B] matrices a and b");
}
