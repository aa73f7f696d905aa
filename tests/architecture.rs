//! Dependencies point one way: the module graph of `src/` has no cycle.
//!
//! Nodes are the top-level modules (`health`, `monitor`, `bus`, ...) and,
//! inside `bus` and `daemon`, their second-level modules (`bus::interface`,
//! `daemon::rollback`, ...; items of `bus/mod.rs` are the node `bus`).
//! Edges come from `crate::` paths (also inside `use crate::{..}` groups),
//! from `super::` and `self::` paths, and from paths through a module the
//! file declares (`mod x;` then `x::..`). Comments are left out, so an
//! intra-doc link is not a dependency. The applet (`src/tray`) and
//! `src/main.rs` are crates of their own and are not read.
//!
//! `ARCHITECTURE_SRC=/some/src cargo test --test architecture` checks
//! another tree (an older commit's, say).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Second-level modules of these are nodes of their own.
const SPLIT: [&str; 2] = ["bus", "daemon"];

/// The graph: node -> nodes it uses, with one file and path per edge.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// A source file: its module path (`["daemon", "rollback", "job"]`) and text.
struct Source {
    module: Vec<String>,
    file: String,
    text: String,
}

fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn read_tree(root: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let rel = path.strip_prefix(root).expect("under the root").to_owned();
            if rel == Path::new("tray") || rel == Path::new("main.rs") {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("readable source");
                out.push(Source {
                    module: module_of(&rel),
                    file: rel.display().to_string(),
                    text,
                });
            }
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// `text` without `//` comments and without the contents of string
/// literals (a message may name a path).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_string {
                if c == '"' && prev != '\\' {
                    in_string = false;
                    out.push('"');
                }
                prev = if prev == '\\' && c == '\\' { ' ' } else { c };
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            // A char literal ('"', '{') is neither a string nor a brace.
            if c == '\'' && chars.clone().nth(1) == Some('\'') {
                chars.next();
                chars.next();
                out.push_str("' '");
                prev = '\'';
                continue;
            }
            if c == '"' {
                in_string = true;
            }
            out.push(c);
            prev = c;
        }
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The path that starts at `at` in `code`, expanded over `{..}` groups:
/// `a::{b, c::{d}}` gives `a::b`, `a::c::d`. `at` points at the first
/// segment.
fn paths_at(code: &str, at: usize) -> Vec<Vec<String>> {
    fn parse(s: &[char], i: &mut usize) -> Vec<Vec<String>> {
        let mut prefix = Vec::new();
        loop {
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
            if *i < s.len() && s[*i] == '{' {
                *i += 1;
                let mut all = Vec::new();
                loop {
                    for mut tail in parse(s, i) {
                        let mut p = prefix.clone();
                        p.append(&mut tail);
                        all.push(p);
                    }
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(',') => *i += 1,
                        Some('}') => {
                            *i += 1;
                            return all;
                        }
                        _ => return all,
                    }
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    if s.get(*i) == Some(&'}') {
                        *i += 1;
                        return all;
                    }
                }
            }
            let start = *i;
            while *i < s.len() && is_ident(s[*i]) {
                *i += 1;
            }
            if *i == start {
                return vec![prefix];
            }
            prefix.push(s[start..*i].iter().collect());
            if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
                *i += 2;
            } else {
                return vec![prefix];
            }
        }
    }
    let chars: Vec<char> = code[at..].chars().collect();
    let mut i = 0;
    parse(&chars, &mut i)
}

