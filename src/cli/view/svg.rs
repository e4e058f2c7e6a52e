//! `graph --format svg`: layout-rs (a pure-Rust Sugiyama layout) places
//! the picture's shapes and routes its edges; netloom draws them: text
//! centred in its shape, each edge's label on the edge itself (a label is
//! laid out as a small node the edge passes through, so it never floats
//! between two edges), hosts as clusters around their nodes, and the
//! canvas cut to the drawing.

use std::fmt::Write;

use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use super::picture::{Edge, Picture, THIS_MACHINE};

const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";
const NODE_FONT_PX: f64 = 14.0;
const LABEL_FONT_PX: f64 = 12.0;
/// A generous average glyph width (in em) of the sans-serif fonts above,
/// so that text never overflows its shape.
const GLYPH_EM: f64 = 0.62;
const LINE_EM: f64 = 1.25;
/// Room between a cluster's nodes and its border, and for its title.
const CLUSTER_PAD: f64 = 10.0;
const CLUSTER_TITLE: f64 = 20.0;
const MARGIN: f64 = 12.0;

/// A rectangle: top-left corner and size.
#[derive(Clone, Copy, Debug)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn right(self) -> f64 {
        self.x + self.w
    }

    fn bottom(self) -> f64 {
        self.y + self.h
    }

    fn union(self, other: Rect) -> Rect {
        let (x, y) = (self.x.min(other.x), self.y.min(other.y));
        let (right, bottom) = (
            self.right().max(other.right()),
            self.bottom().max(other.bottom()),
        );
        Rect {
            x,
            y,
            w: right - x,
            h: bottom - y,
        }
    }

    fn grown(self, left_right: f64, top: f64, bottom: f64) -> Rect {
        Rect {
            x: self.x - left_right,
            y: self.y - top,
            w: self.w + 2.0 * left_right,
            h: self.h + top + bottom,
        }
    }

    fn overlaps(self, other: Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }
}

/// What layout-rs placed, by the id each shape and edge was given.
#[derive(Default)]
struct Placed {
    /// `n{i}`: node i of the picture; `l{i}`: the label of edge i.
    shapes: Vec<(String, Rect)>,
    /// Each edge's SVG path, and whether it is dashed.
    edges: Vec<(String, bool)>,
}

impl Placed {
    /// Where the node with this picture id was placed.
    fn rect(&self, id: &str, picture: &Picture) -> Option<Rect> {
        let key = format!("n{}", picture.index(id)?);
        self.shapes.iter().find(|(k, _)| *k == key).map(|(_, r)| *r)
    }
}

impl RenderBackend for Placed {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        if let Some(id) = properties {
            let rect = Rect {
                x: xy.x,
                y: xy.y,
                w: size.x,
                h: size.y,
            };
            self.shapes.push((id, rect));
        }
    }

    fn draw_line(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_circle(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    /// Text is drawn from the picture's own labels, centred in the shapes.
    fn draw_text(&mut self, _: Point, _: &str, _: &StyleAttr) {}

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        _head: (bool, bool),
        _look: &StyleAttr,
        _properties: Option<String>,
        _text: &str,
    ) {
        let [first, second, rest @ ..] = path else {
            return;
        };
        // The first pair is the exit vector, the others entry vectors of
        // the next points (layout-rs's own SVG writer reads them so too).
        let mut d = format!(
            "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1}",
            first.0.x,
            first.0.y,
            first.1.x,
            first.1.y,
            second.0.x,
            second.0.y,
            second.1.x,
            second.1.y
        );
        for point in rest {
            let _ = write!(
                d,
                " S {:.1} {:.1}, {:.1} {:.1}",
                point.0.x, point.0.y, point.1.x, point.1.y
            );
        }
        self.edges.push((d, dashed));
    }

    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        0
    }
}

/// The size text takes at `font_px`, plus `pad` on every side.
fn text_size(text: &str, font_px: f64, pad: f64) -> Point {
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let lines = text.lines().count().max(1);
    Point::new(
        widest as f64 * font_px * GLYPH_EM + 2.0 * pad,
        lines as f64 * font_px * LINE_EM + 2.0 * pad,
    )
}

/// A node's fill colour and corner radius, by the kind of thing it is.
fn node_look(shape: &str) -> (&'static str, f64) {
    match shape {
        "ellipse" => ("#fff4c2", 16.0),
        "box" => ("#d7e8fa", 3.0),
        "box3d" => ("#e4e4e4", 3.0),
        _ => ("#d9f2d0", 8.0),
    }
}

