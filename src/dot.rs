//! Stage 4a: drawings. A checked (possibly partial) IR becomes a [`Drawing`]: one node per
//! layer (name, type, key parameters, coloured by kind), edges along blobs labelled with
//! their per-sample shapes, net outputs and missing inputs as small extra nodes. It is
//! written as Graphviz DOT ([`to_dot`]) or laid out in pure Rust as SVG ([`to_svg`]).
//!
//! Every name goes through [`escape`], so quotes, backslashes, braces, colons and
//! non-ASCII letters in layer and blob names give DOT that `dot` accepts and shows as
//! written.

use std::collections::HashMap;

use crate::ir::NetIr;
use crate::layers::Kind;
use crate::spec::NetSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Layer(Kind),
    /// A blob nobody consumes (a net output).
    Output,
    /// A bottom nobody produces (the spec has an error there).
    Missing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub lines: Vec<String>,
    pub kind: NodeKind,
    /// Not in every phase drawn (`--phase all`): drawn dashed.
    pub partial: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub label: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Drawing {
    pub title: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Graphviz's rank directions.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankDir {
    #[default]
    #[value(name = "TB")]
    Tb,
    #[value(name = "LR")]
    Lr,
    #[value(name = "BT")]
    Bt,
    #[value(name = "RL")]
    Rl,
}

impl RankDir {
    pub fn as_str(self) -> &'static str {
        match self {
            RankDir::Tb => "TB",
            RankDir::Lr => "LR",
            RankDir::Bt => "BT",
            RankDir::Rl => "RL",
        }
    }
}

/// Fill colours by kind (ColorBrewer Set3, readable with black text).
pub fn color(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Layer(Kind::Data) => "#8dd3c7",
        NodeKind::Layer(Kind::Convolution) => "#fb8072",
        NodeKind::Layer(Kind::Pooling) => "#fdb462",
        NodeKind::Layer(Kind::InnerProduct) => "#bc80bd",
        NodeKind::Layer(Kind::Neuron) => "#ccebc5",
        NodeKind::Layer(Kind::Normalization) => "#80b1d3",
        NodeKind::Layer(Kind::Loss) => "#ffed6f",
        NodeKind::Layer(Kind::Other) => "#d9d9d9",
        NodeKind::Output => "#ffffff",
        NodeKind::Missing => "#ffffff",
    }
}

