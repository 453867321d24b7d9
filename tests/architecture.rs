//! The shape of the crate, checked: no cycle between top-level modules, and each layer
//! imports only what lies below it.
//!
//! The test reads every source file of the library under `src/` (not the binary: `main.rs`,
//! the modules it declares, `src/bin/`) and collects the paths it names through `crate::` —
//! `use` trees, nested braces included, and inline paths such as `crate::domain::now_ms()` —
//! and through `super::` where they climb out of a file. Comments, string and character
//! literals and `#[cfg(test)]` items are skipped: a test may reach anywhere. Each path is an
//! edge from the importing file's top-level module to the imported one (a name re-exported
//! by `lib.rs` counts as the module that defines it).
//!
//! The rules are the layers of `ARCHITECTURE.md`. A rule naming a module the crate does not
//! have does not fire.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Import nothing else of the crate.
const PURE: &[&str] = &["engine", "ocr"];

/// The shared leaves: they import only each other and the pure modules, never a feature.
const LEAVES: &[&str] = &["domain", "config", "telemetry", "web"];

/// `(modules, what they must not depend on)`, directly or through other modules.
const FORBIDDEN: &[(&[&str], &[&str])] = &[
    // The conversation and the use cases know no transport.
    (&["dialog", "desk"], &["channel", "server", "console"]),
    // The store keeps data, the mail worker sends it: neither knows the conversation's rules.
    (&["store", "mail"], &["dialog", "desk", "console"]),
    // What the bot knows is served to the conversation, never the other way round.
    (&["knowledge"], &["dialog", "desk", "channel", "server", "console"]),
    // The web console is mounted by the server and reaches a channel only through the
    // desk's ports.
    (&["console"], &["server", "channel"]),
];

/// Sibling providers: neither imports the other.
const SIBLINGS: &[(&str, &str)] = &[("channel::twilio", "channel::meta")];

#[test]
fn the_module_graph_has_no_cycle_and_every_layer_rule_holds() {
    let crate_ = Crate::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let problems = crate_.problems();
    assert!(problems.is_empty(), "the module graph breaks the architecture:\n{}", problems.join("\n"));
}

#[test]
fn the_reader_sees_use_trees_inline_paths_and_super_but_not_comments_strings_or_tests() {
    let source = r##"
        use crate::{a::b, c::{d as D, e::F}};
        use super::sibling::Thing;
        // crate::commented::out
        /* crate::block /* nested crate::x */ crate::still_comment */
        const S: &str = "crate::in_a_string";
        const R: &str = r#"crate::raw"#;
        fn f<'a>(x: &'a str) -> char { let _ = crate::inline::path(x); '{' }
        macro_rules! m { () => { $crate::macro_path } }
        #[cfg(test)]
        mod tests { use crate::only_in_tests; }
        #[cfg(test)]
        fn helper() { crate::test_helper(); }
        pub(in crate::a) fn g() {}
        struct S { #[cfg(test)] a: u8, b: crate::after::Field }
    "##;
    let module = ["channel".to_owned(), "twilio".to_owned(), "form".to_owned()];
    let paths: Vec<String> = imports(source, &module).into_iter().map(|p| p.join("::")).collect();
    assert_eq!(
        paths,
        ["a::b", "c::d", "c::e::F", "channel::twilio::sibling::Thing", "inline::path", "after::Field"]
    );
}

/// The library's top-level modules, its root re-exports, and every file's imports.
struct Crate {
    modules: BTreeSet<String>,
    /// A name `lib.rs` re-exports → the module it comes from.
    reexports: BTreeMap<String, String>,
    /// `(file, its module path, an imported path)`.
    imports: Vec<(String, Vec<String>, Vec<String>)>,
}

