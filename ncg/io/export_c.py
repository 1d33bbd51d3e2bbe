"""Export a FreeNet as dependency-free C99: one ``.c`` / ``.h`` pair for embedded and WebAssembly.

:func:`export_c` writes the network's arrays and its forward function as plain C: no PyTorch, no
ncg, no allocation, no runtime; only ``<math.h>`` where an activation needs it (``tanh``,
``sigmoid``, ``gelu``, ``silu``, ``elu``; link with ``-lm``). Everything is float32.

Design
------
The C code keeps one array of values per sample: the ``in_features`` inputs first (``x`` copied
in), then the non-input neurons in topological order. Each neuron pulls from its in-edges, stored
by target (CSC): ``acc = bias[k] + sum(value[source[e]] * weight[e])`` over its edges
``e in [edge_start[k], edge_start[k + 1])``, then ``value[in_features + k] = act(acc)``. With the
graph encoder the input nodes are the first values, so one loop covers the edges that leave the
inputs and those between neurons; a dense encoder (``linear`` or ``random``) adds a dot product of
the neuron's encoder row with ``x``. The outputs are read from their values, then the optional
linear decoder. The file holds, per edge, an ``int32_t`` source and a ``float`` weight (8 bytes),
per neuron a bias and an edge offset, and the dense encoder / decoder as they are.

One sample sums each neuron's edges in four partial sums (four independent adds in flight instead
of one chain). A batch runs :data:`BATCH_TILE` samples at a time with their values interleaved
(value ``v`` of sample ``b`` at ``v * BATCH_TILE + b``), so each edge multiplies a contiguous run of
samples that the compiler vectorises; the samples left over run one at a time. The two sum in
different orders, so they agree to rounding, not bit for bit. Under GCC the file turns loop
vectorisation off (``#pragma GCC optimize``) and unrolls the loop over a tile's samples
(``#pragma GCC unroll``), which GCC then vectorises at ``-O2`` as at ``-O3``: left to itself, GCC
vectorises the loops over edges by emulated gathers, several times slower at ``-O3``.

The generated API (``name`` is the ``name`` argument, ``NAME`` its upper case), documented in the
header::

    #define NAME_IN_FEATURES ...     /* x: [in_features] per sample */
    #define NAME_OUT_FEATURES ...    /* y: [out_features] per sample */
    #define NAME_NUM_NEURONS ...     /* the graph's neurons, input nodes included */
    #define NAME_NUM_EDGES ...       /* the graph's edges (a dense encoder not counted) */
    #define NAME_BATCH_TILE ...      /* samples a batch runs together */
    #define NAME_SCRATCH_SIZE ...    /* floats: (in_features + non-input neurons) * tile */
    void name_forward(const float *x, float *y);                    /* one sample */
    void name_forward_batch(const float *x, float *y, int batch);   /* row-major [batch][...] */
    void name_forward_into(const float *x, float *y, int batch, float *scratch);

``name_forward`` and ``name_forward_batch`` share one static scratch buffer, so they are not
re-entrant; ``name_forward_into`` uses the caller's ``NAME_SCRATCH_SIZE`` floats and is.
``python benchmarks/bench_export_c.py`` times the compiled export against MLP 784-512-10 in PyTorch.

Examples
--------
Export, then compile and call from C (``export_c(net, "out/net", name="net")``)::

    cc -O3 -c out/net.c                 # link with -lm if net.h says so

    #include "net.h"
    float y[NET_OUT_FEATURES];
    net_forward(x, y);                  /* x: NET_IN_FEATURES floats */
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

import numpy as np
import torch
from torch import nn

from ncg.activations import _LEAKY_SLOPE
from ncg.atomic import atomic_write_text
from ncg.errors import NCGError, NonFiniteError
from ncg.io._common import check_net, check_path
from ncg.model import FreeNet

__all__ = ["export_c", "BATCH_TILE"]

BATCH_TILE = 16
"""Samples the batch function runs together: one AVX-512 vector (two AVX2, four SSE) per edge."""

_INT32_MAX = 2**31 - 1
"""The largest edge offset or value index the ``int32_t`` arrays hold."""

_C_ACTIVATIONS: dict[str, str] = {
    "identity": "v",
    "relu": "v > 0.0f ? v : 0.0f",
    "square_relu": "v > 0.0f ? v * v : 0.0f",
    "tanh": "tanhf(v)",
    "sigmoid": "1.0f / (1.0f + expf(-v))",
    "gelu": "0.5f * v * (1.0f + erff(v * 0.707106781f))",  # exact (erf) form, as F.gelu's default
    "silu": "v / (1.0f + expf(-v))",
    "elu": "v > 0.0f ? v : expm1f(v)",  # alpha = 1, F.elu's default
    "leaky_relu": f"v > 0.0f ? v : {_LEAKY_SLOPE!r}f * v",
}
"""Each activation of :data:`~ncg.activations.ACTIVATIONS` as a C99 float expression of ``v``."""

_NEEDS_LIBM = frozenset({"tanh", "sigmoid", "gelu", "silu", "elu"})
"""The activations whose expression calls ``<math.h>``."""

_VALUES_PER_LINE = 8
"""Array values per line of the ``.c`` file."""


@dataclass(frozen=True)
class _Tables:
    """What the C file stores, float32 / int64 numpy arrays in evaluation order (``M`` non-input
    neurons in topological order, ``K`` outputs)."""

    bias: np.ndarray  # [M]
    edge_start: np.ndarray  # [M + 1], into edge_source / edge_weight
    edge_source: np.ndarray  # [E], value index: feature f, or in_features + k for neuron k
    edge_weight: np.ndarray  # [E]
    is_output: np.ndarray  # [M] bool
    output_value: np.ndarray  # [K], value index of each output in decoder order
    encoder: np.ndarray | None  # [M, in_features], a dense encoder's rows
    decoder_weight: np.ndarray | None  # [out_features, K]
    decoder_bias: np.ndarray | None  # [out_features]


def _float32(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().to(torch.float32).numpy()


def _tables(net: FreeNet) -> _Tables:
    n, features = net.num_neurons, net.in_features
    src, dst = net.edge_index.cpu().numpy()
    inputs, outputs = net.inputs.cpu().numpy(), net.outputs.cpu().numpy()
    is_input = np.zeros(n, dtype=bool)
    is_input[inputs] = True
    neurons = np.flatnonzero(~is_input)
    neurons = neurons[np.argsort(net.order_position().numpy()[neurons], kind="stable")]
    m = neurons.size
    value = np.empty(n, dtype=np.int64)
    value[inputs] = np.arange(inputs.size)  # the graph encoder's: input node f holds feature f
    value[neurons] = features + np.arange(m)
    if max(features + m, dst.size) > _INT32_MAX:
        raise NCGError(
            f"net is too large for int32_t indices: {features + m:,} values (inputs + neurons) and "
            f"{dst.size:,} edges, at most {_INT32_MAX:,} each"
        )
    target, source = value[dst] - features, value[src]
    edges = np.lexsort((source, target))  # by target, then source: reads sweep the values forward
    is_output = np.zeros(n, dtype=bool)
    is_output[outputs] = True
    decoder = net.decoder if isinstance(net.decoder, nn.Linear) else None
    tables = _Tables(
        bias=_float32(net.neuron_bias())[neurons],
        edge_start=np.concatenate([[0], np.cumsum(np.bincount(target, minlength=m))]),
        edge_source=source[edges],
        edge_weight=_float32(net.weight)[edges],
        is_output=is_output[neurons],
        output_value=value[outputs],
        encoder=None if net.encoder is None else _float32(net.encoder.weight)[neurons],
        decoder_weight=None if decoder is None else _float32(decoder.weight),
        decoder_bias=None if decoder is None else _float32(decoder.bias),
    )
    for what in ("bias", "edge_weight", "encoder", "decoder_weight", "decoder_bias"):
        values = getattr(tables, what)
        if values is not None and not np.isfinite(values).all():
            raise NonFiniteError(f"net has a non-finite {what.replace('_', ' ')} as float32; C has no literal for it")
    return tables


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise NCGError(f"name must be a C identifier (ASCII letters, digits and _, not starting with a digit), "
                       f"got {name!r}")
    return name


def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    """``static const <ctype> name[n] = {...};``. Floats are written with 9 significant digits,
    which read back as the same float32; an empty array holds one unused 0 (C99 has no empty
    initialiser)."""
    flat = values.ravel()
    if flat.dtype.kind == "f":
        items, fmt = flat.astype(np.float64).tolist(), "%.9g"
    else:
        items, fmt = flat.astype(np.int64).tolist(), "%d"
    if not items:
        items = [0]
    full, rest = divmod(len(items), _VALUES_PER_LINE)
    line = "    " + ", ".join([fmt] * _VALUES_PER_LINE) + ",\n"
    body = line * full + ("    " + ", ".join([fmt] * rest) + ",\n" if rest else "")
    return f"static const {ctype} {name}[{len(items)}] = {{\n{body % tuple(items)}}};\n"


_HEADER = Template("""\
/* $name: a FreeNet exported by ncg.io.export_c. Pure C99, float32, no allocation.
 * $description
 *
 * y = f(x) for x [${NAME}_IN_FEATURES] and y [${NAME}_OUT_FEATURES] floats; a batch is row-major,
 * x [batch][${NAME}_IN_FEATURES] -> y [batch][${NAME}_OUT_FEATURES].
 * ${name}_forward and ${name}_forward_batch share one static scratch buffer: they are not
 * re-entrant (one thread at a time). ${name}_forward_into uses the caller's scratch of
 * ${NAME}_SCRATCH_SIZE floats and is re-entrant.$libm
 */