fn shape_text(s: &[usize]) -> String {
    if s.len() <= 1 {
        return "scalar".into();
    }
    s[1..]
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// Builds the drawing of `irs` (one phase, or several merged for `--phase all`).
pub fn drawing(spec: &NetSpec, irs: &[(&'static str, &NetIr)]) -> Drawing {
    let mut d = Drawing {
        title: spec.name.clone().unwrap_or_else(|| "net".into()),
        ..Drawing::default()
    };
    let mut layer_node: HashMap<usize, usize> = HashMap::new();
    let mut extra_node: HashMap<(usize, String, bool), usize> = HashMap::new();
    let mut edge_index: HashMap<(usize, usize, String), usize> = HashMap::new();
    let mut phases_of: HashMap<usize, Vec<&str>> = HashMap::new();

    for (phase, ir) in irs {
        for l in &ir.layers {
            let si = l.spec_index;
            let entry = phases_of.entry(si).or_default();
            if !entry.contains(phase) {
                entry.push(phase);
            }
            if layer_node.contains_key(&si) {
                continue;
            }
            let spec_layer = &spec.layers[si];
            let ty = layers_type_name(spec_layer, l.layer.ty().name);
            let mut lines = vec![spec_layer.name.clone(), ty];
            let details = l.layer.details();
            if !details.is_empty() {
                lines.push(details.join(", "));
            }
            if l.in_place {
                lines.push("(in place)".into());
            }
            layer_node.insert(si, d.nodes.len());
            d.nodes.push(Node {
                lines,
                kind: NodeKind::Layer(l.layer.ty().kind),
                partial: false,
            });
        }
    }
    for (_, ir) in irs {
        let mut consumed = vec![false; ir.blobs.len()];
        for l in &ir.layers {
            let to = layer_node[&l.spec_index];
            for &b in &l.bottoms {
                consumed[b] = true;
                let blob = &ir.blobs[b];
                let from = layer_node[&ir.layers[blob.producer].spec_index];
                add_edge(
                    &mut d,
                    &mut edge_index,
                    from,
                    to,
                    &blob.name,
                    blob.shape.as_deref(),
                );
            }
        }
        for (li, name) in &ir.dangling {
            let to = layer_node[&ir.layers[*li].spec_index];
            let from = *extra_node
                .entry((usize::MAX, name.clone(), true))
                .or_insert_with(|| {
                    d.nodes.push(Node {
                        lines: vec![name.clone(), "(not produced)".into()],
                        kind: NodeKind::Missing,
                        partial: false,
                    });
                    d.nodes.len() - 1
                });
            add_edge(&mut d, &mut edge_index, from, to, name, None);
        }
        for (b, blob) in ir.blobs.iter().enumerate() {
            if consumed[b] {
                continue;
            }
            // Later in-place layers consume the name under a new id.
            let producer = &ir.layers[blob.producer];
            let superseded = ir.blobs[b + 1..]
                .iter()
                .any(|x| x.name == blob.name && ir.layers[x.producer].in_place);
            if superseded {
                continue;
            }
            let from = layer_node[&producer.spec_index];
            let to = *extra_node
                .entry((producer.spec_index, blob.name.clone(), false))
                .or_insert_with(|| {
                    d.nodes.push(Node {
                        lines: vec![blob.name.clone()],
                        kind: NodeKind::Output,
                        partial: false,
                    });
                    d.nodes.len() - 1
                });
            add_edge(&mut d, &mut edge_index, from, to, "", blob.shape.as_deref());
        }
    }
    if irs.len() > 1 {
        for (si, n) in &layer_node {
            let phases = &phases_of[si];
            if phases.len() < irs.len() {
                d.nodes[*n].partial = true;
                d.nodes[*n]
                    .lines
                    .push(format!("[{} only]", phases.join(", ")));
            }
        }
    }
    d
}

/// The type as the spec writes it (an unknown type keeps its text).
fn layers_type_name(l: &crate::spec::LayerSpec, known: &str) -> String {
    if known == "?" {
        format!("{} (unknown type)", l.ty)
    } else {
        known.to_string()
    }
}

fn add_edge(
    d: &mut Drawing,
    index: &mut HashMap<(usize, usize, String), usize>,
    from: usize,
    to: usize,
    name: &str,
    shape: Option<&[usize]>,
) {
    let key = (from, to, name.to_string());
    let mut label = Vec::new();
    if !name.is_empty() {
        label.push(name.to_string());
    }
    if let Some(s) = shape {
        label.push(shape_text(s));
    }
    match index.get(&key) {
        Some(&e) => {
            // A shape known in a later phase fills in an unknown one.
            if d.edges[e].label.len() < label.len() {
                d.edges[e].label = label;
            }
        }
        None => {
            index.insert(key, d.edges.len());
            d.edges.push(Edge { from, to, label });
        }
    }
}

/// Escapes text for a double-quoted DOT string: backslashes and quotes are escaped (so
/// Graphviz's `\N`-style sequences cannot be triggered by a name), `&` becomes `&amp;`
/// (Graphviz reads entities such as `&lt;` in labels), control characters
/// become spaces; everything else, non-ASCII included, is kept as written (DOT is UTF-8).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            // Graphviz decodes HTML entities in plain labels too.
            '&' => out.push_str("&amp;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn label(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| escape(l))
        .collect::<Vec<_>>()
        .join("\\n")
}

/// The drawing as Graphviz DOT.
pub fn to_dot(d: &Drawing, rankdir: RankDir) -> String {
    let mut s = format!("digraph \"{}\" {{\n", escape(&d.title));
    s += &format!(
        "  graph [rankdir={}, fontname=\"Helvetica\", label=\"{}\", labelloc=t];\n",
        rankdir.as_str(),
        escape(&d.title)
    );
    s += "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n";
    s += "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n";
    for (i, n) in d.nodes.iter().enumerate() {
        let extra = match n.kind {
            NodeKind::Layer(_) if n.partial => ", style=\"rounded,filled,dashed\"",
            NodeKind::Layer(_) => "",
            NodeKind::Output => ", shape=ellipse, style=solid, fontsize=9",
            NodeKind::Missing => {
                ", shape=ellipse, style=dashed, color=red, fontcolor=red, fontsize=9"
            }
        };
        s += &format!(
            "  n{i} [label=\"{}\", fillcolor=\"{}\"{extra}];\n",
            label(&n.lines),
            color(n.kind)
        );
    }
    for e in &d.edges {
        if e.label.is_empty() {
            s += &format!("  n{} -> n{};\n", e.from, e.to);
        } else {
            s += &format!(
                "  n{} -> n{} [label=\"{}\"];\n",
                e.from,
                e.to,
                label(&e.label)
            );
        }
    }
    s += "}\n";
    s
}

/// The drawing laid out and rendered to SVG in pure Rust (the `layout-rs` crate), for
/// machines without Graphviz. It knows top-to-bottom and left-to-right only: BT and RL
/// are drawn as TB and LR.
pub fn to_svg(d: &Drawing, rankdir: RankDir) -> String {
    use layout::backends::svg::SVGWriter;
    use layout::core::base::Orientation;
    use layout::core::color::Color;
    use layout::core::style::{LineStyleKind, StyleAttr};
    use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
    use layout::topo::layout::VisualGraph;

    let dir = match rankdir {
        RankDir::Tb | RankDir::Bt => Orientation::TopToBottom,
        RankDir::Lr | RankDir::Rl => Orientation::LeftToRight,
    };
    if d.nodes.is_empty() {
        // layout-rs cannot sort an empty graph.
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"0\" height=\"0\"></svg>\n"
            .into();
    }
    let mut vg = VisualGraph::new(dir);
    let handles: Vec<_> = d
        .nodes
        .iter()
        .map(|n| {
            let text = n.lines.join("\n");
            let (shape, fill) = match n.kind {
                NodeKind::Layer(_) => (ShapeKind::Box(text), color(n.kind)),
                _ => (ShapeKind::Circle(text), "#ffffff"),
            };
            let border = if n.kind == NodeKind::Missing {
                Color::fast("red")
            } else {
                Color::fast("black")
            };
            let look = StyleAttr::new(
                border,
                1,
                Some(Color::fast(fill)),
                if matches!(n.kind, NodeKind::Layer(_)) {
                    6
                } else {
                    0
                },
                12,
            );
            let size = layout::std_shapes::render::get_shape_size(dir.flip(), &shape, 12, false);
            vg.add_node(Element::create(shape, look, dir.flip(), size))
        })
        .collect();
    // layout-rs checks each edge it adds for a path back (to reverse cycles) and, with
    // validation on, every edge again after each one, by a search that walks every path:
    // exponential in the residual blocks of a ResNet (ResNet-101 did not finish in
    // minutes). The drawing is acyclic, so validation is off, and edges go in in
    // topological order of their source, so that an edge's head has no edges out yet and
    // each check ends at once.
    vg.dag.set_validate(false);
    let rank = topological_rank(d.nodes.len(), &d.edges);
    let mut edges: Vec<&Edge> = d.edges.iter().collect();
    edges.sort_by_key(|e| rank[e.from]);
    for e in edges {
        let look = StyleAttr::new(Color::fast("#555555"), 1, None, 0, 10);
        let arrow = Arrow::new(
            LineEndKind::None,
            LineEndKind::Arrow,
            LineStyleKind::Normal,
            &e.label.join(" "),
            &look,
            &None,
            &None,
        );
        vg.add_edge(arrow, handles[e.from], handles[e.to]);
    }
    let mut svg = SVGWriter::new();
    vg.do_it(false, false, false, &mut svg);
    svg.finalize()
}

/// Each node's place in a topological order of `edges` (Kahn's; nodes on a cycle, which
/// a checked net does not have, come last in index order).
fn topological_rank(nodes: usize, edges: &[Edge]) -> Vec<usize> {
    let mut indegree = vec![0usize; nodes];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for e in edges {
        indegree[e.to] += 1;
        out[e.from].push(e.to);
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..nodes).filter(|&n| indegree[n] == 0).collect();
    let mut rank = vec![usize::MAX; nodes];
    let mut next = 0;
    while let Some(n) = ready.pop_front() {
        rank[n] = next;
        next += 1;
        for &m in &out[n] {
            indegree[m] -= 1;
            if indegree[m] == 0 {
                ready.push_back(m);
            }
        }
    }
    for r in rank.iter_mut().filter(|r| **r == usize::MAX) {
        *r = next;
        next += 1;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_text_and_neutralises_dot_syntax() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x y");
        assert_eq!(escape("a&lt;b"), "a&amp;lt;b");
        assert_eq!(escape("{naïve: 名前}"), "{naïve: 名前}");
        // A trailing backslash cannot escape the closing quote.
        assert_eq!(escape("end\\"), "end\\\\");
    }
    /// 60 residual blocks (two paths each, 2^60 paths end to end), listed sinks first:
    /// laid out without Graphviz, every node drawn. (layout-rs walked every path when
    /// checking edges; the ResNets of the corpus did not finish.)
    #[test]
    fn svg_layout_of_many_residual_blocks_finishes() {
        let node = |i: usize| Node {
            lines: vec![format!("n{i}")],
            kind: NodeKind::Layer(crate::layers::Kind::Convolution),
            partial: false,
        };
        let blocks = 60;
        let nodes: Vec<Node> = (0..=2 * blocks).map(node).collect();
        let mut edges = Vec::new();
        for b in (0..blocks).rev() {
            let (a, mid, z) = (2 * b, 2 * b + 1, 2 * b + 2);
            for (from, to) in [(a, mid), (mid, z), (a, z)] {
                edges.push(Edge {
                    from,
                    to,
                    label: vec![],
                });
            }
        }
        let rank = topological_rank(nodes.len(), &edges);
        assert!(edges.iter().all(|e| rank[e.from] < rank[e.to]));
        let d = Drawing {
            title: "deep".into(),
            nodes,
            edges,
        };
        let svg = to_svg(&d, RankDir::Tb);
        for i in 0..=2 * blocks {
            assert!(svg.contains(&format!(">n{i}<")), "node n{i} drawn");
        }
    }
}
