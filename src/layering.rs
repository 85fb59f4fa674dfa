//! The dependency rule of the house, checked on the source: `db` holds queries and row types and
//! imports no domain module; `vision`, `analysis`, `progress` and `states` are the bottom layer and
//! import nothing above them.

use std::path::Path;

/// Each folder or file of `src/` and the modules of this crate it must not name.
const RULES: &[(&str, &[&str])] = &[
    (
        "db",
        &[
            "study", "stimuli", "observer", "analysis", "web", "export", "jobs", "cli", "loadtest",
        ],
    ),
    (
        "vision",
        &[
            "db", "study", "stimuli", "observer", "analysis", "web", "export", "jobs", "cli",
        ],
    ),
    (
        "analysis",
        &[
            "db", "study", "stimuli", "observer", "vision", "web", "export", "jobs", "cli",
        ],
    ),
    (
        "progress.rs",
        &["db", "study", "stimuli", "observer", "web", "jobs"],
    ),
    (
        "states.rs",
        &["db", "study", "stimuli", "observer", "web", "jobs"],
    ),
];

/// The modules of this crate that `source` names, with the line of each (comments left out):
/// `crate::m::...`, `crate::m;` and every top-level item of `crate::{a, b::c, ...}`.
fn named_modules(source: &str) -> Vec<(usize, String)> {
    let code: Vec<&str> = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect();
    let text = code.join("\n");
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at commas outside nested braces.
            let (mut depth, mut start) = (0usize, 0usize);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.push((line_of(at), ident(&group[start..i])));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push((line_of(at), ident(&group[start..i])));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.push((line_of(at), ident(rest)));
        }
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

/// The places in `source` that name a forbidden module, as `line: module`.
fn offending(source: &str, forbidden: &[&str]) -> Vec<String> {
    named_modules(source)
        .into_iter()
        .filter(|(_, name)| forbidden.contains(&name.as_str()))
        .map(|(line, name)| format!("{line}: crate::{name}"))
        .collect()
}

fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<_> = walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

#[test]
fn lower_layers_import_nothing_from_the_layers_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for (part, forbidden) in RULES {
        let files = rust_files(&src.join(part));
        assert!(!files.is_empty(), "src/{part} has no Rust files");
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            for hit in offending(&source, forbidden) {
                found.push(format!("{}:{hit}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "imports against the layering:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_imports_in_every_form() {
    let forbidden = &["study"];
    assert_eq!(
        offending("use crate::study::StudyConfig;", forbidden).len(),
        1
    );
    assert_eq!(offending("use crate::{db, study};", forbidden).len(), 1);
    assert_eq!(
        offending(
            "use crate::{\n    db::x,\n    study::{a, b},\n};",
            forbidden
        )
        .len(),
        1
    );
    assert_eq!(
        offending("use crate::{db::{study, x}, states};", forbidden).len(),
        0
    );
    assert_eq!(offending("use crate::study;", forbidden).len(), 1);
    assert_eq!(
        offending("let x = crate::study::by_id(c, 1);", forbidden).len(),
        1
    );
    assert_eq!(offending("/// see crate::study::Study", forbidden).len(), 0);
    assert_eq!(offending("let a = 1; // crate::study", forbidden).len(), 0);
    assert_eq!(offending("use crate::states::Stage;", forbidden).len(), 0);
}
