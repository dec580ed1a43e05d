//! The layout ARCHITECTURE.md promises, checked on the source tree: no
//! import cycle between the product's top-level modules, and the boundaries
//! (only `discord` speaks HTTP to Discord, only `teleport` holds the gRPC
//! channel, the reconciler knows neither client).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the top-level modules its non-test code names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |p: &Path| -> Option<String> {
        let rel = p.strip_prefix(&src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
        let name = first.trim_end_matches(".rs").to_owned();
        (name != "main" && name != "lib").then_some(name)
    };
    let mods: BTreeSet<String> = files.iter().filter_map(|p| module_of(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        mods.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for f in &files {
        let Some(m) = module_of(f) else { continue };
        if f.file_name()
            .is_some_and(|n| n == "tests.rs" || n == "proptests.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut names = BTreeSet::new();
        for part in code.split("crate::").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            names.insert(name);
        }
        // `use crate::{a::X, b};`
        for part in code.split("use crate::{").skip(1) {
            let group = part.split("};").next().unwrap_or_default();
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
        for n in names {
            if n != m && mods.contains(&n) {
                graph.entry(m.clone()).or_default().insert(n);
            }
        }
    }
    graph
}

#[test]
fn top_level_modules_import_no_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 10, "found the modules: {graph:?}");
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!("import cycle: {} -> {n}", path[i..].join(" -> "));
        }
        path.push(n.to_owned());
        for next in &graph[n] {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(n.to_owned());
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_boundaries_hold() {
    let graph = module_graph();
    let deps = |m: &str| graph.get(m).cloned().unwrap_or_default();
    for client in ["teleport", "discord"] {
        assert!(
            !deps("reconcile").contains(client),
            "the reconciler sees {client} only through its ports"
        );
        assert!(
            !deps(client).contains("reconcile") && !deps(client).contains("adapters"),
            "{client} knows nothing of the reconciler"
        );
    }
    assert!(
        !deps("http").contains("app"),
        "http depends on a port, not on app"
    );
    assert!(!deps("render").contains("discord"), "render is pure");
    for client in ["teleport", "discord", "adapters"] {
        for module in ["review", "notify"] {
            assert!(
                !deps(module).contains(client),
                "{module} sees {client} only through its ports"
            );
        }
    }
    // Only `discord` builds an HTTP client (reqwest), only `teleport` a gRPC channel.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .expect("rel")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&f).expect("read");
        if text.contains("reqwest::Client") {
            assert!(rel.starts_with("discord/"), "{rel} builds an HTTP client");
        }
        if text.contains("tonic::transport") {
            assert!(rel.starts_with("teleport/"), "{rel} opens a gRPC channel");
        }
    }
}
