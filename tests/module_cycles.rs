//! The library's modules import one another one way only (docs/GUIDE:
//! "no import cycles"): this test reads every `crate::…` and `super::…`
//! path in `src/` (the library; unit tests excluded) and fails on a cycle.
//!
//! The rule is checked at every level of the module tree: an import from
//! `a::x` of `b::y` is an edge between the siblings `a` and `b` (the
//! children of the deepest module both sit in), and the siblings under each
//! parent must form a graph without cycles. Imports between a module and
//! its own ancestors (`use super::*`, a parent re-exporting a child) are
//! containment, not layering, and are not edges.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every library module file under `src/`, by module path.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("src/ entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "cli") && dir == src {
                    continue; // the binary's commands, not the library
                }
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            match parts.last().map(String::as_str) {
                Some("main") | Some("tests") => continue,
                Some("lib") => parts.clear(),
                Some("mod") => {
                    parts.pop();
                }
                _ => {}
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The file's text without its `#[cfg(test)] mod tests { … }` block and
/// without comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths after `prefix` in `code`: `crate::a::b::{c, d::e}` gives
/// `[a, b, c]` and `[a, b, d, e]` (enough for module resolution).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find(prefix) {
        let start = from + i;
        from = start + prefix.len();
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let mut path = Vec::new();
        let mut j = from;
        loop {
            let k = code[j..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(code.len(), |k| j + k);
            if k == j {
                break;
            }
            path.push(code[j..k].to_string());
            if code[k..].starts_with("::") {
                j = k + 2;
                if code[j..].starts_with('{') {
                    // A group: each top-level entry's first segments.
                    let end = group_end(code, j);
                    for item in code[j + 1..end].split(',') {
                        let mut p = path.clone();
                        p.extend(
                            item.split("::")
                                .map(|s| {
                                    s.trim()
                                        .trim_matches(|c| c == '{' || c == '}')
                                        .trim()
                                        .to_string()
                                })
                                .filter(|s| !s.is_empty() && s != "*"),
                        );
                        out.push(p);
                    }
                    path.clear();
                    break;
                }
            } else {
                break;
            }
        }
        if !path.is_empty() {
            out.push(path);
        }
    }
    out
}

/// The index of the `}` closing the `{` at `open`.
fn group_end(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// The longest known module that `path` starts with.
fn resolve(known: &BTreeMap<Module, PathBuf>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains_key(m))
}

fn edges(known: &BTreeMap<Module, PathBuf>) -> BTreeSet<(Module, Module)> {
    let mut out = BTreeSet::new();
    for (module, file) in known {
        let is_mod_rs = file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let code = code(&fs::read_to_string(file).expect("module readable"));
        let mut targets = paths_after(&code, "crate::");
        // `super` of a file module is its parent; `mod.rs`'s is the
        // parent's parent.
        let parent: Module = if is_mod_rs {
            module[..module.len().saturating_sub(1)].to_vec()
        } else {
            module[..module.len() - 1].to_vec()
        };
        for p in paths_after(&code, "super::") {
            let mut full = parent.clone();
            full.extend(p.into_iter().filter(|s| s != "super"));
            targets.push(full);
        }
        for t in targets {
            if let Some(to) = resolve(known, &t) {
                out.insert((module.clone(), to));
            }
        }
    }
    out
}

/// Lifts an edge between two modules to the siblings under their deepest
/// common ancestor; `None` when one contains the other.
fn lift(a: &Module, b: &Module) -> Option<(Module, String, String)> {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if common == a.len() || common == b.len() {
        return None;
    }
    Some((a[..common].to_vec(), a[common].clone(), b[common].clone()))
}

fn cycles(edges: &BTreeSet<(Module, Module)>) -> Vec<String> {
    // parent → sibling → siblings it imports, with one witness per edge.
    let mut graph: BTreeMap<Module, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    for (a, b) in edges {
        if let Some((parent, x, y)) = lift(a, b) {
            graph
                .entry(parent)
                .or_default()
                .entry(x)
                .or_default()
                .entry(y)
                .or_insert_with(|| format!("{} uses {}", a.join("::"), b.join("::")));
        }
    }
    let mut found = Vec::new();
    for (parent, g) in &graph {
        // Depth-first search with colours; report each back edge's cycle.
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        fn visit<'a>(
            n: &'a str,
            g: &'a BTreeMap<String, BTreeMap<String, String>>,
            state: &mut BTreeMap<&'a str, u8>,
            stack: &mut Vec<&'a str>,
            found: &mut Vec<Vec<String>>,
        ) {
            state.insert(n, 1);
            stack.push(n);
            for (m, _) in g.get(n).into_iter().flatten() {
                match state.get(m.as_str()) {
                    Some(1) => {
                        let i = stack.iter().position(|s| s == m).unwrap_or(0);
                        let mut cyc: Vec<String> =
                            stack[i..].iter().map(|s| s.to_string()).collect();
                        cyc.push(m.clone());
                        found.push(cyc);
                    }
                    Some(_) => {}
                    None => visit(m, g, state, stack, found),
                }
            }
            stack.pop();
            state.insert(n, 2);
        }
        let mut cycs = Vec::new();
        for n in g.keys() {
            if !state.contains_key(n.as_str()) {
                visit(n, g, &mut state, &mut Vec::new(), &mut cycs);
            }
        }
        let prefix = if parent.is_empty() {
            "crate".to_string()
        } else {
            format!("crate::{}", parent.join("::"))
        };
        for c in cycs {
            let why: Vec<String> = c.windows(2).map(|w| g[&w[0]][&w[1]].clone()).collect();
            found.push(format!(
                "under {prefix}: {} ({})",
                c.join(" → "),
                why.join("; ")
            ));
        }
    }
    found
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    assert!(known.len() > 20, "found only {} modules", known.len());
    let edges = edges(&known);
    assert!(!edges.is_empty(), "no imports found: the reader is broken");
    let found = cycles(&edges);
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle_between_siblings() {
    let m = |s: &str| s.split("::").map(String::from).collect::<Module>();
    let mut e = BTreeSet::new();
    e.insert((m("a::x"), m("b")));
    e.insert((m("b::y"), m("a")));
    e.insert((m("c"), m("c::z"))); // containment: not an edge
    let found = cycles(&e);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("a → b → a"), "{found:?}");
}

#[test]
fn grouped_and_nested_use_paths_are_read() {
    let p = paths_after(
        "use crate::a::{b, c::d};\nlet x = crate::e::f();",
        "crate::",
    );
    assert!(p.contains(&vec!["a".into(), "b".into()]), "{p:?}");
    assert!(
        p.contains(&vec!["a".into(), "c".into(), "d".into()]),
        "{p:?}"
    );
    assert!(p.contains(&vec!["e".into(), "f".into()]), "{p:?}");
}