/// One layout of the picture; `hosts_in_labels` names each node's host in
/// its label (for when host clusters cannot be drawn).
fn place(picture: &Picture, hosts_in_labels: bool) -> Placed {
    let mut graph = VisualGraph::new(Orientation::TopToBottom);
    let style = StyleAttr::new(Color::fast("black"), 1, None, 0, NODE_FONT_PX as usize);
    let handles: Vec<_> = (0..picture.nodes.len())
        .map(|i| {
            let label = node_label(picture, i, hosts_in_labels);
            let size = text_size(&label, NODE_FONT_PX, 10.0);
            // Elements of a top-to-bottom graph are made left-to-right, as
            // layout-rs's own DOT reader makes them.
            graph.add_node(Element::create_with_properties(
                ShapeKind::new_box(&label),
                style.clone(),
                Orientation::LeftToRight,
                size,
                format!("n{i}"),
            ))
        })
        .collect();
    let line = |dashed: bool| {
        let style_kind = if dashed {
            LineStyleKind::Dashed
        } else {
            LineStyleKind::Normal
        };
        Arrow::new(
            LineEndKind::None,
            LineEndKind::None,
            style_kind,
            "",
            &style,
            &None,
            &None,
        )
    };
    for (i, edge) in picture.edges.iter().enumerate() {
        let (Some(from), Some(to)) = (picture.index(&edge.from), picture.index(&edge.to)) else {
            continue;
        };
        if edge.label.is_empty() {
            graph.add_edge(line(edge.dashed), handles[from], handles[to]);
            continue;
        }
        let size = text_size(&edge_text(edge, true), LABEL_FONT_PX, 3.0);
        let label = graph.add_node(Element::create_with_properties(
            ShapeKind::new_box(&edge.label),
            style.clone(),
            Orientation::LeftToRight,
            size,
            format!("l{i}"),
        ));
        graph.add_edge(line(edge.dashed), handles[from], label);
        graph.add_edge(line(edge.dashed), label, handles[to]);
    }
    let mut placed = Placed::default();
    // layout-rs refuses (panics on) a graph without nodes.
    if !picture.nodes.is_empty() {
        graph.do_it(false, false, false, &mut placed);
    }
    placed
}

/// An edge's label; a link's two ends one above the other, each on the
/// side of its own node.
fn edge_text(edge: &Edge, from_above: bool) -> String {
    match &edge.ends {
        Some([from, to]) if from_above => format!("{from}\n{to}"),
        Some([from, to]) => format!("{to}\n{from}"),
        None => edge.label.clone(),
    }
}

fn node_label(picture: &Picture, index: usize, hosts_in_labels: bool) -> String {
    let node = &picture.nodes[index];
    match node.host.as_deref() {
        Some(host)
            if hosts_in_labels && host != THIS_MACHINE && !node.label.starts_with("host ") =>
        {
            format!("{}\non {host}", node.label)
        }
        _ => node.label.clone(),
    }
}

/// A host's cluster: around its nodes and the labels of edges inside it.
fn clusters(picture: &Picture, placed: &Placed) -> Vec<(String, Rect)> {
    let rect_of = |id: &str| {
        placed
            .shapes
            .iter()
            .find(|(shape, _)| shape == id)
            .map(|(_, r)| *r)
    };
    let mut clusters = Vec::new();
    for host in &picture.hosts {
        let on_host = |id: &str| {
            picture
                .index(id)
                .is_some_and(|i| picture.nodes[i].host.as_deref() == Some(host))
        };
        let nodes = (0..picture.nodes.len())
            .filter(|&i| picture.nodes[i].host.as_deref() == Some(host))
            .map(|i| format!("n{i}"));
        let labels = (0..picture.edges.len())
            .filter(|&i| on_host(&picture.edges[i].from) && on_host(&picture.edges[i].to))
            .map(|i| format!("l{i}"));
        let Some(area) = nodes
            .chain(labels)
            .filter_map(|id| rect_of(&id))
            .reduce(Rect::union)
        else {
            continue;
        };
        let title = if host == THIS_MACHINE {
            host.clone()
        } else {
            format!("host {host}")
        };
        let area = area.grown(CLUSTER_PAD, CLUSTER_PAD + CLUSTER_TITLE, CLUSTER_PAD);
        clusters.push((title, area));
    }
    clusters
}

