// In-block sequential sweep of a blocked FreeNet evaluator, forward and backward, on the CPU.
//
// Activations are neuron-major: row j of z, h, dh and g is neuron j over the batch columns.
// The sweep is independent per column, so the batch is cut into tiles of TILE columns; each tile
// sweeps the whole block with its accumulator held in registers ("pull" form):
//
//   forward,  j = 0..b-1:    z[j] += sum_{i<j, w[i,j] != 0} w[i,j] * h[i]   (i ascending)
//                            h[j]  = act_j(z[j])
//   backward, i = b-1..0:    dh[i] += sum_{j>i, w[i,j] != 0} w[i,j] * g[j]  (j descending)
//                            g[i]  = dh[i] * act_i'(z[i])
//
// The orders of summation are those of the "push" loops in ncg/kernels/sweep.py's reference, so
// the results agree with it up to floating-point contraction. Edges of weight exactly 0 are
// dropped when the per-call edge lists are built. Tiles are spread over threads with
// at::parallel_for; a partial last tile runs through zero-padded scratch buffers.
//
// Inner loops run over TILE contiguous columns with compile-time trip counts, so the compiler
// vectorises them; the float32 tanh and sigmoid use a branch-free exp (Cephes) for the same
// reason. On x86-64 Linux with GCC the tile loops are compiled for several instruction sets
// (target_clones) and the best one is picked when the module loads; the build stays portable.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// Keep in sync with ACTIVATION_CODES in sweep.py.
enum Activation : uint8_t {
  kIdentity = 0,
  kRelu = 1,
  kSquareRelu = 2,
  kTanh = 3,
  kSigmoid = 4,
  kNumActivations = 5,
};

#define NCG_INLINE inline __attribute__((always_inline))

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NCG_MULTIVERSION \
  __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define NCG_MULTIVERSION
#endif

// A tile is 256 bytes of one row: 64 float or 32 double columns.
template <typename T>
constexpr int64_t kTile = 256 / sizeof(T);

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

