//! Tidy tests: the architecture rules of `docs/architecture.md`, checked on the crates' manifests.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use crate::workspace_root;

/// The crates that hold the model and the use cases and must stay free of infrastructure.
const PURE_CRATES: [&str; 3] = [
    "clinicflow-domain",
    "clinicflow-ports",
    "clinicflow-services",
];

/// Infrastructure crates (each with its `NAME-*` family) that [`PURE_CRATES`] must not use.
const INFRASTRUCTURE: [&str; 8] = [
    "sea-orm",
    "sea-query",
    "sqlx",
    "actix",
    "redis",
    "deadpool-redis",
    "tokio-postgres",
    "reqwest",
];

#[test]
fn pure_crates_use_no_infrastructure() {
    let manifests = workspace_manifests();
    let mut violations = Vec::new();
    for package in PURE_CRATES {
        let dependencies = manifests
            .get(package)
            .unwrap_or_else(|| panic!("no crates/*/Cargo.toml declares the package {package}"));
        for dependency in dependencies {
            if INFRASTRUCTURE
                .iter()
                .any(|family| in_family(dependency, family))
            {
                violations.push(format!("{package} depends on {dependency}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "domain, ports and services must not depend on database, HTTP or cache crates \
         (docs/architecture.md): {violations:?}"
    );
}

#[test]
fn domain_uses_no_async_runtime_and_no_workspace_crate() {
    let manifests = workspace_manifests();
    let dependencies = manifests
        .get("clinicflow-domain")
        .expect("crates/domain/Cargo.toml declares clinicflow-domain");
    let violations: Vec<&String> = dependencies
        .iter()
        .filter(|name| in_family(name, "tokio") || name.starts_with("clinicflow"))
        .collect();
    assert!(
        violations.is_empty(),
        "clinicflow-domain does no I/O and depends on no other crate of the workspace: {violations:?}"
    );
}

#[test]
fn normal_dependencies_are_read_from_every_form_of_manifest() {
    let root = r#"
[workspace.dependencies]
db = { package = "sea-orm", version = "2" }
"#;
    let manifest = r#"
[package]
name = "clinicflow-example" # a comment
[dependencies]
chrono.workspace = true
db.workspace = true
http = { package = "actix-web", version = "4" }
[dependencies.sqlx]
version = "0.8"
[target.'cfg(unix)'.dependencies]
"redis" = "0.32"
[dev-dependencies]
tokio.workspace = true
[build-dependencies]
reqwest = "0.12"
"#;
    let renames = workspace_renames(root);
    let (package, dependencies) = normal_dependencies(manifest, &renames);
    assert_eq!(package.as_deref(), Some("clinicflow-example"));
    let expected: BTreeSet<String> = [
        "chrono",
        "db",
        "sea-orm",
        "http",
        "actix-web",
        "sqlx",
        "redis",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(dependencies, expected);
    assert!(in_family("actix-web", "actix"));
    assert!(!in_family("redistribute", "redis"));
}

/// Every `crates/*/Cargo.toml`: package name to the names its normal dependencies go by.
fn workspace_manifests() -> BTreeMap<String, BTreeSet<String>> {
    let root = workspace_root();
    let root_manifest = fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml");
    let renames = workspace_renames(&root_manifest);
    let mut manifests = BTreeMap::new();
    for entry in fs::read_dir(root.join("crates")).expect("crates/ directory") {
        let path = entry.expect("crates/ entry").path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if let (Some(package), dependencies) = normal_dependencies(&text, &renames) {
            manifests.insert(package, dependencies);
        }
    }
    manifests
}

/// Whether `name` is `family` or `family-*`.
fn in_family(name: &str, family: &str) -> bool {
    name.strip_prefix(family)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}

/// `[workspace.dependencies]` keys that name another package (`key = { package = "…" }`).
fn workspace_renames(root_manifest: &str) -> BTreeMap<String, String> {
    let mut renames = BTreeMap::new();
    let mut in_workspace_dependencies = false;
    for line in root_manifest.lines().map(strip_comment) {
        if let Some(header) = section_header(line) {
            in_workspace_dependencies = header == ["workspace", "dependencies"];
        } else if let (true, Some(key), Some(package)) = (
            in_workspace_dependencies,
            entry_key(line),
            package_value(line),
        ) {
            renames.insert(key, package);
        }
    }
    renames
}

/// The package name and every name its normal (and target-specific) dependencies go by.
// Keys, `package = "…"` renames and the packages behind inherited workspace
// keys all count: listing too much can only make the tidy test stricter.
fn normal_dependencies(
    manifest: &str,
    renames: &BTreeMap<String, String>,
) -> (Option<String>, BTreeSet<String>) {
    let mut package = None;
    let mut names = BTreeSet::new();
    let add = |names: &mut BTreeSet<String>, key: String| {
        if let Some(renamed) = renames.get(&key) {
            names.insert(renamed.clone());
        }
        names.insert(key);
    };
    // Which section the current line is in.
    enum Section {
        Package,
        Dependencies,
        Dependency,
        Other,
    }
    let mut section = Section::Other;
    for line in manifest.lines().map(strip_comment) {
        if let Some(header) = section_header(line) {
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            section = match header.as_slice() {
                ["package"] => Section::Package,
                ["dependencies"] | ["target", _, "dependencies"] => Section::Dependencies,
                ["dependencies", name] | ["target", _, "dependencies", name] => {
                    add(&mut names, (*name).to_owned());
                    Section::Dependency
                }
                _ => Section::Other,
            };
            continue;
        }
        let key = entry_key(line);
        match section {
            Section::Package if key.as_deref() == Some("name") => {
                package = quoted_value(line);
            }
            Section::Dependencies => {
                if let Some(key) = key {
                    add(&mut names, key);
                }
                if let Some(renamed) = package_value(line) {
                    names.insert(renamed);
                }
            }
            Section::Dependency if key.as_deref() == Some("package") => {
                if let Some(renamed) = quoted_value(line) {
                    names.insert(renamed);
                }
            }
            _ => {}
        }
    }
    (package, names)
}

/// The line without a trailing `# comment` (a `#` outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (index, character) in line.char_indices() {
        match (quote, character) {
            (None, '"' | '\'') => quote = Some(character),
            (Some(open), _) if open == character => quote = None,
            (None, '#') => return line[..index].trim(),
            _ => {}
        }
    }
    line.trim()
}

/// The dotted parts of a `[table]` header, unquoted; `None` for other lines.
fn section_header(line: &str) -> Option<Vec<String>> {
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    let mut parts = vec![String::new()];
    let mut quote = None;
    for character in inner.chars() {
        match (quote, character) {
            (None, '"' | '\'') => quote = Some(character),
            (Some(open), _) if open == character => quote = None,
            (None, '.') => parts.push(String::new()),
            (_, character) => {
                if let Some(part) = parts.last_mut() {
                    part.push(character);
                }
            }
        }
    }
    Some(
        parts
            .into_iter()
            .map(|part| part.trim().to_owned())
            .collect(),
    )
}

/// The first segment of a `key = value` line's key, unquoted (`chrono.workspace` gives `chrono`).
fn entry_key(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let first = key.split('.').next()?.trim().trim_matches(['"', '\'']);
    (!first.is_empty()).then(|| first.to_owned())
}

/// The string after the first `=` (`name = "x"` gives `x`).
fn quoted_value(line: &str) -> Option<String> {
    let (_, value) = line.split_once('=')?;
    let value = value.trim();
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    value[1..].split(quote).next().map(str::to_owned)
}

/// The `package = "…"` inside an inline table, if any.
fn package_value(line: &str) -> Option<String> {
    let (_, value) = line.split_once('=')?;
    let start = value.find("package")?;
    quoted_value(&value[start..])
}
