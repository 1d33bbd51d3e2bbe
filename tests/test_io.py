from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ncg import NCG, FreeNet
from ncg.build import layered_start
from ncg.errors import CycleError, GraphMLError, NCGError
from ncg.io import from_networkx, from_pyg, read_graphml, summary, to_networkx, to_pyg, write_graphml
from tests.strategies import dags

GRAPH_FIELDS = ("edge_index", "outputs", "weight", "bias", "order", "neuron_ids")
STANDARD_TYPES = {"boolean", "int", "long", "float", "double", "string"}


def assert_same_graph(a: NCG, b: NCG) -> None:
    assert a.num_neurons == b.num_neurons
    for name in GRAPH_FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.fixture
def net():
    graph = NCG.random_dag(30, density=0.3, num_outputs=4, seed=0)
    net = FreeNet(graph, in_features=6, out_features=3, activation="square_relu", seed=0)
    with torch.no_grad():
        net.bias.normal_(generator=torch.Generator().manual_seed(1))
    return net


@pytest.fixture
def written(tmp_path, net):
    path = tmp_path / "net.graphml"
    write_graphml(net, path)
    return path


# ---------------------------------------------------------------------- GraphML round trip
@pytest.mark.parametrize("inline_dense", [False, True])
def test_graphml_round_trip_is_exact(tmp_path, net, inline_dense):
    path = tmp_path / "net.graphml"
    files = write_graphml(net, path, inline_dense=inline_dense)
    assert files == ([path] if inline_dense else [path, tmp_path / "net.weights.npz"])
    assert (tmp_path / "net.weights.npz").exists() != inline_dense
    loaded = read_graphml(path)
    x = torch.randn(17, 6)
    assert torch.equal(loaded(x), net(x))
    assert loaded.config() == net.config()
    state, expected = loaded.state_dict(), net.state_dict()
    assert state.keys() == expected.keys()
    for key in expected:
        assert torch.equal(state[key], expected[key]), key


def test_graphml_round_trip_float64_identity_decoder(tmp_path):
    net = FreeNet(NCG.complete(8, num_outputs=2, seed=3), in_features=4, encoder="random", seed=0).double()
    with torch.no_grad():
        net.weight.add_(torch.randn(net.weight.shape, dtype=torch.float64) * 1e-9)
    path = tmp_path / "net.graphml"
    write_graphml(net, path, inline_dense=True)
    loaded = read_graphml(path)
    assert loaded.weight.dtype == torch.float64
    assert torch.equal(loaded.weight, net.weight)
    assert not loaded.encoder.weight.requires_grad
    x = torch.randn(5, 4, dtype=torch.float64)
    assert torch.equal(loaded(x), net(x))


def test_graphml_loads_in_networkx_with_exact_values(written, net):
    G = nx.read_graphml(written)
    graph = net.graph
    assert G.number_of_nodes() == graph.num_neurons and G.number_of_edges() == graph.num_edges
    assert G.graph["format"] == "ncg.freenet.graphml" and G.graph["in_features"] == 6
    for (s, t), w in zip(graph.edge_index.t().tolist(), graph.weight.tolist()):
        assert G.edges[f"n{s}", f"n{t}"]["weight"] == w
    for v in range(graph.num_neurons):
        node = G.nodes[f"n{v}"]
        assert node["bias"] == graph.bias[v].item()
        assert node["role"] == ("output" if v in graph.outputs.tolist() else "hidden")
        assert node["topo_index"] == graph.position[v].item()
        assert node["activation"] == ("identity" if node["role"] == "output" else "square_relu")
    assert nx.is_directed_acyclic_graph(G)


def test_graphml_keys_use_only_standard_types(written):
    root = ET.parse(written).getroot()
    ns = "{http://graphml.graphdrawing.org/xmlns}"
    assert root.tag == f"{ns}graphml"
    keys = root.findall(f"{ns}key")
    assert keys
    for key in keys:
        assert key.get("attr.type") in STANDARD_TYPES
        assert key.get("for") in {"graph", "node", "edge"}
        assert key.get("attr.name")
    declared = {key.get("id") for key in keys}
    used = {data.get("key") for data in root.iter(f"{ns}data")}
    assert used <= declared