#ifndef ${NAME}_H
#define ${NAME}_H

#ifdef __cplusplus
extern "C" {
#endif

#define ${NAME}_IN_FEATURES $in_features
#define ${NAME}_OUT_FEATURES $out_features
#define ${NAME}_NUM_NEURONS $num_neurons /* the graph's neurons, input nodes included */
#define ${NAME}_NUM_EDGES $num_edges /* the graph's edges$dense_note */
#define ${NAME}_BATCH_TILE $tile /* samples a batch runs together */
#define ${NAME}_SCRATCH_SIZE $scratch /* floats: (in_features + non-input neurons) * tile */

/* One sample: x [IN_FEATURES] -> y [OUT_FEATURES]. */
void ${name}_forward(const float *x, float *y);
/* batch samples, row-major. */
void ${name}_forward_batch(const float *x, float *y, int batch);
/* batch samples, with scratch [SCRATCH_SIZE] of the caller's. */
void ${name}_forward_into(const float *x, float *y, int batch, float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* ${NAME}_H */
""")

_SOURCE = Template("""\
/* $name: a FreeNet exported by ncg.io.export_c; the API is in $header. */
$includes#include <stddef.h>
#include <stdint.h>

#include "$header"

#if defined(__GNUC__) && !defined(__clang__)
/* GCC would vectorise the loops over edges (emulated gathers, in-order sums): several times slower
 * than scalar loads for one sample and vectors across the samples of a tile. */
#pragma GCC optimize("no-tree-loop-vectorize")
#endif
/* Unrolled, the loop over a tile's samples becomes vector operations at -O2 as at -O3. */
#if defined(__GNUC__)
#define ${NAME}_UNROLL_TILE _Pragma("GCC unroll $tile")
#else
#define ${NAME}_UNROLL_TILE
#endif

#define ${NAME}_NON_INPUTS $non_inputs
#define ${NAME}_OUTPUTS $outputs

/* Value v < IN_FEATURES is input x[v]; value IN_FEATURES + k is non-input neuron k (topological
 * order), with bias[k] and in-edges e in [edge_start[k], edge_start[k + 1]), each adding
 * value[edge_source[e]] * edge_weight[e]. */
$arrays
static float ${name}_scratch[${NAME}_SCRATCH_SIZE];

static float ${name}_hidden(float v) { return $hidden; }
$output_function
/* The outputs (through the decoder, if any) of one sample whose value v is s[v * stride]. */
static void ${name}_outputs(const float *s, ptrdiff_t stride, float *y) {
$outputs_body}

/* One sample; s holds its values. Four partial sums per neuron keep four adds in flight. */
static void ${name}_one(const float *x, float *y, float *s) {
    for (int32_t f = 0; f < ${NAME}_IN_FEATURES; ++f) s[f] = x[f];
    for (int32_t k = 0; k < ${NAME}_NON_INPUTS; ++k) {
        const int32_t end = ${name}_edge_start[k + 1];
        int32_t e = ${name}_edge_start[k];
        float a0 = ${name}_bias[k], a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
$encoder_one        for (; end - e >= 4; e += 4) {
            a0 += s[${name}_edge_source[e]] * ${name}_edge_weight[e];
            a1 += s[${name}_edge_source[e + 1]] * ${name}_edge_weight[e + 1];
            a2 += s[${name}_edge_source[e + 2]] * ${name}_edge_weight[e + 2];
            a3 += s[${name}_edge_source[e + 3]] * ${name}_edge_weight[e + 3];
        }
        for (; e < end; ++e) a0 += s[${name}_edge_source[e]] * ${name}_edge_weight[e];
        const float acc = (a0 + a1) + (a2 + a3);
        s[${NAME}_IN_FEATURES + k] = $activate_one;
    }
    ${name}_outputs(s, 1, y);
}

/* BATCH_TILE samples; s holds their values interleaved: value v of sample b is s[v * TILE + b]. */
static void ${name}_tile(const float *x, float *y, float *s) {
    for (int32_t f = 0; f < ${NAME}_IN_FEATURES; ++f)
        for (int b = 0; b < ${NAME}_BATCH_TILE; ++b)
            s[(size_t)f * ${NAME}_BATCH_TILE + b] = x[(size_t)b * ${NAME}_IN_FEATURES + f];
    for (int32_t k = 0; k < ${NAME}_NON_INPUTS; ++k) {
        float acc[${NAME}_BATCH_TILE];
        float *out = s + (size_t)(${NAME}_IN_FEATURES + k) * ${NAME}_BATCH_TILE;
        for (int b = 0; b < ${NAME}_BATCH_TILE; ++b) acc[b] = ${name}_bias[k];
$encoder_tile        for (int32_t e = ${name}_edge_start[k]; e < ${name}_edge_start[k + 1]; ++e) {
            const float w = ${name}_edge_weight[e];
            const float *in = s + (size_t)${name}_edge_source[e] * ${NAME}_BATCH_TILE;
            ${NAME}_UNROLL_TILE
            for (int b = 0; b < ${NAME}_BATCH_TILE; ++b) acc[b] += in[b] * w;
        }
$activate_tile    }
    for (int b = 0; b < ${NAME}_BATCH_TILE; ++b)
        ${name}_outputs(s + b, ${NAME}_BATCH_TILE, y + (size_t)b * ${NAME}_OUT_FEATURES);
}

void ${name}_forward_into(const float *x, float *y, int batch, float *scratch) {
    int b = 0;
    for (; batch - b >= ${NAME}_BATCH_TILE; b += ${NAME}_BATCH_TILE)
        ${name}_tile(x + (size_t)b * ${NAME}_IN_FEATURES, y + (size_t)b * ${NAME}_OUT_FEATURES, scratch);
    for (; b < batch; ++b)
        ${name}_one(x + (size_t)b * ${NAME}_IN_FEATURES, y + (size_t)b * ${NAME}_OUT_FEATURES, scratch);
}

void ${name}_forward_batch(const float *x, float *y, int batch) {
    ${name}_forward_into(x, y, batch, ${name}_scratch);
}

void ${name}_forward(const float *x, float *y) {
    ${name}_one(x, y, ${name}_scratch);
}
""")


def _source(net: FreeNet, tables: _Tables, name: str, header: str) -> str:
    upper = name.upper()
    arrays = [
        _c_array("float", f"{name}_bias", tables.bias),
        _c_array("int32_t", f"{name}_edge_start", tables.edge_start),
        _c_array("int32_t", f"{name}_edge_source", tables.edge_source),
        _c_array("float", f"{name}_edge_weight", tables.edge_weight),
        _c_array("int32_t", f"{name}_output_value", tables.output_value),
    ]
    encoder_one = encoder_tile = ""
    if tables.encoder is not None:
        arrays.append("/* The dense encoder: row k, [IN_FEATURES], for neuron k. */\n"
                      + _c_array("float", f"{name}_encoder", tables.encoder))
        row = f"{name}_encoder + (size_t)k * {upper}_IN_FEATURES"
        encoder_one = (f"        const float *row = {row};\n"
                       f"        for (int32_t f = 0; f < {upper}_IN_FEATURES; ++f) a1 += row[f] * s[f];\n")
        encoder_tile = (f"        const float *row = {row};\n"
                        f"        for (int32_t f = 0; f < {upper}_IN_FEATURES; ++f) {{\n"
                        f"            const float w = row[f];\n"
                        f"            const float *in = s + (size_t)f * {upper}_BATCH_TILE;\n"
                        f"            {upper}_UNROLL_TILE\n"
                        f"            for (int b = 0; b < {upper}_BATCH_TILE; ++b) acc[b] += in[b] * w;\n"
                        f"        }}\n")
    if tables.decoder_weight is None:
        outputs_body = f"    for (int32_t o = 0; o < {upper}_OUTPUTS; ++o) y[o] = s[{name}_output_value[o] * stride];\n"
    else:
        arrays.append("/* The linear decoder: weight [OUT_FEATURES][OUTPUTS], bias [OUT_FEATURES]. */\n"
                      + _c_array("float", f"{name}_decoder_weight", tables.decoder_weight)
                      + _c_array("float", f"{name}_decoder_bias", tables.decoder_bias))
        outputs_body = (
            f"    float h[{upper}_OUTPUTS];\n"
            f"    for (int32_t o = 0; o < {upper}_OUTPUTS; ++o) h[o] = s[{name}_output_value[o] * stride];\n"
            f"    for (int32_t j = 0; j < {upper}_OUT_FEATURES; ++j) {{\n"
            f"        float acc = {name}_decoder_bias[j];\n"
            f"        for (int32_t o = 0; o < {upper}_OUTPUTS; ++o) acc += {name}_decoder_weight[j * {upper}_OUTPUTS + o] * h[o];\n"
            f"        y[j] = acc;\n"
            f"    }}\n"
        )
    tile_loop = f"for (int b = 0; b < {upper}_BATCH_TILE; ++b) out[b] = {name}_{{}}(acc[b]);"
    if net.activation != net.output_activation:
        arrays.append(_c_array("uint8_t", f"{name}_is_output", tables.is_output.astype(np.uint8)))
        output_function = f"static float {name}_output(float v) {{ return {_C_ACTIVATIONS[net.output_activation]}; }}\n"
        activate_one = f"{name}_is_output[k] ? {name}_output(acc) : {name}_hidden(acc)"
        activate_tile = (f"        if ({name}_is_output[k]) {tile_loop.format('output')}\n"
                         f"        else {tile_loop.format('hidden')}\n")
    else:
        output_function, activate_one = "", f"{name}_hidden(acc)"
        activate_tile = f"        {tile_loop.format('hidden')}\n"
    return _SOURCE.substitute(
        name=name, NAME=upper, header=header, tile=BATCH_TILE,
        includes="#include <math.h>\n" if _libm(net) else "",
        non_inputs=tables.bias.size, outputs=tables.output_value.size, arrays="\n".join(arrays),
        hidden=_C_ACTIVATIONS[net.activation], output_function=output_function, outputs_body=outputs_body,
        encoder_one=encoder_one, encoder_tile=encoder_tile, activate_one=activate_one, activate_tile=activate_tile,
    )


def _libm(net: FreeNet) -> list[str]:
    """The activations of ``net`` that call ``<math.h>``."""
    return sorted({net.activation, net.output_activation} & _NEEDS_LIBM)


def _header(net: FreeNet, tables: _Tables, name: str) -> str:
    libm = _libm(net)
    decoder = "a linear decoder" if tables.decoder_weight is not None else "no decoder"
    return _HEADER.substitute(
        name=name, NAME=name.upper(),
        description=(f"Encoder {net.encoder_kind}, activation {net.activation}, output activation "
                     f"{net.output_activation}, {decoder}."),
        libm=f"\n * Uses <math.h> ({', '.join(libm)}): link with -lm." if libm else "",
        in_features=net.in_features, out_features=net.out_features, num_neurons=net.num_neurons,
        num_edges=tables.edge_source.size, tile=BATCH_TILE,
        dense_note="; the dense encoder's weights not counted" if tables.encoder is not None else "",
        scratch=(net.in_features + tables.bias.size) * BATCH_TILE,
    )


def export_c(net: FreeNet, path: str | os.PathLike, name: str = "ncg_net") -> tuple[Path, Path]:
    """Write ``net`` as a C99 source and header that compute ``net(x)`` without any runtime.

    See the module docstring for the layout and the generated API (``<name>_forward``,
    ``<name>_forward_batch``, ``<name>_forward_into`` and the ``<NAME>_*`` constants).

    Parameters
    ----------
    net : FreeNet
        Any encoder (``graph``, ``linear`` or ``random``), decoder and activations. Its current
        weights are written, cast to float32 (a float64 net computes in float32 in C).
    path : str or os.PathLike
        The source file, ending in ``.c``, or its stem (``out/net`` writes ``out/net.c``); the
        header goes beside it with ``.h``. Existing files are replaced; the folder is created.
    name : str, default "ncg_net"
        A C identifier: the prefix of every function and array (``<name>_forward``) and, in upper
        case, of the constants (``<NAME>_IN_FEATURES``).

    Returns
    -------
    (Path, Path)
        The ``.c`` and ``.h`` files written.

    Raises
    ------
    NCGError
        ``net`` is not a FreeNet, ``path`` is neither a stem nor ends in ``.c``, ``name`` is not a
        C identifier, or the net has more than ``2**31 - 1`` edges or values (inputs + neurons).
    NonFiniteError
        A weight or bias is NaN or infinite as float32.

    Examples
    --------
    >>> import tempfile
    >>> from ncg import FreeNet
    >>> from ncg.build import sparse_start
    >>> net = FreeNet(sparse_start(num_inputs=6, num_hidden=5, num_outputs=2, fan_in=3, seed=0), in_features=6)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     source, header = export_c(net, Path(folder) / "tiny", name="tiny")
    ...     text = header.read_text()
    >>> source.name, header.name
    ('tiny.c', 'tiny.h')
    >>> [line for line in text.splitlines() if line.startswith("#define TINY_IN")]
    ['#define TINY_IN_FEATURES 6']
    >>> "void tiny_forward(const float *x, float *y);" in text
    True
    """
    net = check_net(net)
    if isinstance(path, (str, os.PathLike)) and Path(path).name and not Path(path).suffix:
        path = Path(path).with_suffix(".c")
    source_path = check_path(path, ".c")
    name = _check_name(name)
    header_path = source_path.with_suffix(".h")
    tables = _tables(net)
    source = _source(net, tables, name, header_path.name)
    atomic_write_text(header_path, _header(net, tables, name))
    atomic_write_text(source_path, source)
    return source_path, header_path
