//! The layering of `src/lib.rs`, checked on the source: a module imports
//! only from layers below its own, and within a layer only from the units
//! listed before it. An import is a `crate::` path, a `super::` path that
//! leaves its unit, or a folder root's path into one of its own children,
//! anywhere in production code (test modules may reach anywhere).

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom to top. A unit is a module path under `src/`: a file, or a folder
/// with everything in it that is not listed as a unit of its own (a module
/// and the children it declares may use each other; a drawing of the
/// file-level imports shows no circle among files either).
const LAYERS: &[(&str, &[&str])] = &[
    (
        "util",
        &[
            "error",
            "util",
            "util/ids",
            "util/frame",
            "util/stats",
            "util/metrics",
            "util/progress",
        ],
    ),
    ("domain", &["domain"]),
    ("config", &["config"]),
    (
        "io",
        &["io", "io/csv_out", "io/load", "io/publish", "io/synth"],
    ),
    (
        "stages",
        &[
            "stages",
            "stages/label",
            "stages/features",
            "stages/guard",
            "stages/model/newton",
            "stages/model",
            "stages/score",
            "stages/ranked",
            "stages/segments",
        ],
    ),
    (
        "evidence",
        &[
            "evidence/signals/rows",
            "evidence/signals/conditions",
            "evidence/signals",
            "evidence/triggers",
            "evidence/painful",
            "evidence/readiness",
            "evidence/refine",
            "evidence/measure",
            "evidence",
        ],
    ),
    ("feed", &["feed"]),
    ("report", &["report", "report/brief", "report/sql"]),
    ("review", &["review"]),
    ("pipeline", &["pipeline", "pipeline/score", "pipeline/run"]),
    (
        "cmd",
        &[
            "cmd/common",
            "cmd/activate",
            "cmd/approve",
            "cmd/bench",
            "cmd/export_sql",
            "cmd/generate",
            "cmd/run",
            "cmd/score",
            "cmd/train",
            "cmd/validate",
            "cmd",
        ],
    ),
    ("crate root", &["lib"]),
];

/// (layer, position in the layer) of each unit: its rank.
fn ranks() -> BTreeMap<&'static str, (usize, usize)> {
    let mut out = BTreeMap::new();
    for (l, (_, units)) in LAYERS.iter().enumerate() {
        for (i, u) in units.iter().enumerate() {
            assert!(out.insert(*u, (l, i)).is_none(), "{u} listed twice");
        }
    }
    out
}

/// The module path of a source file: `stages/features/encoded.rs` is
/// `stages/features/encoded`, `evidence/signals/mod.rs` is
/// `evidence/signals`, `lib.rs` is `lib`.
fn module_of(file: &str) -> Vec<String> {
    let p = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = p.split('/').map(str::to_string).collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts
}

/// The unit a module path lies in: its longest prefix in the table.
fn unit_of<'a>(path: &[String], ranks: &BTreeMap<&'a str, (usize, usize)>) -> Option<&'a str> {
    (1..=path.len())
        .rev()
        .find_map(|n| ranks.get_key_value(path[..n].join("/").as_str()))
        .map(|(k, _)| *k)
}