NCG_INLINE float tanh_of(float x) { return tanh_f32(x); }
NCG_INLINE double tanh_of(double x) { return std::tanh(x); }
NCG_INLINE float sigmoid_of(float x) { return sigmoid_f32(x); }
NCG_INLINE double sigmoid_of(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ---------------------------------------------------------------- one row of a tile

// out[t] = act(z[t]) over one tile row. relu keeps NaN (as torch.relu does): x < 0 is false for it.
template <typename T>
NCG_INLINE void activate_row(uint8_t code, const T* __restrict__ z, T* __restrict__ out) {
  constexpr int64_t n = kTile<T>;
  switch (code) {
    case kIdentity:
      for (int64_t t = 0; t < n; ++t) out[t] = z[t];
      break;
    case kRelu:
      for (int64_t t = 0; t < n; ++t) out[t] = z[t] < T(0) ? T(0) : z[t];
      break;
    case kSquareRelu:
      for (int64_t t = 0; t < n; ++t) {
        const T r = z[t] < T(0) ? T(0) : z[t];
        out[t] = r * r;
      }
      break;
    case kTanh:
      for (int64_t t = 0; t < n; ++t) out[t] = tanh_of(z[t]);
      break;
    default:  // kSigmoid
      for (int64_t t = 0; t < n; ++t) out[t] = sigmoid_of(z[t]);
      break;
  }
}

// g[t] = dh[t] * act'(z[t]), written with the same operations as the torch reference.
template <typename T>
NCG_INLINE void derivative_row(uint8_t code, const T* __restrict__ dh, const T* __restrict__ z,
                               const T* __restrict__ h, T* __restrict__ g) {
  constexpr int64_t n = kTile<T>;
  switch (code) {
    case kIdentity:
      for (int64_t t = 0; t < n; ++t) g[t] = dh[t];
      break;
    case kRelu:
      for (int64_t t = 0; t < n; ++t) g[t] = dh[t] * (z[t] > T(0) ? T(1) : T(0));
      break;
    case kSquareRelu:
      for (int64_t t = 0; t < n; ++t) g[t] = dh[t] * (T(2) * (z[t] < T(0) ? T(0) : z[t]));
      break;
    case kTanh:
      for (int64_t t = 0; t < n; ++t) g[t] = dh[t] * (T(1) - h[t] * h[t]);
      break;
    default:  // kSigmoid
      for (int64_t t = 0; t < n; ++t) g[t] = dh[t] * (h[t] * (T(1) - h[t]));
      break;
  }
}

// ---------------------------------------------------------------- whole-block sweep of one tile

// The block's nonzero edges in the order a sweep visits them: for each neuron `ptr[n]..ptr[n+1]`
// indexes `other` (the neuron at the far end of the edge) and `weight`.
template <typename T>
struct EdgeLists {
  std::vector<int64_t> ptr;
  std::vector<int32_t> other;
  std::vector<T> weight;
};

template <typename T>
struct ForwardTiles {
  T* z;  // [b, ldz], updated in place
  T* h;  // [b, ldh], written
  int64_t ldz, ldh, b;
  const uint8_t* codes;
  const EdgeLists<T>* in_edges;  // per target j: sources i < j, ascending
};

template <typename T>
struct BackwardTiles {
  const T* z;  // [b, ldz]
  const T* h;  // [b, ldh]
  T* dh;       // [b, lddh], updated in place
  T* g;        // [b, ldg], written
  int64_t ldz, ldh, lddh, ldg, b;
  const uint8_t* codes;
  const EdgeLists<T>* out_edges;  // per source i: targets j > i, descending
};

template <typename T>
NCG_INLINE void forward_tile(const ForwardTiles<T>& a, int64_t col) {
  constexpr int64_t n = kTile<T>;
  const int64_t* ptr = a.in_edges->ptr.data();
  const int32_t* source = a.in_edges->other.data();
  const T* weight = a.in_edges->weight.data();
  T* __restrict__ z = a.z + col;
  T* __restrict__ h = a.h + col;
  const int64_t ldz = a.ldz, ldh = a.ldh;
  for (int64_t j = 0; j < a.b; ++j) {
    T acc[n];
    T* __restrict__ zj = z + j * ldz;
    for (int64_t t = 0; t < n; ++t) acc[t] = zj[t];
    for (int64_t e = ptr[j]; e < ptr[j + 1]; ++e) {
      const T w = weight[e];
      const T* __restrict__ hi = h + source[e] * ldh;
      for (int64_t t = 0; t < n; ++t) acc[t] += w * hi[t];
    }
    for (int64_t t = 0; t < n; ++t) zj[t] = acc[t];
    activate_row<T>(a.codes[j], acc, h + j * ldh);
  }
}

template <typename T>
NCG_INLINE void backward_tile(const BackwardTiles<T>& a, int64_t col) {
  constexpr int64_t n = kTile<T>;
  const int64_t* ptr = a.out_edges->ptr.data();
  const int32_t* target = a.out_edges->other.data();
  const T* weight = a.out_edges->weight.data();
  const T* __restrict__ z = a.z + col;
  const T* __restrict__ h = a.h + col;
  T* __restrict__ dh = a.dh + col;
  T* __restrict__ g = a.g + col;
  const int64_t ldz = a.ldz, ldh = a.ldh, lddh = a.lddh, ldg = a.ldg;
  for (int64_t i = a.b - 1; i >= 0; --i) {
    T acc[n];
    T* __restrict__ dhi = dh + i * lddh;
    for (int64_t t = 0; t < n; ++t) acc[t] = dhi[t];
    for (int64_t e = ptr[i]; e < ptr[i + 1]; ++e) {
      const T w = weight[e];
      const T* __restrict__ gj = g + target[e] * ldg;
      for (int64_t t = 0; t < n; ++t) acc[t] += w * gj[t];
    }
    for (int64_t t = 0; t < n; ++t) dhi[t] = acc[t];
    derivative_row<T>(a.codes[i], acc, z + i * ldz, h + i * ldh, g + i * ldg);
  }
}

// Tiles [tile_begin, tile_end) of full width; one compiled copy per instruction set.
NCG_MULTIVERSION void forward_tiles_f32(const ForwardTiles<float>& a, int64_t tile_begin,
                                        int64_t tile_end) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) forward_tile(a, tile * kTile<float>);
}
NCG_MULTIVERSION void forward_tiles_f64(const ForwardTiles<double>& a, int64_t tile_begin,
                                        int64_t tile_end) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) forward_tile(a, tile * kTile<double>);
}
NCG_MULTIVERSION void backward_tiles_f32(const BackwardTiles<float>& a, int64_t tile_begin,
                                         int64_t tile_end) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) backward_tile(a, tile * kTile<float>);
}
NCG_MULTIVERSION void backward_tiles_f64(const BackwardTiles<double>& a, int64_t tile_begin,
                                         int64_t tile_end) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) backward_tile(a, tile * kTile<double>);
}

void forward_tiles(const ForwardTiles<float>& a, int64_t begin, int64_t end) {
  forward_tiles_f32(a, begin, end);
}
void forward_tiles(const ForwardTiles<double>& a, int64_t begin, int64_t end) {
  forward_tiles_f64(a, begin, end);
}
void backward_tiles(const BackwardTiles<float>& a, int64_t begin, int64_t end) {
  backward_tiles_f32(a, begin, end);
}
void backward_tiles(const BackwardTiles<double>& a, int64_t begin, int64_t end) {
  backward_tiles_f64(a, begin, end);
}

// ---------------------------------------------------------------- drivers

