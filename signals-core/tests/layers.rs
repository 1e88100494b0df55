//! The crate's modules only look down: each one names (`crate::module`, outside comments) only
//! modules below it in [`LAYERS`], the order the crate's top-level documentation draws. A new
//! reference upwards, which would start an import cycle, fails this test with the line that
//! makes it.

use std::path::Path;

/// The modules, bottom first; a module stands for the files of its directory too
/// (`registry/*.rs`).
const LAYERS: &[&str] = &[
    "mode",
    "info",
    "error",
    "receiver",
    "raw",
    "signature",
    "connect",
    "table",
    "routes",
    "connector",
    "registry",
    "watch",
    "dispatch",
    "render",
    "explain",
    "signal",
    "type_signal",
    "testing",
];

/// The module a source file belongs to; `None` for the crate root, which may name anything.
fn module_of(path: &Path) -> Option<String> {
    let name = path.file_stem()?.to_str()?;
    let parent = path.parent()?.file_name()?.to_str()?;
    match (parent, name) {
        ("src", "lib") => None,
        ("src", name) => Some(name.to_owned()),
        // A module's own directory: `registry/*.rs`, `signal/tests.rs`.
        (parent, _) => Some(parent.to_owned()),
    }
}

/// The crate modules `line` names as `crate::module`.
fn named_in(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or(line);
    code.match_indices("crate::")
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect::<String>()
        })
        .filter(|module| !module.is_empty())
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_names_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let level = LAYERS
            .iter()
            .position(|layer| *layer == module)
            .unwrap_or_else(|| {
                panic!(
                    "{} is in no layer: add `{module}` to LAYERS",
                    file.display()
                )
            });
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for named in named_in(line) {
                let Some(named_level) = LAYERS.iter().position(|layer| *layer == named) else {
                    continue; // a macro or an item of the crate root
                };
                if named_level > level {
                    upward.push(format!(
                        "{}:{}: `{module}` names `{named}`, which is above it: {}",
                        file.strip_prefix(&src).unwrap().display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "modules that look up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_layers_are_those_the_crate_documentation_draws() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let drawn: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("//! - `"))
        .filter_map(|line| line.split('`').next())
        .collect();
    let mut top_down = LAYERS.to_vec();
    top_down.reverse();
    assert_eq!(
        drawn, top_down,
        "src/lib.rs's layer list and LAYERS disagree"
    );
}