impl Crate {
    fn read(src: PathBuf) -> Crate {
        let lib = blank(&read(&src.join("lib.rs")));
        let modules: BTreeSet<String> = declared_modules(&lib).into_iter().collect();
        let mut reexports = BTreeMap::new();
        for path in use_trees(&lib) {
            if let (Some(first), Some(last)) = (path.first(), path.last())
                && modules.contains(first)
            {
                reexports.insert(last.clone(), first.clone());
            }
        }
        let binary: BTreeSet<String> = match fs::read_to_string(src.join("main.rs")) {
            Ok(main) => declared_modules(&blank(&main)).into_iter().collect(),
            Err(_) => BTreeSet::new(),
        };
        let mut files = Vec::new();
        walk(&src, &mut files);
        files.sort();
        let mut found = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
            let module = module_path(&rel);
            let Some(top) = module.first() else { continue }; // lib.rs, main.rs
            if top == "bin" || binary.contains(top) || !modules.contains(top) {
                continue;
            }
            for path in imports(&read(&file), &module) {
                found.push((rel.clone(), module.clone(), path));
            }
        }
        Crate { modules, reexports, imports: found }
    }

    /// The top-level module a path lands in, if it is one of the crate's.
    fn target(&self, path: &[String]) -> Option<String> {
        let first = path.first()?;
        if self.modules.contains(first) { Some(first.clone()) } else { self.reexports.get(first).cloned() }
    }

    /// `from → to → first (file, path) seen`, between different top-level modules.
    fn edges(&self) -> BTreeMap<String, BTreeMap<String, (String, String)>> {
        let mut edges: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
        for (file, module, path) in &self.imports {
            let (from, Some(to)) = (&module[0], self.target(path)) else { continue };
            if *from != to {
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| (file.clone(), format!("crate::{}", path.join("::"))));
            }
        }
        edges
    }

    fn problems(&self) -> Vec<String> {
        let edges = self.edges();
        let why = |from: &str, to: &str| {
            let (file, path) = &edges[from][to];
            format!("{from} → {to} (src/{file}: {path})")
        };
        let mut problems = Vec::new();

        for cycle in cycles(&self.modules, &edges) {
            let mut text = format!("cycle between {} modules: {}", cycle.len(), cycle.join(", "));
            for from in &cycle {
                for to in edges.get(from).into_iter().flat_map(BTreeMap::keys) {
                    if cycle.contains(to) {
                        let _ = write!(text, "\n    {}", why(from, to));
                    }
                }
            }
            problems.push(text);
        }

        for from in PURE {
            for to in edges.get(*from).into_iter().flat_map(BTreeMap::keys) {
                problems.push(format!("{from} must import nothing else of the crate: {}", why(from, to)));
            }
        }
        for from in LEAVES {
            for to in edges.get(*from).into_iter().flat_map(BTreeMap::keys) {
                if !PURE.contains(&to.as_str()) && !LEAVES.contains(&to.as_str()) {
                    problems.push(format!("{from} must import no feature module: {}", why(from, to)));
                }
            }
        }
        for (modules, banned) in FORBIDDEN {
            for from in *modules {
                for to in *banned {
                    if let Some(route) = route(&edges, from, to) {
                        let steps: Vec<String> = route.windows(2).map(|w| why(&w[0], &w[1])).collect();
                        problems.push(format!(
                            "{from} must not depend on {to}, but does:\n    {}",
                            steps.join("\n    ")
                        ));
                    }
                }
            }
        }
        for (a, b) in SIBLINGS {
            for (one, other) in [(a, b), (b, a)] {
                let (one_path, other_path): (Vec<&str>, Vec<&str>) =
                    (one.split("::").collect(), other.split("::").collect());
                for (file, module, path) in &self.imports {
                    if starts_with(module, &one_path) && starts_with(path, &other_path) {
                        problems.push(format!(
                            "{one} must not import {other}: src/{file}: crate::{}",
                            path.join("::")
                        ));
                    }
                }
            }
        }
        problems
    }
}

fn starts_with(path: &[String], prefix: &[&str]) -> bool {
    path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| a == b)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `store/sqlite/writer.rs` → `[store, sqlite, writer]`; `dialog/mod.rs` → `[dialog]`;
/// `lib.rs` and `main.rs` → `[]`.
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod")
        || (parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main"))
    {
        parts.pop();
    }
    parts
}

