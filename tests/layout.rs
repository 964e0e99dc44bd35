//! The module layout stays a layered graph: no import loop between the top-level modules,
//! and the leaves (`model`, `config`, `crypto`, `store`) import nothing above them. Read from
//! the source, so a new `use crate::…` that breaks the layering fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code names through `crate::`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
            let module = first.trim_end_matches(".rs").to_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            // Comments may name any module; only code counts.
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let targets = graph.entry(module.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    targets.insert(name);
                }
            }
            // `use crate::{a, b}` names several modules at once.
            for (i, _) in text.match_indices("crate::{") {
                let rest = &text[i + "crate::{".len()..];
                let list = &rest[..rest.find('}').unwrap_or(0)];
                for name in list.split(',').map(|s| s.trim().split("::").next().unwrap_or("").trim()) {
                    if !name.is_empty() && name != module && name != "self" {
                        targets.insert(name.to_owned());
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn leaves_import_nothing_above_them() {
    let graph = module_graph();
    let allowed: [(&str, &[&str]); 4] =
        [("model", &[]), ("config", &[]), ("crypto", &["model", "config"]), ("store", &["model"])];
    for (leaf, may_use) in allowed {
        let used = &graph[leaf];
        let extra: Vec<&String> = used.iter().filter(|m| !may_use.contains(&m.as_str())).collect();
        assert!(extra.is_empty(), "{leaf} imports {extra:?}; it may import only {may_use:?}");
    }
}

#[test]
fn no_import_loop_between_top_level_modules() {
    let graph = module_graph();
    // Depth-first search for a back edge; report the loop it closes.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(start) = path.iter().position(|n| *n == node) {
            panic!("import loop: {} -> {node}", path[start..].join(" -> "));
        }
        if !done.insert(node) {
            return;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}