def test_firing_rate_is_written_when_given(tmp_path, net):
    rate = np.linspace(0, 1, net.num_neurons)
    path = tmp_path / "rate.graphml"
    write_graphml(net, path, firing_rate=rate)
    G = nx.read_graphml(path)
    assert [G.nodes[f"n{v}"]["firing_rate"] for v in range(net.num_neurons)] == rate.tolist()
    activations = net.neuron_activations(torch.randn(50, 6))
    write_graphml(net, path, activations=activations)
    G = nx.read_graphml(path)
    assert G.nodes["n0"]["firing_rate"] == (activations[:, 0] > 0).double().mean().item()
    write_graphml(net, path)
    assert "firing_rate" not in nx.read_graphml(path).nodes["n0"]
    assert 'attr.name="firing_rate"' not in path.read_text()
    with pytest.raises(GraphMLError, match="at most one"):
        write_graphml(net, path, firing_rate=rate, activations=activations)
    with pytest.raises(GraphMLError, match=r"firing_rate must have shape \[30\]"):
        write_graphml(net, path, firing_rate=rate[:3])


@pytest.mark.slow
def test_graphml_round_trip_of_a_200k_edge_layered_net_is_exact(tmp_path):
    net = FreeNet(layered_start(784, 20_000, 10, depth=4, fan_in=10, seed=0), in_features=784, seed=0)
    path = tmp_path / "big.graphml"
    write_graphml(net, path)
    loaded = read_graphml(path)
    assert torch.equal(loaded.edge_index, net.edge_index) and torch.equal(loaded.weight, net.weight)
    x = torch.rand(8, 784)
    assert torch.equal(loaded(x), net(x))


def test_graphml_elements_in_another_layout_read_the_same(written, net):
    text = written.read_text()
    head, rest = text.split("    <node ", 1)
    graph_data = head[head.index("    <data "):]
    nodes = "    <node " + rest[:rest.index("    <edge ")]
    edges = rest[rest.index("    <edge "):rest.index("  </graph>")]
    # Edges before the nodes they name, graph attributes after both: GraphML allows any order.
    written.write_text(head.replace(graph_data, "") + edges + nodes + graph_data + "  </graph>\n</graphml>\n")
    x = torch.randn(7, 6)
    assert torch.equal(read_graphml(written)(x), net(x))


READ_PEAK = textwrap.dedent("""
    import resource, sys
    from ncg.io import read_graphml
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    net = read_graphml(sys.argv[1])
    print(net.graph.num_edges, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
""")