/// The names of `mod x;` and `pub mod x;` declarations at the top of a blanked file.
fn declared_modules(blanked: &str) -> Vec<String> {
    let tokens = tokens(blanked);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t == "mod" && tokens.get(i + 2).is_some_and(|t| t == ";") {
            out.push(tokens[i + 1].clone());
        }
    }
    out
}

/// The paths named through `crate::` or leaving through `super::`, outside comments,
/// literals and `#[cfg(test)]` items, in order of appearance.
fn imports(source: &str, module: &[String]) -> Vec<Vec<String>> {
    let code = without_test_items(&blank(source));
    let tokens = tokens(&code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts_path = i == 0 || !(tokens[i - 1] == "::" || tokens[i - 1] == "$" || tokens[i - 1] == "in");
        if starts_path
            && (tokens[i] == "crate" || tokens[i] == "super")
            && tokens.get(i + 1).is_some_and(|t| t == "::")
        {
            // The prefix this path starts from.
            let mut base: Vec<String> = Vec::new();
            if tokens[i] == "super" {
                base = module.to_vec();
                while tokens.get(i) == Some(&"super".to_owned())
                    && tokens.get(i + 1) == Some(&"::".to_owned())
                {
                    base.pop();
                    i += 2;
                }
            } else {
                i += 2;
            }
            let mut paths = Vec::new();
            i = tree(&tokens, i, base, &mut paths);
            out.extend(paths.into_iter().filter(|p: &Vec<String>| !p.is_empty()));
        } else {
            i += 1;
        }
    }
    out
}

/// The paths of every `use` declaration (a root's re-exports), relative to the file.
fn use_trees(blanked: &str) -> Vec<Vec<String>> {
    let tokens = tokens(blanked);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t == "use" {
            let mut paths = Vec::new();
            tree(&tokens, i + 1, Vec::new(), &mut paths);
            out.extend(paths);
        }
    }
    out
}

/// Reads a path or use tree from `tokens[i]` (after its `crate::`), pushing each full path
/// onto `out`; returns the index after it.
fn tree(tokens: &[String], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                i += 1;
                loop {
                    match tokens.get(i).map(String::as_str) {
                        Some("}") => return i + 1,
                        Some(",") => i += 1,
                        None => return i,
                        _ => i = tree(tokens, i, prefix.clone(), out).max(i + 1),
                    }
                }
            }
            Some("*") | Some("self") => {
                out.push(prefix);
                return i + 1;
            }
            Some(t) if is_ident(t) => {
                prefix.push(t.to_owned());
                if tokens.get(i + 1).is_some_and(|t| t == "::") && tokens.get(i + 2).is_some_and(|t| t != "<")
                {
                    i += 2;
                } else {
                    out.push(prefix);
                    // `as Alias` names the same path.
                    return if tokens.get(i + 1).is_some_and(|t| t == "as") { i + 3 } else { i + 1 };
                }
            }
            _ => {
                out.push(prefix);
                return i;
            }
        }
    }
}