/// Whether the clusters can be drawn: apart from each other and from the
/// shapes of other hosts and of nothing.
fn clusters_are_apart(clusters: &[(String, Rect)], picture: &Picture, placed: &Placed) -> bool {
    for (i, (_, a)) in clusters.iter().enumerate() {
        if clusters[i + 1..].iter().any(|(_, b)| a.overlaps(*b)) {
            return false;
        }
    }
    let host_of = |id: &str| -> Option<&str> {
        let index: usize = id.strip_prefix('n')?.parse().ok()?;
        picture.nodes[index].host.as_deref()
    };
    placed
        .shapes
        .iter()
        .filter(|(id, _)| id.starts_with('n'))
        .all(|(id, rect)| {
            clusters.iter().all(|(title, area)| {
                let owner = host_of(id).map(|h| {
                    if h == THIS_MACHINE {
                        h.to_string()
                    } else {
                        format!("host {h}")
                    }
                });
                owner.as_deref() == Some(title.as_str()) || !area.overlaps(*rect)
            })
        })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Text lines centred on (x, y).
fn centred_text(out: &mut String, x: f64, y: f64, text: &str, font_px: f64) {
    let lines: Vec<&str> = text.lines().collect();
    let first = y - (lines.len() as f64 - 1.0) / 2.0 * font_px * LINE_EM;
    let _ = write!(
        out,
        "<text x=\"{x:.1}\" text-anchor=\"middle\" dominant-baseline=\"central\" font-size=\"{font_px}\">"
    );
    for (i, line) in lines.iter().enumerate() {
        let line_y = first + i as f64 * font_px * LINE_EM;
        let _ = write!(
            out,
            "<tspan x=\"{x:.1}\" y=\"{line_y:.1}\">{}</tspan>",
            escape(line)
        );
    }
    out.push_str("</text>\n");
}

/// The SVG drawing of the picture.
pub fn render(picture: &Picture) -> String {
    let mut placed = place(picture, false);
    let mut drawn_clusters = clusters(picture, &placed);
    let hosts_in_labels = !clusters_are_apart(&drawn_clusters, picture, &placed);
    if hosts_in_labels {
        placed = place(picture, true);
        drawn_clusters.clear();
    }
    let Some(extent) = placed
        .shapes
        .iter()
        .map(|(_, r)| *r)
        .chain(drawn_clusters.iter().map(|(_, r)| *r))
        .reduce(Rect::union)
    else {
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"240\" height=\"40\"><text x=\"10\" y=\"25\" font-family=\"{FONT}\">topology {}: nothing to draw</text></svg>\n",
            escape(&picture.topology)
        );
    };
    let view = extent.grown(MARGIN, MARGIN, MARGIN);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"{x:.1} {y:.1} {w:.1} {h:.1}\" font-family=\"{FONT}\">\n",
        x = view.x,
        y = view.y,
        w = view.w,
        h = view.h
    );
    let _ = writeln!(
        out,
        "<title>topology {}</title>\n<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"white\"/>",
        escape(&picture.topology),
        view.x,
        view.y,
        view.w,
        view.h
    );
    for (title, area) in &drawn_clusters {
        let _ = writeln!(
            out,
            "<rect class=\"cluster\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"8\" fill=\"#f7f7f7\" stroke=\"#9a9a9a\"/>",
            area.x, area.y, area.w, area.h
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{NODE_FONT_PX}\" font-weight=\"bold\" fill=\"#555555\">{}</text>",
            area.x + 10.0,
            area.y + CLUSTER_TITLE,
            escape(title)
        );
    }
    for (d, dashed) in &placed.edges {
        let dash = if *dashed {
            " stroke-dasharray=\"6,4\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<path class=\"edge\" d=\"{d}\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1.5\"{dash}/>"
        );
    }
    for (id, rect) in &placed.shapes {
        let (cx, cy) = (rect.x + rect.w / 2.0, rect.y + rect.h / 2.0);
        let index: usize = id[1..].parse().expect("ids are made above");
        if id.starts_with('l') {
            // A label on its edge: the edge stops at its border.
            let _ = writeln!(
                out,
                "<rect class=\"label\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"3\" fill=\"white\" stroke=\"#c8c8c8\"/>",
                rect.x, rect.y, rect.w, rect.h
            );
            let edge = &picture.edges[index];
            // The edge from `from` comes into the label from above unless
            // `from` is below it and `to` is not.
            let from_above = match (
                placed.rect(&edge.from, picture),
                placed.rect(&edge.to, picture),
            ) {
                (Some(from), Some(to)) => from.y < rect.y || to.y > rect.y,
                _ => true,
            };
            centred_text(
                &mut out,
                cx,
                cy,
                &edge_text(edge, from_above),
                LABEL_FONT_PX,
            );
            continue;
        }
        let node = &picture.nodes[index];
        let (fill, radius) = node_look(node.shape);
        let _ = writeln!(
            out,
            "<rect class=\"node\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{radius}\" fill=\"{fill}\" stroke=\"#333333\"/>",
            rect.x, rect.y, rect.w, rect.h
        );
        let label = node_label(picture, index, hosts_in_labels);
        centred_text(&mut out, cx, cy, &label, NODE_FONT_PX);
    }
    out.push_str("</svg>\n");
    out
}
