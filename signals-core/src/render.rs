//! Renders the program's wiring, as [`registry`](fn@crate::registry) lists it: as text
//! ([`report`], and the one-line description of a receiver the explanations use), and as a
//! Mermaid flowchart or a Graphviz DOT graph: one node per signal, one per receiver function,
//! and an edge `signal --> receiver` per connection, labelled with its sender when it has one. A
//! static receiver that never runs, because an earlier one has its `dispatch_uid` and sender,
//! is drawn with a dashed edge labelled `shadowed`.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use crate::info::{ReceiverInfo, SourceLocation};
use crate::registry::{self, Registry, SignalEntry};

/// One edge of the drawing: a signal, a receiver node and the sender label.
struct Edge<'r> {
    signal: usize,
    receiver: usize,
    sender: Option<&'r str>,
    shadowed: bool,
}

impl Edge<'_> {
    /// The edge's label: its sender without module paths, and `shadowed` for a receiver that
    /// never runs.
    fn label(&self) -> Option<String> {
        let sender = self.sender.map(sender_label);
        match (sender, self.shadowed) {
            (Some(sender), true) => Some(format!("{sender}, shadowed")),
            (None, true) => Some("shadowed".to_owned()),
            (sender, false) => sender,
        }
    }
}

/// The graph both renderers draw: signals, receivers (one node per function, even when it
/// receives several signals) and edges, in registry order.
struct Graph<'r> {
    signals: Vec<&'static str>,
    receivers: Vec<(&'r ReceiverInfo, bool)>,
    edges: Vec<Edge<'r>>,
}

impl<'r> Graph<'r> {
    fn of(registry: &'r Registry) -> Self {
        let mut receivers = Vec::new();
        let mut receiver_ids: HashMap<(&'static str, SourceLocation), usize> = HashMap::new();
        let mut edges = Vec::new();
        for (signal, entry) in registry.signals().iter().enumerate() {
            for listed in entry.receivers() {
                let info = listed.receiver();
                let key = (info.name(), info.location());
                let receiver = *receiver_ids.entry(key).or_insert_with(|| {
                    receivers.push((info, listed.is_async()));
                    receivers.len() - 1
                });
                edges.push(Edge {
                    signal,
                    receiver,
                    sender: listed.sender(),
                    shadowed: listed.shadowed_by().is_some(),
                });
            }
        }
        Self {
            signals: registry.signals().iter().map(SignalEntry::name).collect(),
            receivers,
            edges,
        }
    }
}

/// A receiver's label: its name without the module path (`create_user_email`), or, for a
/// closure, the function it is defined in; `async` receivers say so.
fn receiver_label(info: &ReceiverInfo, is_async: bool) -> String {
    let name = info.name();
    let label = match name.strip_suffix("::{{closure}}") {
        Some(outer) => format!("{} (closure)", last_segment(outer)),
        None => last_segment(name).to_owned(),
    };
    if is_async {
        format!("async {label}")
    } else {
        label
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

/// A sender's label: module paths removed from type names (`app::models::User` is `User`).
fn sender_label(sender: &str) -> String {
    let mut label = String::with_capacity(sender.len());
    let mut word = String::new();
    let mut chars = sender.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            label.push_str(&word);
            word.clear();
            label.push(c);
        }
    }
    label.push_str(&word);
    label
}

impl Registry {
    /// The wiring as a Mermaid flowchart: signals as rounded nodes, receivers as boxes, an
    /// edge `signal -->|sender| receiver` per connection.
    ///
    /// ```text
    /// flowchart LR
    ///     S0(["post_save"])
    ///     R0["create_user_email"]
    ///     S0 -->|User| R0
    /// ```
    #[must_use]
    pub fn to_mermaid(&self) -> String {
        let graph = Graph::of(self);
        let mut out = String::from("flowchart LR\n");
        for (id, name) in graph.signals.iter().enumerate() {
            let _ = writeln!(out, "    S{id}([\"{}\"])", mermaid_text(name));
        }
        for (id, (info, is_async)) in graph.receivers.iter().enumerate() {
            let label = mermaid_text(&receiver_label(info, *is_async));
            let _ = writeln!(out, "    R{id}[\"{label}\"]");
        }
        for edge in &graph.edges {
            let (signal, receiver) = (edge.signal, edge.receiver);
            let arrow = if edge.shadowed { "-.->" } else { "-->" };
            match edge.label() {
                Some(label) => {
                    let label = mermaid_text(&label);
                    let _ = writeln!(out, "    S{signal} {arrow}|\"{label}\"| R{receiver}");
                }
                None => {
                    let _ = writeln!(out, "    S{signal} {arrow} R{receiver}");
                }
            }
        }
        out
    }