fn is_ident(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && t.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Identifiers, `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".to_owned());
            i += 2;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// The source with comments, string literals and character literals replaced by spaces
/// (line breaks kept), so that braces and paths inside them are not seen.
fn blank(source: &str) -> String {
    let s: Vec<char> = source.chars().collect();
    let mut out = s.clone();
    let n = s.len();
    let at = |i: usize, pat: &str| pat.chars().enumerate().all(|(k, c)| s.get(i + k) == Some(&c));
    let clear = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(n)] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < n {
        let ident_before = i > 0 && (s[i - 1].is_alphanumeric() || s[i - 1] == '_');
        if at(i, "//") {
            let end = (i..n).find(|&j| s[j] == '\n').unwrap_or(n);
            clear(&mut out, i, end);
            i = end;
        } else if at(i, "/*") {
            let (mut depth, mut j) = (1, i + 2);
            while depth > 0 && j < n {
                if at(j, "/*") {
                    depth += 1;
                    j += 2;
                } else if at(j, "*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            clear(&mut out, i, j);
            i = j;
        } else if !ident_before && (s[i] == 'r' || at(i, "br") || at(i, "cr")) && {
            // A raw string: r"…", r#"…"#, br"…"…
            let r = if s[i] == 'r' { i } else { i + 1 };
            let hashes = (r + 1..n).take_while(|&j| s[j] == '#').count();
            s.get(r + 1 + hashes) == Some(&'"')
        } {
            let r = if s[i] == 'r' { i } else { i + 1 };
            let hashes = (r + 1..n).take_while(|&j| s[j] == '#').count();
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let mut j = r + 2 + hashes;
            while j < n && !at(j, &close) {
                j += 1;
            }
            let end = j + close.chars().count();
            clear(&mut out, i, end);
            i = end;
        } else if s[i] == '"' {
            let mut j = i + 1;
            while j < n && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            clear(&mut out, i, j + 1);
            i = j + 1;
        } else if s[i] == '\''
            && (!ident_before || (s[i - 1] == 'b' && (i < 2 || !s[i - 2].is_alphanumeric())))
        {
            // A character literal ('x', '\n', '\u{…}') or a lifetime ('a, left alone).
            if s.get(i + 1) == Some(&'\\') {
                let end = (i + 2..n).find(|&j| s[j] == '\'').map_or(n, |j| j + 1);
                clear(&mut out, i, end);
                i = end;
            } else if s.get(i + 2) == Some(&'\'') {
                clear(&mut out, i, i + 3);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The blanked source with every item under `#[cfg(test)]` replaced by spaces: from the
/// attribute to the `;` or the closing brace of the item's first block.
fn without_test_items(code: &str) -> String {
    let mut s: Vec<char> = code.chars().collect();
    let pattern: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + pattern.len() <= s.len() {
        if s[i..i + pattern.len()] != pattern[..] {
            i += 1;
            continue;
        }
        // The item ends at a `;` or `,` outside brackets, at the bracket closing around it
        // (an attribute on the last field), or where its first block closes.
        let mut j = i + pattern.len();
        let mut depth = 0usize;
        while j < s.len() {
            match s[j] {
                '{' | '(' | '[' => depth += 1,
                '}' | ')' | ']' if depth == 0 => break,
                '}' | ')' | ']' => {
                    depth -= 1;
                    if depth == 0 && s[j] == '}' {
                        j += 1;
                        break;
                    }
                }
                ';' | ',' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let end = j.min(s.len());
        for c in &mut s[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = j;
    }
    s.into_iter().collect()
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(
    modules: &BTreeSet<String>,
    edges: &BTreeMap<String, BTreeMap<String, (String, String)>>,
) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, (String, String)>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        out: Vec<Vec<String>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: &str) {
            let n = self.index.len();
            self.index.insert(v.to_owned(), n);
            self.low.insert(v.to_owned(), n);
            self.stack.push(v.to_owned());
            let next: Vec<String> = self.edges.get(v).into_iter().flat_map(|e| e.keys().cloned()).collect();
            for w in next {
                if !self.index.contains_key(&w) {
                    self.visit(&w);
                    let low = self.low[v].min(self.low[&w]);
                    self.low.insert(v.to_owned(), low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[&w]);
                    self.low.insert(v.to_owned(), low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    let done = w == v;
                    component.push(w);
                    if done {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t =
        Tarjan { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), out: Vec::new() };
    for m in modules {
        if !t.index.contains_key(m) {
            t.visit(m);
        }
    }
    t.out
}

/// The shortest chain of modules from `from` to `to`, if there is one.
fn route(
    edges: &BTreeMap<String, BTreeMap<String, (String, String)>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([from.to_owned()]);
    while let Some(v) = queue.pop_front() {
        if v == to {
            let mut route = vec![v];
            while let Some(p) = parent.get(route.last().expect("not empty")) {
                route.push(p.clone());
            }
            route.reverse();
            return Some(route);
        }
        for w in edges.get(&v).into_iter().flat_map(BTreeMap::keys) {
            if w != from && !parent.contains_key(w) {
                parent.insert(w.clone(), v.clone());
                queue.push_back(w.clone());
            }
        }
    }
    None
}