/// The inline modules of `code` (`mod tests { .. }`): name, and the byte
/// range of their body.
fn inline_modules(code: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(n) = code[from..].find("mod ") {
        let at = from + n;
        from = at + 4;
        if at > 0 && is_ident(code.as_bytes()[at - 1] as char) {
            continue;
        }
        let rest = &code[at + 4..];
        let name_len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        let after = rest[name_len..].trim_start();
        if name_len == 0 || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let mut depth = 0usize;
        for (k, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push((rest[..name_len].to_owned(), open..open + k));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The module at byte `at` of a file whose module is `module`.
fn module_at(
    module: &[String],
    inline: &[(String, std::ops::Range<usize>)],
    at: usize,
) -> Vec<String> {
    let mut m = module.to_vec();
    m.extend(
        inline
            .iter()
            .filter(|(_, body)| body.contains(&at))
            .map(|(name, _)| name.clone()),
    );
    m
}

/// The child modules `code` declares in files of their own (`mod x;`).
fn child_modules(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            let l = l.strip_prefix("pub(super) ").unwrap_or(l);
            let name = l.strip_prefix("mod ")?.trim_end().strip_suffix(';')?;
            Some(name.to_owned())
        })
        .collect()
}

/// Pushes onto `out` each path starting at byte `from` of `code`, prefixed
/// with `base`.
fn push_paths(out: &mut Vec<Vec<String>>, base: &[String], code: &str, from: usize) {
    for p in paths_at(code, from) {
        let mut full = base.to_vec();
        full.extend(p);
        out.push(full);
    }
}

/// Every module path `code` refers to, as absolute segments from the crate
/// root.
fn references(file_module: &[String], code: &str) -> Vec<Vec<String>> {
    let inline = inline_modules(code);
    let children = child_modules(code);
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let boundary = i == 0 || !is_ident(bytes[i - 1] as char) && bytes[i - 1] != b':';
        if !boundary || !is_ident(bytes[i] as char) {
            i += 1;
            continue;
        }
        let end = code[i..]
            .find(|c: char| !is_ident(c))
            .map_or(code.len(), |n| i + n);
        let word = &code[i..end];
        let module = &module_at(file_module, &inline, i);
        // `pub(in crate::x)` is a visibility, not a use.
        let followed = code[end..].starts_with("::") && !code[..i].ends_with("pub(in ");
        let base: Option<Vec<String>> = match word {
            "crate" if followed => Some(Vec::new()),
            "self" if followed => Some(module.to_vec()),
            "super" if followed => {
                let mut base = module.to_vec();
                base.pop();
                let mut j = end + 2;
                while code[j..].starts_with("super::") {
                    base.pop();
                    j += "super::".len();
                }
                push_paths(&mut out, &base, code, j);
                i = j;
                continue;
            }
            w if followed && children.contains(w) => {
                let mut base = module.to_vec();
                base.push(w.to_owned());
                Some(base)
            }
            _ => None,
        };
        if let Some(base) = base {
            let from = if word == "crate" || word == "self" {
                end + 2
            } else {
                // A child module: its name is the path's first segment.
                push_paths(&mut out, &base, code, end + 2);
                i = end + 2;
                continue;
            };
            push_paths(&mut out, &base, code, from);
            i = from;
            continue;
        }
        i = end;
    }
    out
}

/// The node a module path belongs to; `None` for the crate root.
fn node(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<String> {
    let top = path.first()?;
    if !modules.contains(&vec![top.clone()]) {
        return None;
    }
    if SPLIT.contains(&top.as_str())
        && let Some(second) = path.get(1)
        && modules.contains(&vec![top.clone(), second.clone()])
    {
        return Some(format!("{top}::{second}"));
    }
    Some(top.clone())
}

fn graph(sources: &[Source]) -> Graph {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut g = Graph::new();
    for s in sources {
        let Some(from) = node(&s.module, &modules) else {
            continue;
        };
        g.entry(from.clone()).or_default();
        for path in references(&s.module, &code_only(&s.text)) {
            if let Some(to) = node(&path, &modules)
                && to != from
            {
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("{}: {}", s.file, path.join("::")));
            }
        }
    }
    g
}

