//! No import circles in launch-gptoss: no module uses a module that (directly or through
//! others) uses it back. A module is a source file; its edges are the `use` paths and the
//! inline `crate::…`/`super::…`/`self::…` paths of its non-test code, resolved to the
//! deepest module they name. A parent's `pub use child::Item` re-export is the parent's
//! public surface, not a dependency, and is not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Module path of a source file under `src` ("" is the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code without comments and string/char literal contents, cut at the test module.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !b
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // Raw string r"…" / r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (b.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal (a lifetime has no closing quote).
            i += 1;
            while i < b.len() && b[i] != '\'' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Expand a use tree (`a::{b, c::{d, e as f}}`) into paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let leaf = tree.split(" as ").next().unwrap_or(tree).trim();
        return vec![leaf.replace(' ', "")];
    };
    let prefix = tree[..open].trim().trim_end_matches("::").to_string();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(inner[start..].trim());
    let mut out = Vec::new();
    for item in items.into_iter().filter(|s| !s.is_empty()) {
        if item == "self" {
            out.push(prefix.clone());
        } else {
            for p in expand(item) {
                out.push(format!("{prefix}::{p}"));
            }
        }
    }
    out
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

/// The deepest known module `path` (as written in `module`) names, if it is local:
/// `crate::`, `self::`, `super::` paths, and paths starting with a child module's name.
fn resolve(module: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            format!("{a}::{b}")
        }
    };
    let (mut base, mut rest) = match segs.first()? {
        &"crate" => (String::new(), &segs[1..]),
        &"self" => (module.to_string(), &segs[1..]),
        &"super" => (parent(module), &segs[1..]),
        first if modules.contains(&join(module, first)) => (module.to_string(), &segs[..]),
        _ => return None,
    };
    while rest.first() == Some(&"super") {
        base = parent(&base);
        rest = &rest[1..];
    }
    let mut cur = base;
    for s in rest {
        let next = join(&cur, s);
        if modules.contains(&next) {
            cur = next;
        } else {
            break;
        }
    }
    Some(cur)
}

fn is_descendant(child: &str, of: &str) -> bool {
    of.is_empty() || child.starts_with(&format!("{of}::"))
}

/// Edges of one module's code.
fn edges(module: &str, code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |target: Option<String>| {
        if let Some(t) = target.filter(|t| t != module) {
            out.insert(t);
        }
    };
    // `use` statements (possibly `pub use`, multi-line trees).
    let mut facades: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = code;
    let mut inline = String::new();
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let boundary = before
            .chars()
            .last()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        inline.push_str(before);
        let after = &rest[i + 4..];
        let Some(end) = after.find(';') else { break };
        if boundary {
            let stmt_start = before.rfind(['\n', ';', '{', '}']).map_or(0, |p| p + 1);
            let reexport = before[stmt_start..].trim_start().starts_with("pub");
            for p in expand(&after[..end]) {
                let target = resolve(module, &p, modules);
                let facade = reexport
                    && target
                        .as_deref()
                        .is_some_and(|t| is_descendant(t, module) && t != module);
                if facade {
                    // Only an edge if the module itself uses what it re-exports.
                    let leaf = p.rsplit("::").next().unwrap_or("").to_string();
                    facades.push((leaf, target));
                } else {
                    add(target);
                }
            }
            rest = &after[end + 1..];
        } else {
            inline.push_str("use ");
            rest = after;
        }
    }
    inline.push_str(rest);
    // Inline paths: `a::b::c` at a word boundary.
    let chars: Vec<char> = inline.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let at_word = ident(chars[i]) && (i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':'));
        if !at_word {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && (ident(chars[j]) || chars[j] == ':') {
            j += 1;
        }
        let path: String = chars[i..j].iter().collect();
        if path.contains("::") {
            add(resolve(module, &path, modules));
        } else if let Some((_, target)) = facades.iter().find(|(leaf, _)| *leaf == path) {
            add(target.clone());
        }
        i = j.max(i + 1);
    }
    out
}

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // The binary's root is its own crate.
    files.retain(|f| f.file_name().is_none_or(|n| n != "main.rs"));
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut g = Graph::new();
    for f in &files {
        let m = module_of(src, f);
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        g.insert(m.clone(), edges(&m, &code, &modules));
    }
    g
}

/// Every circle (as a path a → … → a), one per strongly connected component.
fn circles(g: &Graph) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components.
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        sccs: Vec<Vec<&'a str>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.sccs.push(scc);
                }
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        sccs: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.sccs
        .into_iter()
        .map(|scc| {
            let mut s: Vec<String> = scc.into_iter().map(str::to_string).collect();
            s.sort();
            s
        })
        .collect()
}

fn name(m: &str) -> &str {
    if m.is_empty() {
        "crate"
    } else {
        m
    }
}

#[test]
fn launch_gptoss_has_no_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(g.len() > 20, "too few modules found: {:?}", g.keys());
    // The layering the crate documents: the interface does not know its implementations.
    assert!(!g["backend"]
        .iter()
        .any(|t| t.starts_with("ray") || t.starts_with("sim")));
    assert!(!g["options"].iter().any(|t| t.starts_with("cli")));
    let found = circles(&g);
    let report: Vec<String> = found
        .iter()
        .map(|c| c.iter().map(|m| name(m)).collect::<Vec<_>>().join(" ⇄ "))
        .collect();
    assert!(found.is_empty(), "import circles: {report:#?}");
}