// Edge lists of the strictly upper part of w (row stride ldw), zeros dropped. `incoming`: per
// target j the sources i < j ascending (forward); otherwise per source i the targets j > i
// descending (backward).
template <typename T>
EdgeLists<T> edge_lists(const T* w, int64_t ldw, int64_t b, bool incoming) {
  EdgeLists<T> lists;
  lists.ptr.reserve(b + 1);
  lists.ptr.push_back(0);
  for (int64_t n = 0; n < b; ++n) {
    if (incoming) {
      for (int64_t i = 0; i < n; ++i) {
        const T value = w[i * ldw + n];
        if (value != T(0)) {
          lists.other.push_back(static_cast<int32_t>(i));
          lists.weight.push_back(value);
        }
      }
    } else {
      for (int64_t j = b - 1; j > n; --j) {
        const T value = w[n * ldw + j];
        if (value != T(0)) {
          lists.other.push_back(static_cast<int32_t>(j));
          lists.weight.push_back(value);
        }
      }
    }
    lists.ptr.push_back(static_cast<int64_t>(lists.other.size()));
  }
  return lists;
}

// Number of tiles one thread takes at least, so that a chunk of work amortises the wake-up of a
// thread (a few microseconds); small batches therefore stay on the calling thread.
int64_t grain_in_tiles(int64_t tile, int64_t b, int64_t edges) {
  constexpr int64_t kMinUpdatesPerChunk = 1 << 16;
  const int64_t per_tile = tile * (b + edges);
  return std::max<int64_t>(1, (kMinUpdatesPerChunk + per_tile - 1) / per_tile);
}

void check_common(const torch::Tensor& z, const torch::Tensor& w, const torch::Tensor& codes) {
  TORCH_CHECK_VALUE(z.dim() == 2, "z must be 2-D [b, B], got ", z.sizes());
  const int64_t b = z.size(0);
  TORCH_CHECK_VALUE(z.device().is_cpu(), "z must be on the CPU, got ", z.device());
  TORCH_CHECK_VALUE(z.scalar_type() == at::kFloat || z.scalar_type() == at::kDouble,
                    "z must be float32 or float64, got ", z.scalar_type());
  TORCH_CHECK_VALUE(z.size(1) <= 1 || z.stride(1) == 1, "z must have unit column stride");
  TORCH_CHECK_VALUE(w.dim() == 2 && w.size(0) == b && w.size(1) == b, "w must have shape [", b,
                    ", ", b, "], got ", w.sizes());
  TORCH_CHECK_VALUE(w.scalar_type() == z.scalar_type(), "w must have dtype ", z.scalar_type(),
                    ", got ", w.scalar_type());
  TORCH_CHECK_VALUE(codes.dim() == 1 && codes.size(0) == b, "codes must have shape [", b,
                    "], got ", codes.sizes());
  TORCH_CHECK_VALUE(codes.scalar_type() == at::kByte, "codes must be uint8, got ",
                    codes.scalar_type());
  const uint8_t* code = codes.data_ptr<uint8_t>();
  for (int64_t j = 0; j < b; ++j) {
    TORCH_CHECK_VALUE(code[j] < kNumActivations, "codes[", j, "] = ", int(code[j]),
                      " is not an activation code (0..", int(kNumActivations) - 1, ")");
  }
}

void check_like(const char* name, const torch::Tensor& t, const torch::Tensor& z) {
  TORCH_CHECK_VALUE(t.sizes() == z.sizes(), name, " must have shape ", z.sizes(), ", got ",
                    t.sizes());
  TORCH_CHECK_VALUE(t.scalar_type() == z.scalar_type(), name, " must have dtype ",
                    z.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == z.device(), name, " must be on ", z.device(), ", got ",
                    t.device());
  TORCH_CHECK_VALUE(t.size(1) <= 1 || t.stride(1) == 1, name, " must have unit column stride");
}

// Copies columns [col, col + count) of rows [0, b) into a zero-padded [b, tile] buffer, or back.
template <typename T>
void copy_columns(const T* src, int64_t lds, T* dst, int64_t ldd, int64_t b, int64_t count) {
  for (int64_t r = 0; r < b; ++r) std::memcpy(dst + r * ldd, src + r * lds, count * sizeof(T));
}

