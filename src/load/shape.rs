//! Every unknown key and wrong type of a file, in one run. serde stops at
//! the first mistake, so the parsed YAML is walked here against the JSON
//! Schema of the file's types (schemars). The schema is derived from the
//! same Rust types serde reads, so unlike a hand-kept table of keys it
//! cannot fall out of step with them.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::diagnostics::Diagnostic;
use crate::spec::{Sp, Topology};

/// A YAML value as written, each part with its place in the file.
enum Node {
    Map(Vec<(Sp<Node>, Sp<Node>)>),
    Seq(Vec<Sp<Node>>),
    Str(String),
    Int,
    Float,
    Bool,
    Null,
}

impl Node {
    fn describe(&self) -> String {
        match self {
            Node::Map(_) => "a mapping".into(),
            Node::Seq(_) => "a list".into(),
            Node::Str(text) => format!("the text `{}`", text.escape_default()),
            Node::Int | Node::Float => "a number".into(),
            Node::Bool => "true/false".into(),
            Node::Null => "nothing".into(),
        }
    }

    fn key_text(&self) -> Option<&str> {
        match self {
            Node::Str(text) => Some(text),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Bool)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Int)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Int)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Int)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Int)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Float)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Node, E> {
        Ok(Node::Str(text.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

/// The unknown keys and wrong types of a file, in file order; empty when
/// the YAML itself cannot be read (serde's error says why).
pub fn problems(text: &str, options: serde_saphyr::Options) -> Vec<Diagnostic> {
    let Ok(root) = serde_saphyr::from_str_with_options::<Sp<Node>>(text, options) else {
        return Vec::new();
    };
    let schema = serde_json::to_value(schemars::schema_for!(Topology)).expect("a schema");
    let walker = Walker {
        defs: &schema["$defs"],
        owners: owners_of_keys(&schema),
    };
    let mut found = Vec::new();
    walker.check(&root, &schema, "the file", &mut found);
    found.sort_by_key(|d| (d.span.line, d.span.column));
    found
}

struct Walker<'s> {
    defs: &'s Value,
    /// Each key of an object type, and the types that have it: to say
    /// where a key that is misplaced belongs.
    owners: BTreeMap<String, Vec<String>>,
}

impl Walker<'_> {
    fn resolve<'v>(&'v self, schema: &'v Value) -> &'v Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/$defs/");
                &self.defs[name]
            }
            None => schema,
        }
    }

    /// Checks `node`, the value of `key`, against `schema`.
    fn check(&self, node: &Sp<Node>, schema: &Value, key: &str, found: &mut Vec<Diagnostic>) {
        let schema = self.resolve(schema);
        let alternatives = schema["anyOf"].as_array().or(schema["oneOf"].as_array());
        if let Some(alternatives) = alternatives {
            let fitting = alternatives
                .iter()
                .map(|alternative| self.resolve(alternative))
                .find(|alternative| self.fits(&node.value, alternative));
            match fitting {
                Some(alternative) => self.check(node, alternative, key, found),
                None => found.push(self.wrong_type(node, schema, key)),
            }
            return;
        }
        if !fits_type(&node.value, schema) {
            found.push(self.wrong_type(node, schema, key));
            return;
        }
        match &node.value {
            Node::Map(entries) => self.check_object(entries, schema, key, found),
            Node::Seq(items) => {
                for item in items {
                    self.check(item, &schema["items"], key, found);
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &self,
        entries: &[(Sp<Node>, Sp<Node>)],
        schema: &Value,
        owner: &str,
        found: &mut Vec<Diagnostic>,
    ) {
        let properties = schema["properties"].as_object();
        for (key, value) in entries {
            let Some(name) = key.value.key_text() else {
                continue;
            };
            if let Some(property) = properties.and_then(|p| p.get(name)) {
                self.check(value, property, name, found);
            } else if schema["additionalProperties"].is_object() {
                let item = &schema["additionalProperties"];
                let mut wrong = Vec::new();
                self.check(value, item, name, &mut wrong);
                // `interfaces:` one level too far left reads as a pod named
                // "interfaces": say where it belongs instead.
                if !wrong.is_empty() && self.resolve(item)["properties"].get(name).is_some() {
                    wrong = vec![self.indented_too_little(key, name, owner)];
                }
                found.append(&mut wrong);
            } else if schema["additionalProperties"] == Value::Bool(false) {
                let known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                found.push(self.unknown_key(key, name, owner, &known));
            }
        }
    }

    fn unknown_key(&self, key: &Sp<Node>, name: &str, owner: &str, known: &[&str]) -> Diagnostic {
        // The wording of serde's own message, so both read alike.
        let message = format!(
            "unknown field `{name}`, expected one of {}",
            known.join(", ")
        );
        let diagnostic = Diagnostic::new(key.span, message.clone()).with_label("unknown key");
        let here = if owner == "the file" {
            "the top level".to_string()
        } else {
            format!("`{owner}`")
        };
        let help = match self.owners.get(name) {
            Some(types) => Some(format!(
                "`{name}` is a key of {}, not of {here}: is it indented one level off?",
                types.join(" or ")
            )),
            None => super::did_you_mean(&message),
        };
        match help {
            Some(help) => diagnostic.with_help(help),
            None => diagnostic,
        }
    }

    fn indented_too_little(&self, key: &Sp<Node>, name: &str, owner: &str) -> Diagnostic {
        Diagnostic::new(
            key.span,
            format!("`{name}` is read as an entry of `{owner}`, but it is a key of one"),
        )
        .with_label("indented one level too little")
        .with_help(format!(
            "indent `{name}:` (and what follows) one level more, under the entry of `{owner}` it belongs to"
        ))
    }

    fn wrong_type(&self, node: &Sp<Node>, schema: &Value, key: &str) -> Diagnostic {
        let expected = self.expected(schema);
        let message = format!(
            "`{key}`: expected {expected}, found {}",
            node.value.describe()
        );
        let diagnostic = Diagnostic::new(node.span, message).with_label(format!("not {expected}"));
        let wants_list = self.resolve(schema)["type"] == "array";
        let help = match &node.value {
            Node::Str(text) if wants_list => Some(format!(
                "a list is written in brackets: `{key}: [{text}]`, or one `- item` per line"
            )),
            Node::Null if expected == "a mapping" => Some(format!(
                "the keys of `{key}` go on the lines below it, indented one level more"
            )),
            _ => None,
        };
        match help {
            Some(help) => diagnostic.with_help(help),
            None => diagnostic,
        }
    }

    /// "an integer", "a list", "a mapping or nothing", ...
    fn expected(&self, schema: &Value) -> String {
        let schema = self.resolve(schema);
        let alternatives = schema["anyOf"].as_array().or(schema["oneOf"].as_array());
        let mut names: Vec<&str> = match alternatives {
            Some(alternatives) => alternatives
                .iter()
                .flat_map(|alternative| type_names(self.resolve(alternative)))
                .collect(),
            None => type_names(schema),
        };
        names.dedup();
        // An optional key may be left out: "or nothing" only adds noise.
        if names.len() > 1 {
            names.retain(|name| *name != "nothing");
        }
        names.join(" or ")
    }

    fn fits(&self, node: &Node, schema: &Value) -> bool {
        match schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
            Some(alternatives) => alternatives
                .iter()
                .any(|alternative| self.fits(node, self.resolve(alternative))),
            None => fits_type(node, schema),
        }
    }
}

fn types_of(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_names(schema: &Value) -> Vec<&'static str> {
    types_of(schema)
        .into_iter()
        .map(|name| match name {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "text",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "true/false",
            "null" => "nothing",
            _ => "a value",
        })
        .collect()
}

/// Whether the node is of one of the schema's types, as serde would read
/// it: text fields take any scalar (`mtu: 1500` as text is fine), numbers
/// and booleans may be written quoted. No type: anything goes.
fn fits_type(node: &Node, schema: &Value) -> bool {
    let types = types_of(schema);
    if types.is_empty() {
        return true;
    }
    types.iter().any(|&name| match (name, node) {
        ("object", Node::Map(_)) | ("array", Node::Seq(_)) | ("null", Node::Null) => true,
        ("string", Node::Str(_) | Node::Int | Node::Float | Node::Bool) => true,
        ("integer", Node::Int) | ("number", Node::Int | Node::Float) => true,
        ("integer", Node::Str(text)) => text.trim().parse::<i128>().is_ok(),
        ("number", Node::Str(text)) => text.trim().parse::<f64>().is_ok(),
        ("boolean", Node::Bool) => true,
        ("boolean", Node::Str(text)) => matches!(text.as_str(), "true" | "false"),
        _ => false,
    })
}

/// For each key, the object types (by their schema name) that have it.
fn owners_of_keys(schema: &Value) -> BTreeMap<String, Vec<String>> {
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let top = std::iter::once(("the file's top level", schema));
    let defs = schema["$defs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, def)| (name.as_str(), def));
    for (owner, def) in top.chain(defs) {
        for key in def["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            owners
                .entry(key.clone())
                .or_default()
                .push(owner_label(owner));
        }
    }
    owners
}

/// "a Pod" for the schema's `Pod`; the top level as it is.
fn owner_label(owner: &str) -> String {
    if owner.starts_with("the ") {
        owner.to_string()
    } else {
        let article = if owner.starts_with(['A', 'E', 'I', 'O', 'U']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {}", owner.to_lowercase())
    }
}