/// Crates and paths the simulator engine must not use: it runs in virtual time
/// (calibration, planners) as well as behind the server, so it knows no async runtime,
/// no HTTP and no sockets.
const ENGINE_FORBIDDEN: &[&str] = &[
    "tokio",
    "hyper",
    "http",
    "http_body",
    "reqwest",
    "ureq",
    "mio",
    "std::net",
];

/// Forbidden uses in one module's code (comments and string contents excluded).
fn forbidden_uses(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for name in ENGINE_FORBIDDEN {
        let pat: Vec<char> = name.chars().collect();
        for i in 0..chars.len().saturating_sub(pat.len() - 1) {
            if chars[i..i + pat.len()] != pat[..] {
                continue;
            }
            let before_ok = i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':');
            let after = chars.get(i + pat.len()).copied();
            // A path root (`tokio::…`, `use tokio;`), not an identifier that merely
            // contains the name (`http_status`) or a method (`x.tokio()`).
            let after_ok = matches!(after, Some(':') | Some(';') | Some(',') | Some('}'));
            if before_ok && after_ok && !(i > 0 && chars[i - 1] == '.') {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[test]
fn the_simulator_engine_uses_no_runtime_network_or_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let engine = src.join("sim/engine");
    let mut files = Vec::new();
    rust_files(&engine, &mut files);
    assert!(files.len() >= 8, "engine sources not found: {files:?}");
    let mut bad = Vec::new();
    for f in &files {
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for name in forbidden_uses(&code) {
            bad.push(format!("{} uses {name}", f.display()));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    // Nor does it reach them through the rest of the crate: the engine's modules use
    // only each other (external crates such as pd_common and serde are not modules here).
    let g = graph(&src);
    let outside: Vec<String> = g
        .iter()
        .filter(|(m, _)| m.as_str() == "sim::engine" || m.starts_with("sim::engine::"))
        .flat_map(|(m, targets)| {
            targets
                .iter()
                .filter(|t| !(t.as_str() == "sim::engine" || t.starts_with("sim::engine::")))
                .map(move |t| format!("{m} -> {t}"))
        })
        .collect();
    assert!(
        outside.is_empty(),
        "the engine uses modules outside it: {outside:#?}"
    );
}

#[test]
fn the_engine_boundary_check_sees_uses_not_words() {
    let code = code_only(
        "use tokio::sync::mpsc;\nfn f() { let s = std::net::TcpStream::connect(\"x\"); }\n// hyper::Body\nfn http_status() {}\n",
    );
    assert_eq!(forbidden_uses(&code), vec!["tokio", "std::net"]);
    assert_eq!(
        forbidden_uses(&code_only("use ureq;\nuse reqwest::{Client};")),
        vec!["reqwest", "ureq"]
    );
    assert!(forbidden_uses(&code_only("let http_body = 1; x.tokio(); // tokio::spawn")).is_empty());
}

#[test]
fn the_checker_finds_circles_and_resolves_paths() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    // a re-exports its child (not an edge); a::x uses b; b uses a::x through an inline path.
    std::fs::write(
        src.join("a/mod.rs"),
        "pub mod x;\npub use x::Thing;\n// use crate::b;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a/x.rs"),
        "use crate::{b::{self, Other}};\npub struct Thing;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct Other;\nfn f() { let _ = \"crate::a\"; crate::a::x::Thing; }\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    )
    .unwrap();
    let g = graph(src);
    assert_eq!(
        g["a"],
        BTreeSet::new(),
        "facade re-export and comments are not edges"
    );
    assert_eq!(g["a::x"], BTreeSet::from(["b".to_string()]));
    assert_eq!(g["b"], BTreeSet::from(["a::x".to_string()]));
    assert_eq!(circles(&g), vec![vec!["a::x".to_string(), "b".to_string()]]);
    // A child using its parent and the parent using the child (not re-exporting) is a circle.
    std::fs::write(src.join("b.rs"), "pub struct Other;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "pub mod x;\nfn g() { x::Thing; }\npub struct P;\n",
    )
    .unwrap();
    std::fs::write(src.join("a/x.rs"), "use super::P;\npub struct Thing;\n").unwrap();
    let g = graph(src);
    assert_eq!(circles(&g), vec![vec!["a".to_string(), "a::x".to_string()]]);
    // A parent that uses what it re-exports from a child that uses the parent: a circle.
    std::fs::write(
        src.join("a/mod.rs"),
        "pub mod x;\npub use x::Thing;\npub struct P { t: Thing }\n",
    )
    .unwrap();
    let g = graph(src);
    assert_eq!(circles(&g), vec![vec!["a".to_string(), "a::x".to_string()]]);
    assert_eq!(
        expand("super::{config::HybridKv, model::{kv, KvLayout as K}, *}"),
        vec![
            "super::config::HybridKv",
            "super::model::kv",
            "super::model::KvLayout",
            "super::*"
        ]
    );
}