    /// The wiring as a Graphviz DOT digraph: signals as rounded boxes, receivers as ellipses
    /// (with their source location as tooltip), an edge per connection labelled with its
    /// sender. Render it with `dot -Tsvg`.
    #[must_use]
    pub fn to_dot(&self) -> String {
        let graph = Graph::of(self);
        let mut out = String::from(
            "digraph signals {\n    rankdir=LR;\n    node [fontname=\"Helvetica\"];\n",
        );
        for (id, name) in graph.signals.iter().enumerate() {
            let _ = writeln!(
                out,
                "    S{id} [label=\"{}\", shape=box, style=rounded];",
                dot_text(name)
            );
        }
        for (id, (info, is_async)) in graph.receivers.iter().enumerate() {
            let _ = writeln!(
                out,
                "    R{id} [label=\"{}\", tooltip=\"{} at {}\"];",
                dot_text(&receiver_label(info, *is_async)),
                dot_text(info.name()),
                dot_text(&info.location().to_string()),
            );
        }
        for edge in &graph.edges {
            let (signal, receiver) = (edge.signal, edge.receiver);
            let mut attributes = Vec::new();
            if let Some(label) = edge.label() {
                attributes.push(format!("label=\"{}\"", dot_text(&label)));
            }
            if edge.shadowed {
                attributes.push("style=dashed".to_owned());
            }
            if attributes.is_empty() {
                let _ = writeln!(out, "    S{signal} -> R{receiver};");
            } else {
                let attributes = attributes.join(", ");
                let _ = writeln!(out, "    S{signal} -> R{receiver} [{attributes}];");
            }
        }
        out.push_str("}\n");
        out
    }
}

/// Text inside a quoted Mermaid label: quotes become the `#quot;` entity.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Text inside a quoted DOT string.
fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

pub(crate) fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

pub(crate) fn describe(
    f: &mut fmt::Formatter<'_>,
    receiver: &ReceiverInfo,
    sender: Option<&str>,
    is_async: bool,
) -> fmt::Result {
    let module = receiver.module_path();
    if module.is_empty() || receiver.name().starts_with(module) {
        write!(f, "{}", receiver.name())?;
    } else {
        write!(f, "{module}::{}", receiver.name())?;
    }
    write!(f, " [sender {}", sender.unwrap_or("any"))?;
    if let Some(uid) = receiver.dispatch_uid() {
        write!(f, ", uid {uid:?}")?;
    }
    if receiver.priority() != 0 {
        write!(f, ", priority {}", receiver.priority())?;
    }
    if is_async {
        f.write_str(", async")?;
    }
    write!(f, "] at {}", receiver.location())
}

/// A human-readable listing of every signal of the program and its receivers, in dispatch
/// order, with where each is defined: the [`registry`](fn@crate::registry) as text.
///
/// ```
/// println!("{}", signals::report());
/// ```
#[must_use]
pub fn report() -> String {
    registry::registry().to_string()
}

impl fmt::Display for registry::Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self
            .signals()
            .iter()
            .flat_map(registry::SignalEntry::receivers);
        let shadowed = entries
            .clone()
            .filter(|e| e.shadowed_by().is_some())
            .count();
        let receivers = entries.count() - shadowed;
        write!(
            f,
            "{} signal{}, {receivers} receiver{}",
            self.signals().len(),
            plural(self.signals().len()),
            plural(receivers),
        )?;
        if shadowed > 0 {
            write!(f, " and {shadowed} shadowed by another's dispatch_uid")?;
        }
        writeln!(f)?;
        for signal in self.signals() {
            writeln!(f)?;
            write!(f, "{}", signal.name())?;
            match signal.sender() {
                registry::SenderKind::Value(ty) => write!(f, " (sender: a value of {ty})")?,
                registry::SenderKind::Type => f.write_str(" (sender: a type)")?,
            }
            if let Some(location) = signal.location() {
                write!(f, ", declared at {location}")?;
            }
            writeln!(f)?;
            if signal.receivers().is_empty() {
                writeln!(f, "  (no receivers)")?;
            }
            let mut position = 0;
            for entry in signal.receivers() {
                if let Some(first) = entry.shadowed_by() {
                    f.write_str("  -  ")?;
                    describe(f, entry.receiver(), entry.sender(), entry.is_async())?;
                    writeln!(
                        f,
                        ": never runs, shadowed by the receiver at {first}, which has its \
                         dispatch_uid and sender"
                    )?;
                } else {
                    position += 1;
                    write!(f, "  {position}. ")?;
                    describe(f, entry.receiver(), entry.sender(), entry.is_async())?;
                    writeln!(f)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::sender_label;
    use crate::info::{ReceiverInfo, ReceiverKind, ReceiverMeta, SourceLocation};
    use crate::registry::{ReceiverEntry, Registry, SenderKind, SignalEntry};

    fn receiver(name: &'static str, line: u32) -> ReceiverInfo {
        let mut meta = ReceiverMeta::new_static(
            name,
            "app::receivers",
            SourceLocation::new("src/receivers.rs", line, 4),
            None,
            0,
        );
        meta.kind = ReceiverKind::Static;
        ReceiverInfo::from_static(Box::leak(Box::new(meta)))
    }

    fn closure_receiver<C>(_: C) -> ReceiverInfo {
        let mut meta = ReceiverMeta::new_static(
            std::any::type_name::<C>(),
            "",
            SourceLocation::new("src/main.rs", 5, 9),
            None,
            0,
        );
        meta.module_path = None;
        meta.kind = ReceiverKind::Runtime;
        ReceiverInfo::from_static(Box::leak(Box::new(meta)))
    }

    /// `post_save` (User → `create_user_email`, any → audit, and User →
    /// `create_user_email_again`, shadowed by the first) and `project_created` (any → audit,
    /// which receives both signals).
    fn small_wiring() -> Registry {
        let audit = receiver("app::receivers::audit", 30);
        Registry {
            signals: vec![
                SignalEntry::new(
                    "post_save",
                    SenderKind::Type,
                    vec![
                        ReceiverEntry::new(
                            receiver("app::receivers::create_user_email", 10),
                            Some("app::models::User".into()),
                            false,
                            None,
                        ),
                        ReceiverEntry::new(audit.clone(), None, false, None),
                        ReceiverEntry::new(
                            receiver("app::receivers::create_user_email_again", 20),
                            Some("app::models::User".into()),
                            false,
                            Some(SourceLocation::new("src/receivers.rs", 10, 4)),
                        ),
                    ],
                ),
                SignalEntry::new(
                    "project_created",
                    SenderKind::Value("&str"),
                    vec![
                        ReceiverEntry::new(audit, Some("\"web\"".into()), false, None),
                        ReceiverEntry::new(closure_receiver(|| ()), None, true, None),
                    ],
                ),
            ],
        }
    }

    #[test]
    fn mermaid_draws_signals_receivers_and_labelled_edges() {
        assert_eq!(
            small_wiring().to_mermaid(),
            "flowchart LR\n\
             \x20   S0([\"post_save\"])\n\
             \x20   S1([\"project_created\"])\n\
             \x20   R0[\"create_user_email\"]\n\
             \x20   R1[\"audit\"]\n\
             \x20   R2[\"create_user_email_again\"]\n\
             \x20   R3[\"async small_wiring (closure)\"]\n\
             \x20   S0 -->|\"User\"| R0\n\
             \x20   S0 --> R1\n\
             \x20   S0 -.->|\"User, shadowed\"| R2\n\
             \x20   S1 -->|\"#quot;web#quot;\"| R1\n\
             \x20   S1 --> R3\n"
        );
    }

    #[test]
    fn dot_draws_the_same_graph_with_locations() {
        assert_eq!(
            small_wiring().to_dot(),
            "digraph signals {\n\
             \x20   rankdir=LR;\n\
             \x20   node [fontname=\"Helvetica\"];\n\
             \x20   S0 [label=\"post_save\", shape=box, style=rounded];\n\
             \x20   S1 [label=\"project_created\", shape=box, style=rounded];\n\
             \x20   R0 [label=\"create_user_email\", tooltip=\"app::receivers::create_user_email at src/receivers.rs:10:4\"];\n\
             \x20   R1 [label=\"audit\", tooltip=\"app::receivers::audit at src/receivers.rs:30:4\"];\n\
             \x20   R2 [label=\"create_user_email_again\", tooltip=\"app::receivers::create_user_email_again at src/receivers.rs:20:4\"];\n\
             \x20   R3 [label=\"async small_wiring (closure)\", tooltip=\"signals_core::render::tests::small_wiring::{{closure}} at src/main.rs:5:9\"];\n\
             \x20   S0 -> R0 [label=\"User\"];\n\
             \x20   S0 -> R1;\n\
             \x20   S0 -> R2 [label=\"User, shadowed\", style=dashed];\n\
             \x20   S1 -> R1 [label=\"\\\"web\\\"\"];\n\
             \x20   S1 -> R3;\n\
             }\n"
        );
    }

    #[test]
    fn sender_labels_drop_module_paths() {
        assert_eq!(sender_label("app::models::User"), "User");
        assert_eq!(sender_label("Vec<app::models::User>"), "Vec<User>");
        assert_eq!(sender_label("Monolith"), "Monolith");
        assert_eq!(
            sender_label("\"resolved_with_commit\""),
            "\"resolved_with_commit\""
        );
    }
}
