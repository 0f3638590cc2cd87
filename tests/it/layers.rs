//! The layering of `src/lib.rs`, checked on the source: a module imports
//! only from layers below its own, and within a layer only from the units
//! listed before it. An import is a `crate::` path, a `super::` path that
//! leaves its unit, or a folder root's path into one of its own children,
//! anywhere in production code (test modules may reach anywhere).

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom to top. A unit is a module path under `src/`: a file, or a folder
/// with everything in it that is not listed as a unit of its own (a module
/// and the children it declares may use each other; `farm-studio look`
/// shows no circle among files either).
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

/// Production code only: comments and test modules removed.
fn production(src: &str) -> String {
    let cut = src.find("#[cfg(test)]\nmod ").map_or(src, |i| &src[..i]);
    cut.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path a file names: `crate::a::b`, `super::x` resolved, and
/// in a folder root the children it declares (`signals::rows`).
fn imports(file: &str, src: &str) -> Vec<Vec<String>> {
    let here = module_of(file);
    let is_root = file.ends_with("mod.rs") || file == "lib.rs";
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
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    // identifiers joined by `::` from byte `j`; the byte after them
    let chain = |mut j: usize| {
        let mut segs = Vec::new();
        loop {
            let s = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            segs.push(code[s..j].to_string());
            if code[j..].starts_with("::") && j + 2 < bytes.len() && ident(bytes[j + 2]) {
                j += 2;
            } else {
                return (segs, j);
            }
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        if !(ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1]) && bytes[i - 1] != b':')) {
            i += 1;
            continue;
        }
        let (segs, j) = chain(i);
        i = j;
        // `a::{b, c::d}`: each item's leading names after the prefix
        let mut paths = vec![segs.clone()];
        if code[j..].starts_with("::{") {
            let (mut depth, mut k) = (0, j + 2);
            let mut item_start = j + 3;
            while k < bytes.len() {
                match bytes[k] {
                    b'{' => depth += 1,
                    b'}' | b',' if depth == 1 => {
                        let first = code[item_start..k].find(|c: char| ident(c as u8));
                        if let Some(f) = first {
                            let (more, _) = chain(item_start + f);
                            paths.push(segs.iter().cloned().chain(more).collect());
                        }
                        item_start = k + 1;
                        if bytes[k] == b'}' {
                            break;
                        }
                    }
                    b'}' => depth -= 1,
                    _ => {}
                }
                k += 1;
            }
        }
        for segs in paths {
            if segs.len() < 2 {
                continue;
            }
            let resolved: Vec<String> = match segs[0].as_str() {
                "crate" => segs[1..].to_vec(),
                // `super` of `a/b.rs` and of `a/b/mod.rs` is `a`
                "super" => {
                    let mut b = here.clone();
                    let ups = segs.iter().take_while(|s| *s == "super").count();
                    for _ in 0..ups {
                        b.pop();
                    }
                    b.into_iter().chain(segs[ups..].iter().cloned()).collect()
                }
                s if is_root && children.iter().any(|c| c == s) => {
                    let b = if file == "lib.rs" {
                        Vec::new()
                    } else {
                        here.clone()
                    };
                    b.into_iter().chain(segs.iter().cloned()).collect()
                }
                _ => continue,
            };
            out.push(resolved);
        }
    }
    out
}

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
            let Some(to) = unit_of(&path, &ranks) else {
                continue; // a name of the crate root (`crate::Result`)
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

/// Negative controls: a planted back-edge of each kind is found, by file,
/// units and path; an import down the layers is not.
#[test]
fn a_planted_back_edge_is_caught() {
    let mut files = source_files();
    let plant = |files: &mut Vec<(String, String)>, file: &str, line: &str| {
        let f = files.iter_mut().find(|f| f.0 == file).expect("file");
        f.1 = format!("{line}\n{}", f.1);
    };
    // a helper reaching up to the feed
    plant(&mut files, "util/frame.rs", "use crate::feed::Row;");
    // a stage reaching sideways to a later stage, through super
    plant(&mut files, "stages/label.rs", "use super::score::ByRow;");
    // the domain reaching up to the config in an expression
    plant(
        &mut files,
        "domain.rs",
        "fn f() { let _ = crate::config::ValidConfig::default(); }",
    );
    // a folder root at the bottom of its layer naming its child
    plant(&mut files, "pipeline/mod.rs", "fn g() { run::run(); }");
    // an import down the layers, and one in a comment: fine
    plant(
        &mut files,
        "review.rs",
        "use crate::util::thousands; // crate::cmd::x",
    );
    let v = violations(&files);
    assert_eq!(
        v,
        vec![
            "domain.rs: domain (domain) imports config (config) via config::ValidConfig::default",
            "pipeline/mod.rs: pipeline (pipeline) imports pipeline/run (pipeline) via pipeline::run::run",
            "stages/label.rs: stages/label (stages) imports stages/score (stages) via stages::score::ByRow",
            "util/frame.rs: util/frame (util) imports feed (feed) via feed::Row",
        ]
    );
}
