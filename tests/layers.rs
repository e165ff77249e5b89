//! The layering rules, checked on the source: which top-level module of
//! each crate may import which, and that no modules import each other in a
//! circle. (Crate-level rules, such as `app` never depending on sqlx, are
//! held by the compiler: `app` has no such dependency.)

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Top-level module -> the crate's other top-level modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(name.as_str(), "lib" | "main") {
            continue;
        }
        let uses = graph.entry(name.clone()).or_default();
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).unwrap();
            // In a top-level file, `super::` is the crate root.
            let top_level_file = file.parent() == Some(src);
            for module in referenced(&text, "crate::").into_iter().chain(
                top_level_file
                    .then(|| referenced(&text, "super::"))
                    .into_iter()
                    .flatten(),
            ) {
                if module != name {
                    uses.insert(module);
                }
            }
        }
    }
    // Only edges between the crate's own modules.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|m| modules.contains(m));
    }
    graph
}

fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .flat_map(|e| rust_files(&e.unwrap().path()))
            .collect()
    } else if path.extension().is_some_and(|e| e == "rs") {
        vec![path.to_owned()]
    } else {
        Vec::new()
    }
}

/// The first path segment after each `prefix` (`crate::a::b` -> `a`), also
/// inside `crate::{a::x, b}` groups.
fn referenced(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut segment_start = true;
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    _ => {}
                }
                if c.is_alphanumeric() || c == '_' {
                    word.push(c);
                    continue;
                }
                if depth == 0 && segment_start && !word.is_empty() && word != "self" {
                    out.insert(word.clone());
                }
                if !word.is_empty() {
                    segment_start = false;
                }
                word.clear();
                if depth == 0 && c == ',' {
                    segment_start = true;
                }
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() {
                out.insert(word);
            }
        }
    }
    out
}

fn assert_acyclic(crate_name: &str, graph: &Graph) {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        crate_name: &str,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == node) {
            panic!(
                "{crate_name}: modules import each other in a circle: {} -> {node}",
                path[at..].join(" -> ")
            );
        }
        path.push(node.to_owned());
        for next in &graph[node] {
            visit(next, graph, path, done, crate_name);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, crate_name);
    }
}

fn assert_allowed(crate_name: &str, graph: &Graph, allowed: &[(&str, &[&str])]) {
    for (module, uses) in graph {
        let Some((_, may)) = allowed.iter().find(|(m, _)| m == module) else {
            panic!("{crate_name}: module `{module}` is not in the layering rules");
        };
        for used in uses {
            assert!(
                may.contains(&used.as_str()),
                "{crate_name}: `{module}` must not import `{used}` (it may import {may:?})"
            );
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn app_layers_point_one_way() {
    let graph = graph(&root().join("app/src"));
    assert_acyclic("app", &graph);
    assert_allowed(
        "app",
        &graph,
        &[
            ("domain", &[]),
            ("browser", &["domain"]),
            ("state", &["browser", "domain"]),
            ("api", &["domain"]),
            ("ui", &["api", "state", "browser", "domain"]),
        ],
    );
}

#[test]
fn backend_modules_point_one_way() {
    let graph = graph(&root().join("server/src"));
    assert_acyclic("server", &graph);
    assert_allowed(
        "server",
        &graph,
        &[
            ("wire", &[]),
            ("limits", &[]),
            ("sync", &[]),
            ("page_reads", &["sync"]),
            ("auth", &["sync"]),
            ("identity", &["store", "sync"]),
            ("store", &["wire"]),
            ("error", &["store"]),
            ("service", &["store"]),
            ("realtime", &["store", "wire", "limits", "identity", "sync"]),
            (
                "cluster",
                &["store", "realtime", "service", "wire", "identity"],
            ),
            ("testing", &["store"]),
        ],
    );
}

#[test]
fn process_modules_have_no_circles() {
    assert_acyclic("chat", &graph(&root().join("src")));
}

#[test]
fn the_checker_sees_grouped_imports() {
    let text = "use crate::{\n    api::{a, b},\n    state::{Live, RoomFeed},\n    browser,\n};";
    assert_eq!(
        referenced(text, "crate::"),
        ["api", "browser", "state"].map(String::from).into()
    );
    assert_eq!(
        referenced("crate::domain::X; crate::ui", "crate::"),
        ["domain", "ui"].map(String::from).into()
    );
}