@pytest.mark.slow
def test_reading_a_million_edge_graphml_file_streams(tmp_path):  # 10 to 18 s
    net = FreeNet(layered_start(784, 100_000, 10, depth=8, fan_in=10, seed=0), in_features=784, seed=0)
    path = tmp_path / "big.graphml"
    write_graphml(net, path)
    edges = net.graph.num_edges
    del net
    # A fresh process, so the peak RSS is the read's (the file's checksum makes the read exact).
    result = subprocess.run([sys.executable, "-c", READ_PEAK, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    read_edges, increase_kib = map(int, result.stdout.split())
    assert read_edges == edges > 1_000_000
    # Measured: the whole-tree reader (ElementTree.parse) raised the peak RSS by 1675 MiB, the
    # streaming one by 160 MiB (50 MiB of it while streaming, the rest building the model).
    assert increase_kib < 600 * 2**10, f"reading raised the peak RSS by {increase_kib / 2**10:.0f} MiB"


# ---------------------------------------------------------------------- GraphML errors
def rewrite(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_missing_and_non_xml_files(tmp_path):
    with pytest.raises(GraphMLError, match="does not exist"):
        read_graphml(tmp_path / "nope.graphml")
    path = tmp_path / "junk.graphml"
    path.write_text("this is not < xml")
    with pytest.raises(GraphMLError, match="not an XML file"):
        read_graphml(path)
    path.write_text("<html><body/></html>")
    with pytest.raises(GraphMLError, match=r"not GraphML: its root element is <html>"):
        read_graphml(path)


def test_plain_graphml_from_networkx_lacks_attributes(tmp_path):
    path = tmp_path / "plain.graphml"
    nx.write_graphml(nx.DiGraph([(0, 1)]), path)
    with pytest.raises(GraphMLError, match=r"lacks the graph attributes \['format', 'format_version'"):
        read_graphml(path)


def test_missing_graph_attribute_is_named(written):
    rewrite(written, '<data key="graph_in_features">6</data>', "")
    with pytest.raises(GraphMLError, match=r"lacks the graph attributes \['in_features'\]"):
        read_graphml(written)


def test_wrong_format_and_version(written):
    rewrite(written, '<data key="graph_format_version">1</data>', '<data key="graph_format_version">7</data>')
    with pytest.raises(GraphMLError, match="format version 7; this ncg reads version 1"):
        read_graphml(written)
    rewrite(written, ">ncg.freenet.graphml<", ">other.format<")
    with pytest.raises(GraphMLError, match="has format 'other.format'"):
        read_graphml(written)


def test_missing_side_file_names_its_path(written):
    side = written.with_name("net.weights.npz")
    side.unlink()
    with pytest.raises(GraphMLError, match=f"dense weights file {side} does not exist"):
        read_graphml(written)


def test_cycle_names_the_nodes(written):
    back_edge = '<edge source="n29" target="n0"><data key="edge_weight">0.5</data></edge>'
    rewrite(written, "  </graph>", f"    {back_edge}\n  </graph>")
    with pytest.raises(GraphMLError, match=r"directed cycle through nodes \['n0', .*'n29'"):
        read_graphml(written)


def test_edge_and_node_attribute_problems(written):
    text = written.read_text()
    written.write_text(text.replace('source="n0"', 'source="ghost"', 1))
    with pytest.raises(GraphMLError, match="names node 'ghost', which is not declared"):
        read_graphml(written)
    first_weight = text.index('<data key="edge_weight">')
    end = text.index("</data>", first_weight)
    written.write_text(text[:first_weight] + '<data key="edge_weight">abc' + text[end:])
    with pytest.raises(GraphMLError, match="attribute 'weight' is 'abc', which is not a valid double"):
        read_graphml(written)
    written.write_text(text.replace('<data key="node_bias">', '<data key="node_nothing">', 1))
    with pytest.raises(GraphMLError, match="no <key> element declares"):
        read_graphml(written)
    start = text.index('<data key="node_bias">')
    written.write_text(text[:start] + text[text.index("</data>", start) + len("</data>"):])
    with pytest.raises(GraphMLError, match=r"node 'n0' lacks the attributes \['bias'\]"):
        read_graphml(written)
    written.write_text(text.replace('<data key="node_neuron_id">0<', '<data key="node_neuron_id">' + "9" * 30 + "<", 1))
    with pytest.raises(GraphMLError, match="attribute 'neuron_id' is 9+, not a 64-bit number"):
        read_graphml(written)


def test_key_defaults_apply(written, net):
    text = written.read_text()
    start = text.index('<data key="node_bias">')
    text = text[:start] + text[text.index("</data>", start) + len("</data>"):]
    declaration = '<key id="node_bias" for="node" attr.name="bias" attr.type="double"/>'
    text = text.replace(declaration, declaration[:-2] + "><default>0.25</default></key>")
    written.write_text(text)
    with pytest.raises(GraphMLError, match="checksum mismatch"):
        read_graphml(written)  # a deliberate edit of the model must drop the checksum
    start = text.index('<data key="graph_checksum">')
    written.write_text(text[:start] + text[text.index("</data>", start) + len("</data>"):])
    loaded = read_graphml(written)
    assert loaded.bias[0].item() == 0.25
    assert torch.equal(loaded.bias[1:], net.bias[1:])


def test_shape_mismatches(tmp_path, net):
    path = tmp_path / "net.graphml"
    write_graphml(net, path, inline_dense=True)
    rewrite(path, '<data key="graph_encoder_shape">[30, 6]</data>', '<data key="graph_encoder_shape">[30, 5]</data>')
    with pytest.raises(GraphMLError, match=r"declare the dense weights \{'encoder_weight': \[30, 5\].* need "
                                           r"\{'encoder_weight': \[30, 6\]"):
        read_graphml(path)  # refused before the weights are read
    write_graphml(net, path, inline_dense=True)
    text = path.read_text()
    start = text.index('<data key="graph_encoder_weight">') + len('<data key="graph_encoder_weight">')
    path.write_text(text[:start] + text[start + 8:])  # 6 bytes = 1.5 values fewer
    with pytest.raises(GraphMLError, match=r"encoder_weight holds 178 values, its shape \[30, 6\] needs 180"):
        read_graphml(path)
    write_graphml(net, path)
    side = path.with_name("net.weights.npz")
    np.savez(side, encoder_weight=np.zeros((30, 5), np.float32), decoder_weight=np.zeros((3, 4), np.float32),
             decoder_bias=np.zeros(3, np.float32))
    with pytest.raises(GraphMLError, match=r"encoder_weight has shape \[30, 5\], the file declares \[30, 6\]"):
        read_graphml(path)


def test_graphml_problems_are_reported_in_a_fixed_order(written):
    text = written.read_text()
    bad_weight = text.replace('<data key="edge_weight">', '<data key="edge_weight">abc', 1)
    written.write_text(bad_weight.replace('source="n0"', 'source="ghost"', 1))
    with pytest.raises(GraphMLError, match="names node 'ghost'"):  # of the first edge's two problems, its end
        read_graphml(written)
    written.write_text(bad_weight.replace('<data key="graph_dtype">float32', '<data key="graph_dtype">int8'))
    with pytest.raises(GraphMLError, match="dtype is 'int8'"):  # graph attributes come before edges
        read_graphml(written)
    written.write_text(bad_weight[:-20])
    with pytest.raises(GraphMLError, match="not an XML file"):  # the syntax, though the end comes last
        read_graphml(written)


def test_write_rejects_a_bare_graph(tmp_path):
    with pytest.raises(GraphMLError, match="expects a FreeNet \\(graph, encoder and decoder\\), got NCG"):
        write_graphml(NCG.complete(3), tmp_path / "g.graphml")


# ---------------------------------------------------------------------- networkx
def test_networkx_round_trip_keeps_everything(net):
    graph = net.graph
    G = to_networkx(graph)
    assert list(G.nodes) == list(range(30))
    assert G.nodes[int(graph.outputs[1])]["output_index"] == 1
    assert_same_graph(from_networkx(G), graph)


def test_from_networkx_relabels_in_topological_order():
    G = nx.DiGraph()
    G.add_edge("out", "never", weight=1.0)  # inserted first, but not first topologically
    G.add_edge("in", "out", weight=2.0)
    graph, mapping = from_networkx(G, return_mapping=True)
    assert mapping == {"in": 0, "out": 1, "never": 2}
    assert graph.edge_index.tolist() == [[1, 0], [2, 1]]
    assert graph.weight.tolist() == [1.0, 2.0]
    assert graph.outputs.tolist() == [2]
    assert from_networkx(G, outputs=["out"]).outputs.tolist() == [1]


def test_from_networkx_errors():
    with pytest.raises(CycleError, match=r"through nodes \['a', 'b', 'c'\]"):
        from_networkx(nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a")]))
    with pytest.raises(CycleError, match=r"through nodes \['x'\]"):
        from_networkx(nx.DiGraph([("x", "x")]))
    with pytest.raises(NCGError, match="needs a networkx.DiGraph, got Graph"):
        from_networkx(nx.Graph([(0, 1)]))
    with pytest.raises(NCGError, match="empty graph"):
        from_networkx(nx.DiGraph())
    partial = nx.DiGraph()
    partial.add_edge(0, 1, weight=1.0)
    partial.add_edge(1, 2)
    with pytest.raises(NCGError, match=r"edge \(1, 2\) has no 'weight' attribute"):
        from_networkx(partial)
    with pytest.raises(NCGError, match=r"not in G: \['z'\]"):
        from_networkx(nx.DiGraph([(0, 1)]), outputs=["z"])


@given(dags(max_neurons=25))
def test_networkx_round_trip_on_random_dags(graph):
    assert_same_graph(from_networkx(to_networkx(graph)), graph)


@given(dags(max_neurons=20), st.randoms(use_true_random=False))
def test_arbitrary_labels_give_an_isomorphic_graph(graph, rng):
    G = to_networkx(graph)
    names = [f"neuron-{v}" for v in range(graph.num_neurons)]
    rng.shuffle(names)
    relabeled = nx.relabel_nodes(G, dict(enumerate(names)))
    rebuilt, mapping = from_networkx(relabeled, return_mapping=True)
    back = {mapping[names[v]]: v for v in range(graph.num_neurons)}
    edges = {(back[s], back[t]): w for s, t, w in zip(*rebuilt.edge_index.tolist(), rebuilt.weight.tolist())}
    assert edges == dict(zip(map(tuple, graph.edge_index.t().tolist()), graph.weight.tolist()))
    assert [back[v] for v in rebuilt.outputs.tolist()] == graph.outputs.tolist()
    assert [back[v] for v in rebuilt.order.tolist()] == graph.order.tolist()


# ---------------------------------------------------------------------- PyG
def test_pyg_round_trip(net):
    graph = net.graph
    data = to_pyg(graph)
    assert data.num_nodes == 30 and data.edge_weight.shape == (graph.num_edges,)
    assert data.is_output.sum().item() == 4 and data.is_output.dtype == torch.bool
    assert_same_graph(from_pyg(data), graph)


def test_from_pyg_minimal_data():
    from torch_geometric.data import Data

    data = Data(edge_index=torch.tensor([[0, 0, 1], [1, 2, 2]]), edge_attr=torch.tensor([[1.0], [2.0], [3.0]]),
                num_nodes=4)
    graph = from_pyg(data)
    assert graph.weight.tolist() == [1.0, 2.0, 3.0]
    assert graph.outputs.tolist() == [2, 3]
    mask = Data(edge_index=torch.tensor([[0], [1]]), is_output=torch.tensor([True, True]), num_nodes=2)
    assert from_pyg(mask).outputs.tolist() == [0, 1]


@given(dags(max_neurons=25))
def test_pyg_round_trip_on_random_dags(graph):
    assert_same_graph(from_pyg(to_pyg(graph)), graph)


# ---------------------------------------------------------------------- summary
def test_summary_of_a_complete_dag():
    stats = summary(NCG.complete(10, num_outputs=3))
    assert stats == {
        "neurons": 10, "edges": 45, "outputs": 3, "complete_edges": 45, "density": 1.0, "sparsity": 0.0,
        "depth": 9, "generations": 10, "graph_parameters": 55, "parameters": 55,
    }
    assert summary(NCG.complete(1))["density"] == 1.0


def test_summary_of_a_random_dag_and_a_model():
    graph = NCG.random_dag(20, num_edges=50, num_outputs=2, seed=4)
    stats = summary(graph)
    assert stats["complete_edges"] == 190
    assert stats["density"] == pytest.approx(50 / 190)
    assert stats["sparsity"] == pytest.approx(140 / 190)
    assert stats["depth"] == nx.dag_longest_path_length(to_networkx(graph), weight=None)
    assert stats["generations"] == stats["depth"] + 1
    net = FreeNet(graph, in_features=7, out_features=5)
    model_stats = summary(net)
    assert model_stats["graph_parameters"] == 70
    assert model_stats["parameters"] == 70 + 20 * 7 + 5 * 2 + 5
    with pytest.raises(NCGError, match="expects an NCG or a FreeNet, got str"):
        summary("graph")


def test_io_functions_take_a_freenet_or_an_ncg():
    from ncg.build import sparse_start
    from ncg.io import from_networkx, from_pyg, to_networkx, to_pyg

    net = FreeNet(sparse_start(6, 4, 2, fan_in=3, seed=0), in_features=6, seed=0)
    G = to_networkx(net)
    assert G.graph["config"] == net.config() and G.nodes[0]["role"] == "input"
    assert torch.equal(from_networkx(G).inputs, net.inputs)
    data = to_pyg(net)
    assert data.x.shape == (net.num_neurons, 6) and torch.equal(from_pyg(data).inputs, net.inputs)
    with pytest.raises(NCGError, match="to_networkx expects an NCG or a FreeNet, got str"):
        to_networkx("graph")
    with pytest.raises(NCGError, match="to_pyg expects an NCG or a FreeNet, got int"):
        to_pyg(3)


def _written(tmp_path, inline=False):
    net = FreeNet(NCG.random_dag(8, density=0.5, num_outputs=2, seed=0), in_features=3, seed=0)
    path = tmp_path / "net.graphml"
    write_graphml(net, path, inline_dense=inline)
    return net, path


def test_graphml_nodes_saved_in_another_order_map_by_id(tmp_path):
    import re as regex

    net, path = _written(tmp_path)
    text = path.read_text()
    nodes = regex.findall(r"    <node .*?</node>\n", text, regex.S)
    shuffled = text.replace("".join(nodes), "".join(reversed(nodes)))
    assert shuffled != text
    path.write_text(shuffled)
    x = torch.randn(5, 3)
    assert torch.equal(read_graphml(path)(x), net(x))
    path.write_text(shuffled.replace('id="n3"', 'id="neuron-3"').replace('"n3"', '"neuron-3"'))
    with pytest.raises(GraphMLError, match="node ids must be n0 .. n7"):
        read_graphml(path)


def test_graphml_non_finite_dense_values_are_refused(tmp_path):
    net, path = _written(tmp_path)
    side = tmp_path / "net.weights.npz"
    with np.load(side) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["encoder_weight"][0, 0] = np.nan
    np.savez(side, **arrays)
    with pytest.raises(GraphMLError, match="encoder_weight holds NaN"):
        read_graphml(path)


def test_graphml_key_declared_with_another_type_is_a_graphml_error(tmp_path):
    _, path = _written(tmp_path)
    path.write_text(path.read_text().replace('attr.name="weight" attr.type="double"', 'attr.name="weight" attr.type="string"'))
    with pytest.raises(GraphMLError, match="'weight' is declared with attr.type 'string', expected 'double'"):
        read_graphml(path)


def test_graphml_dense_file_must_stay_in_its_folder(tmp_path):
    _, path = _written(tmp_path)
    path.write_text(path.read_text().replace(">net.weights.npz<", ">../elsewhere/net.weights.npz<"))
    with pytest.raises(GraphMLError, match="must name a file in the GraphML file's own folder"):
        read_graphml(path)


def test_from_networkx_checks_input_indices():
    from ncg.build import sparse_start
    from ncg.io import from_networkx, to_networkx

    G = to_networkx(sparse_start(3, 2, 1, fan_in=2, seed=0))
    G.nodes[2]["input_index"] = 5
    with pytest.raises(NCGError, match="input_index values must be the integers 0 .. 2"):
        from_networkx(G)