/// Production code only: every test module (from `#[cfg(test)]` to its
/// closing brace at the start of a line, as rustfmt writes a file's items)
/// removed, and comments and the insides of string literals blanked, so a
/// path in a message or a doc comment is not an import.
fn production(src: &str) -> String {
    let mut kept = Vec::new();
    let mut in_test = false;
    for l in src.lines() {
        if l.starts_with("#[cfg(test)]") {
            in_test = true;
        }
        if in_test {
            in_test = l != "}";
            continue;
        }
        kept.push(l);
    }
    let text = kept.join("\n");
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            // a comment, to the end of its line
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"'\"'") {
            out.extend_from_slice(b"' '");
            i += 3;
        } else if rest.starts_with(b"r#\"") || rest.starts_with(b"\"") {
            // a string (raw with one #, or with escapes), blanked
            let raw = rest.starts_with(b"r");
            let close: &[u8] = if raw { b"\"#" } else { b"\"" };
            let start = if raw { 3 } else { 1 };
            out.resize(out.len() + start, b' ');
            i += start;
            while i < b.len() && !b[i..].starts_with(close) {
                if !raw && b[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                    i += 1;
                }
            }
            out.resize(out.len() + close.len().min(b.len() - i), b' ');
            i += close.len();
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Identifiers joined by `::` from byte `i` of `code`, and where they end.
fn chain(code: &str, mut i: usize) -> (Vec<String>, usize) {
    let b = code.as_bytes();
    let mut segs = Vec::new();
    loop {
        let s = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        segs.push(code[s..i].to_string());
        if code[i..].starts_with("::") && i + 2 < b.len() && ident(b[i + 2]) {
            i += 2;
        } else {
            return (segs, i);
        }
    }
}

fn ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The paths a use-tree names from byte `i` (just after `prefix::`): a
/// chain, or a chain followed by `::{...}` (each item expanded with the
/// chain as its prefix, recursively). Returns the paths and the end.
fn use_tree(code: &str, prefix: &[String], i: usize) -> (Vec<Vec<String>>, usize) {
    let b = code.as_bytes();
    if b.get(i) == Some(&b'{') {
        return group(code, prefix, i);
    }
    let (segs, j) = chain(code, i);
    let path: Vec<String> = prefix.iter().cloned().chain(segs).collect();
    if code[j..].starts_with("::{") {
        return group(code, &path, j + 2);
    }
    (vec![path], j)
}

/// `{a, b::c, d::{e}}` from the `{` at byte `i`.
fn group(code: &str, prefix: &[String], i: usize) -> (Vec<Vec<String>>, usize) {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut k = i + 1;
    while k < b.len() {
        match b[k] {
            b'}' => return (out, k + 1),
            c if ident(c) || c == b'{' => {
                let (paths, end) = use_tree(code, prefix, k);
                out.extend(paths);
                k = end;
            }
            _ => k += 1,
        }
    }
    (out, k)
}

/// Every module path a file names: `crate::`, `self::` and `super::` paths
/// (use-trees with groups, nesting and globs expanded), and paths into the
/// child modules the file declares (`signals::rows` in evidence/mod.rs,
/// `newton::` in stages/model.rs).
fn imports(file: &str, src: &str) -> Vec<Vec<String>> {
    let here = module_of(file);
    let code = production(src);
    let children: Vec<String> = code
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("pub ");
            l.strip_prefix("mod ")
                .and_then(|r| r.strip_suffix(';'))
                .map(str::to_string)
        })
        .collect();
    // where a file's children live: lib.rs's at the crate root
    let base: Vec<String> = if file == "lib.rs" {
        Vec::new()
    } else {
        here.clone()
    };
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !(ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1]) && bytes[i - 1] != b':')) {
            i += 1;
            continue;
        }
        let (first, j) = chain(code.as_str(), i);
        // a head word followed by `::{` or `::*` is a use-tree too
        let tail_group = code[j..].starts_with("::{") || code[j..].starts_with("::*");
        let (paths, end) = if code[j..].starts_with("::{") {
            group(&code, &first, j + 2)
        } else {
            (vec![first.clone()], j)
        };
        i = end.max(i + 1);
        for segs in paths {
            if segs.len() < 2 && !tail_group {
                continue;
            }
            let resolved: Vec<String> = match segs[0].as_str() {
                "crate" => segs[1..].to_vec(),
                "self" => here
                    .iter()
                    .cloned()
                    .chain(segs[1..].iter().cloned())
                    .collect(),
                // `super` of `a/b.rs` and of `a/b/mod.rs` is `a`
                "super" => {
                    let mut b = here.clone();
                    let ups = segs.iter().take_while(|s| *s == "super").count();
                    for _ in 0..ups {
                        b.pop();
                    }
                    b.into_iter().chain(segs[ups..].iter().cloned()).collect()
                }
                s if children.iter().any(|c| c == s) => {
                    base.iter().cloned().chain(segs.iter().cloned()).collect()
                }
                _ => continue,
            };
            out.push(resolved);
        }
    }
    out
}

/// The crate root's own names: `lib.rs` re-exports these from `error`.
const ROOT_NAMES: [&str; 2] = ["Result", "IcpError"];