/// A cycle, as the nodes along it (the first repeated at the end).
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &str,
        g: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = stack
                    .iter()
                    .position(|s| s == n)
                    .expect("open nodes are on the stack");
                let mut cycle = stack[at..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.to_owned(), Mark::Open);
        stack.push(n.to_owned());
        for next in g.get(n).into_iter().flat_map(BTreeMap::keys) {
            if let Some(c) = visit(next, g, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if let Some(c) = visit(n, g, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// The cycle with the file and path behind each of its edges.
fn describe(cycle: &[String], g: &Graph) -> String {
    cycle
        .windows(2)
        .map(|w| format!("  {} -> {}   ({})", w[0], w[1], g[&w[0]][&w[1]]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn src_root() -> PathBuf {
    std::env::var_os("ARCHITECTURE_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

fn edges(g: &Graph) -> String {
    g.iter()
        .map(|(from, to)| {
            format!(
                "{from} -> {}",
                to.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph(&read_tree(&src_root()));
    assert!(g.len() > 10, "too few modules read:\n{}", edges(&g));
    // `cargo test --test architecture -- --nocapture` shows the graph.
    println!("{}", edges(&g));
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "the module graph has a cycle:\n{}\n\nall edges:\n{}",
            describe(&cycle, &g),
            edges(&g)
        );
    }
}

#[test]
fn the_bus_does_not_reach_into_the_daemon() {
    let g = graph(&read_tree(&src_root()));
    let wrong: Vec<String> = g
        .iter()
        .filter(|(from, _)| *from == "bus" || from.starts_with("bus::"))
        .flat_map(|(from, to)| {
            to.iter()
                .filter(|(t, _)| *t == "daemon" || t.starts_with("daemon::") || *t == "cli")
                .map(move |(t, why)| format!("{from} -> {t} ({why})"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "the bus uses the daemon:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_bottom_modules_use_nothing_above_them() {
    let g = graph(&read_tree(&src_root()));
    let bottom = ["health", "text", "atomic"];
    for b in bottom {
        let uses: Vec<&String> = g
            .get(b)
            .into_iter()
            .flat_map(BTreeMap::keys)
            .filter(|t| !bottom.contains(&t.as_str()))
            .collect();
        assert!(uses.is_empty(), "{b} uses {uses:?}");
    }
}

/// The checks above would see a cycle: one made of the very paths the
/// daemon and the bus once had.
#[test]
fn a_cycle_is_found_and_named() {
    let file = |module: &[&str], file: &str, text: &str| Source {
        module: module.iter().map(|s| s.to_string()).collect(),
        file: file.to_owned(),
        text: text.to_owned(),
    };
    let sources = [
        file(
            &[],
            "lib.rs",
            "pub mod bus;\npub mod daemon;\npub mod state;\n",
        ),
        file(
            &["bus"],
            "bus/mod.rs",
            "pub mod interface;\npub mod values;\n",
        ),
        file(
            &["bus", "interface"],
            "bus/interface.rs",
            "use super::values;\nuse crate::{daemon::{Handle, rollback}, state};\n",
        ),
        file(
            &["bus", "values"],
            "bus/values.rs",
            "// crate::daemon::x in a comment\n",
        ),
        file(
            &["daemon"],
            "daemon/mod.rs",
            "mod owner;\nuse owner::run;\n",
        ),
        file(
            &["daemon", "owner"],
            "daemon/owner.rs",
            "fn f() { let _ = \"crate::state\"; crate::bus::interface::Health::new(); }\n",
        ),
        file(
            &["state"],
            "state.rs",
            "const A: &str = '\"'; use crate::daemon::rollback::MARKER;\n",
        ),
    ];
    let g = graph(&sources);
    assert_eq!(
        g["bus::interface"].keys().collect::<Vec<_>>(),
        ["bus::values", "daemon", "state"]
    );
    assert!(
        g["bus::values"].is_empty(),
        "comments are not code: {:?}",
        g["bus::values"]
    );
    assert_eq!(g["daemon"].keys().collect::<Vec<_>>(), ["daemon::owner"]);
    assert_eq!(
        g["daemon::owner"].keys().collect::<Vec<_>>(),
        ["bus::interface"]
    );
    assert_eq!(g["state"].keys().collect::<Vec<_>>(), ["daemon"]);
    let cycle = find_cycle(&g).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    let text = describe(&cycle, &g);
    assert!(text.contains("daemon -> daemon::owner"), "{text}");
    assert!(text.contains("bus::interface -> daemon"), "{text}");
}