template <typename T>
void forward_impl(torch::Tensor& z, const torch::Tensor& w, const uint8_t* codes,
                  torch::Tensor& h) {
  constexpr int64_t tile = kTile<T>;
  const int64_t b = z.size(0), cols = z.size(1);
  const torch::Tensor wc = w.contiguous();
  const EdgeLists<T> in_edges = edge_lists<T>(wc.data_ptr<T>(), b, b, /*incoming=*/true);
  ForwardTiles<T> a{z.data_ptr<T>(), h.data_ptr<T>(), z.stride(0), h.stride(0), b, codes,
                    &in_edges};
  const int64_t full = cols / tile;
  if (full > 0) {
    const int64_t grain = grain_in_tiles(tile, b, in_edges.weight.size());
    at::parallel_for(0, full, grain, [&](int64_t begin, int64_t end) {
      forward_tiles(a, begin, end);
    });
  }
  const int64_t rest = cols - full * tile;
  if (rest > 0) {
    std::vector<T> z_pad(b * tile, T(0)), h_pad(b * tile, T(0));
    copy_columns(a.z + full * tile, a.ldz, z_pad.data(), tile, b, rest);
    ForwardTiles<T> p{z_pad.data(), h_pad.data(), tile, tile, b, codes, &in_edges};
    forward_tiles(p, 0, 1);
    copy_columns(z_pad.data(), tile, a.z + full * tile, a.ldz, b, rest);
    copy_columns(h_pad.data(), tile, a.h + full * tile, a.ldh, b, rest);
  }
}

template <typename T>
void backward_impl(const torch::Tensor& z, const torch::Tensor& h, const torch::Tensor& w,
                   const uint8_t* codes, torch::Tensor& dh, torch::Tensor& g) {
  constexpr int64_t tile = kTile<T>;
  const int64_t b = z.size(0), cols = z.size(1);
  const torch::Tensor wc = w.contiguous();
  const EdgeLists<T> out_edges = edge_lists<T>(wc.data_ptr<T>(), b, b, /*incoming=*/false);
  BackwardTiles<T> a{z.data_ptr<T>(), h.data_ptr<T>(), dh.data_ptr<T>(), g.data_ptr<T>(),
                     z.stride(0),     h.stride(0),     dh.stride(0),     g.stride(0),
                     b,               codes,           &out_edges};
  const int64_t full = cols / tile;
  if (full > 0) {
    const int64_t grain = grain_in_tiles(tile, b, out_edges.weight.size());
    at::parallel_for(0, full, grain, [&](int64_t begin, int64_t end) {
      backward_tiles(a, begin, end);
    });
  }
  const int64_t rest = cols - full * tile;
  if (rest > 0) {
    std::vector<T> z_pad(b * tile, T(0)), h_pad(b * tile, T(0)), dh_pad(b * tile, T(0)),
        g_pad(b * tile, T(0));
    const int64_t col = full * tile;
    copy_columns(a.z + col, a.ldz, z_pad.data(), tile, b, rest);
    copy_columns(a.h + col, a.ldh, h_pad.data(), tile, b, rest);
    copy_columns(a.dh + col, a.lddh, dh_pad.data(), tile, b, rest);
    BackwardTiles<T> p{z_pad.data(), h_pad.data(), dh_pad.data(), g_pad.data(), tile, tile,
                       tile,         tile,         b,             codes,        &out_edges};
    backward_tiles(p, 0, 1);
    copy_columns(dh_pad.data(), tile, a.dh + col, a.lddh, b, rest);
    copy_columns(g_pad.data(), tile, a.g + col, a.ldg, b, rest);
  }
}

torch::Tensor sweep_forward(torch::Tensor z, const torch::Tensor& w, const torch::Tensor& codes) {
  check_common(z, w, codes);
  torch::Tensor h = torch::empty_like(z, at::MemoryFormat::Contiguous);
  if (z.numel() == 0) return h;
  const uint8_t* code = codes.data_ptr<uint8_t>();
  if (z.scalar_type() == at::kFloat) {
    forward_impl<float>(z, w, code, h);
  } else {
    forward_impl<double>(z, w, code, h);
  }
  return h;
}

torch::Tensor sweep_backward(const torch::Tensor& z, const torch::Tensor& h,
                             const torch::Tensor& w, const torch::Tensor& codes,
                             torch::Tensor dh) {
  check_common(z, w, codes);
  check_like("h", h, z);
  check_like("dh", dh, z);
  torch::Tensor g = torch::empty_like(z, at::MemoryFormat::Contiguous);
  if (z.numel() == 0) return g;
  const uint8_t* code = codes.data_ptr<uint8_t>();
  if (z.scalar_type() == at::kFloat) {
    backward_impl<float>(z, h, w, code, dh, g);
  } else {
    backward_impl<double>(z, h, w, code, dh, g);
  }
  return g;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "ncg in-block sweep kernels (see ncg/kernels/sweep.cpp)";
  m.def("sweep_forward", &sweep_forward, "In-block forward sweep; z is updated in place",
        pybind11::arg("z"), pybind11::arg("w"), pybind11::arg("codes"));
  m.def("sweep_backward", &sweep_backward, "In-block backward sweep; dh is updated in place",
        pybind11::arg("z"), pybind11::arg("h"), pybind11::arg("w"), pybind11::arg("codes"),
        pybind11::arg("dh"));
}