/// Each import that runs up (or sideways to a later unit), as
/// "file: unit -> unit (path)"; a file outside the table is one too.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let ranks = ranks();
    let mut out = Vec::new();
    for (file, src) in files {
        let here = module_of(file);
        let Some(from) = unit_of(&here, &ranks) else {
            out.push(format!("{file}: in no layer of the table"));
            continue;
        };
        for path in imports(file, src) {
            let to = match unit_of(&path, &ranks) {
                Some(to) => to,
                None if path.is_empty() || ROOT_NAMES.contains(&path[0].as_str()) => "error",
                None => {
                    out.push(format!(
                        "{file}: names crate::{} that no layer holds",
                        path.join("::")
                    ));
                    continue;
                }
            };
            if to == from || to == "lib" {
                continue;
            }
            if ranks[to] > ranks[from] {
                out.push(format!(
                    "{file}: {from} ({}) imports {to} ({}) via {}",
                    LAYERS[ranks[from].0].0,
                    LAYERS[ranks[to].0].0,
                    path.join("::")
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn source_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("src readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(&root).expect("under src");
                let rel = rel.to_string_lossy().replace('\\', "/");
                if rel != "main.rs" {
                    out.push((rel, std::fs::read_to_string(&p).expect("readable")));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_import_runs_down_the_layers() {
    let files = source_files();
    assert!(files.len() > 40, "read {} files", files.len());
    let v = violations(&files);
    assert!(
        v.is_empty(),
        "imports against the layering:\n{}",
        v.join("\n")
    );
}

/// Negative controls: a planted back-edge of each kind the parser reads is
/// found, by file, units and path; an import down the layers and one in a
/// comment or a string are not.
#[test]
fn a_planted_back_edge_is_caught() {
    let mut files = source_files();
    let plant = |files: &mut Vec<(String, String)>, file: &str, line: &str, at_end: bool| {
        let f = files.iter_mut().find(|f| f.0 == file).expect("file");
        f.1 = if at_end {
            format!("{}\n{line}\n", f.1)
        } else {
            format!("{line}\n{}", f.1)
        };
    };
    // a helper reaching up to the feed
    plant(&mut files, "util/frame.rs", "use crate::feed::Row;", false);
    // a stage reaching sideways to a later stage, through super
    plant(
        &mut files,
        "stages/label.rs",
        "use super::score::ByRow;",
        false,
    );
    // the domain reaching up to the config in an expression
    plant(
        &mut files,
        "domain.rs",
        "fn f() { let _ = crate::config::ValidConfig::default(); }",
        false,
    );
    // a folder root at the bottom of its layer naming its child
    plant(
        &mut files,
        "pipeline/mod.rs",
        "fn g() { run::run(); }",
        false,
    );
    // a group, and a nested group
    plant(
        &mut files,
        "util/stats.rs",
        "use crate::{error::Result, review::Approval};",
        false,
    );
    plant(
        &mut files,
        "config.rs",
        "use crate::{io::{load::Dataset}};",
        false,
    );
    // a glob into the folder root above, and self:: into a later unit
    plant(
        &mut files,
        "evidence/signals/rows.rs",
        "use super::*;",
        false,
    );
    plant(
        &mut files,
        "stages/mod.rs",
        "fn h() { self::score::score(); }",
        false,
    );
    // super::super, and code after the first test module of a file
    plant(
        &mut files,
        "evidence/signals/conditions.rs",
        "use super::super::refine::Criterion;",
        false,
    );
    plant(
        &mut files,
        "util/mod.rs",
        "fn late() { crate::feed::apply(); }",
        true,
    );
    // a name the crate root does not hold from error
    plant(&mut files, "error.rs", "use crate::Findings;", false);
    // down the layers, in a comment and in a string: fine
    plant(
        &mut files,
        "review.rs",
        r#"use crate::util::thousands; // crate::cmd::x
fn s() -> &'static str { "crate::cmd::y // z" }"#,
        false,
    );
    let v = violations(&files);
    assert_eq!(
        v,
        vec![
            "config.rs: config (config) imports io/load (io) via io::load::Dataset",
            "domain.rs: domain (domain) imports config (config) via config::ValidConfig::default",
            "error.rs: names crate::Findings that no layer holds",
            "evidence/signals/conditions.rs: evidence/signals/conditions (evidence) imports evidence/refine (evidence) via evidence::refine::Criterion",
            "evidence/signals/rows.rs: evidence/signals/rows (evidence) imports evidence/signals (evidence) via evidence::signals",
            "pipeline/mod.rs: pipeline (pipeline) imports pipeline/run (pipeline) via pipeline::run::run",
            "stages/label.rs: stages/label (stages) imports stages/score (stages) via stages::score::ByRow",
            "stages/mod.rs: stages (stages) imports stages/score (stages) via stages::score::score",
            "util/frame.rs: util/frame (util) imports feed (feed) via feed::Row",
            "util/mod.rs: util (util) imports feed (feed) via feed::apply",
            "util/stats.rs: util/stats (util) imports review (review) via review::Approval",
        ]
    );
}
