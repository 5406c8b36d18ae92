//! Tidy tests: the architecture rules of `docs/architecture.md`, checked on the crates'
//! manifests and sources, and the house rules of the repository (no stray files, a `//!`
//! paragraph at the top of every crate).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The inbound adapters: they reach the outside world only through the services.
const INBOUND_ADAPTERS: [&str; 3] = ["clinicflow-api", "clinicflow-fhir", "clinicflow-web"];

#[test]
fn inbound_adapters_never_use_the_store_or_the_cache() {
    let manifests = workspace_manifests();
    assert!(
        manifests.contains_key("clinicflow-api"),
        "crates/api/Cargo.toml declares clinicflow-api"
    );
    let violations: Vec<String> = INBOUND_ADAPTERS
        .iter()
        .filter_map(|package| manifests.get(*package).map(|deps| (package, deps)))
        .flat_map(|(package, dependencies)| {
            dependencies
                .iter()
                .filter(|name| {
                    [
                        "clinicflow-store",
                        "clinicflow-cache",
                        "clinicflow",
                        "clinicflow-migration",
                    ]
                    .contains(&name.as_str())
                })
                .map(move |name| format!("{package} depends on {name}"))
        })
        .collect();
    assert!(
        violations.is_empty(),
        "api (and every other inbound adapter) depends on services, ports and domain only, \
         never on store, cache, migrations or the server (docs/architecture.md): {violations:?}"
    );
}

#[test]
fn services_use_only_domain_and_ports_of_the_workspace() {
    let manifests = workspace_manifests();
    let dependencies = manifests
        .get("clinicflow-services")
        .expect("crates/services/Cargo.toml declares clinicflow-services");
    let violations: Vec<&String> = dependencies
        .iter()
        .filter(|name| {
            name.starts_with("clinicflow")
                && !["clinicflow-domain", "clinicflow-ports"].contains(&name.as_str())
        })
        .collect();
    assert!(
        violations.is_empty(),
        "clinicflow-services depends on no workspace crate but domain and ports: {violations:?}"
    );
}

#[test]
fn loadgen_depends_on_no_workspace_crate() {
    let manifests = workspace_manifests();
    let dependencies = manifests
        .get("clinicflow-loadgen")
        .expect("crates/loadgen/Cargo.toml declares clinicflow-loadgen");
    let violations: Vec<&String> = dependencies
        .iter()
        .filter(|name| name.starts_with("clinicflow"))
        .collect();
    assert!(
        violations.is_empty(),
        "clinicflow-loadgen talks to the server over HTTP only: {violations:?}"
    );
}

/// Calls that read a clock or draw randomness; the domain takes `now` and random bytes as
/// arguments instead, so its rules are repeatable in tests.
const CLOCK_AND_RANDOMNESS: [&str; 12] = [
    "Utc::now",
    "Local::now",
    "SystemTime::now",
    "Instant::now",
    "Uuid::now_v7",
    "Uuid::new_v4",
    "Uuid::new_v7",
    "rand::",
    "thread_rng",
    "OsRng",
    "getrandom",
    "chrono::offset::Local",
];

#[test]
fn domain_source_reads_no_clock_and_draws_no_randomness() {
    let root = workspace_root().join("crates/domain/src");
    let mut violations = Vec::new();
    for path in rust_files(&root) {
        let text = fs::read_to_string(&path).expect("readable domain source");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for call in CLOCK_AND_RANDOMNESS {
                if code.contains(call) {
                    violations.push(format!("{}:{}: {call}", path.display(), number + 1));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the domain never reads a clock or draws randomness; pass `now` or the random \
         bytes in (docs/architecture.md): {violations:?}"
    );
    assert!(
        CLOCK_AND_RANDOMNESS
            .iter()
            .any(|call| "let now = Utc::now();".contains(call)),
        "the pattern list catches a clock call"
    );
}

/// Leftovers of merges, patches and editors that must never be committed.
fn is_stray(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    [".orig", ".rej", ".bak", ".swp", ".swo", "~"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
        || name.starts_with(".#")
        || name == ".DS_Store"
}

#[test]
fn no_stray_files_are_tracked() {
    let output = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(workspace_root())
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git ls-files succeeds");
    let listing = String::from_utf8(output.stdout).expect("tracked paths are UTF-8");
    let stray: Vec<&str> = listing
        .split('\0')
        .filter(|path| !path.is_empty() && is_stray(path))
        .collect();
    assert!(
        stray.is_empty(),
        "merge, patch and editor leftovers are tracked: {stray:?}"
    );
    assert!(is_stray("crates/api/src/page.rs.orig") && is_stray("notes.md~"));
    assert!(!is_stray("crates/api/src/page.rs"));
}

#[test]
fn every_crate_starts_with_a_doc_paragraph() {
    let root = workspace_root();
    let mut crate_roots = Vec::new();
    let mut folders: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("crates/ directory")
        .map(|entry| entry.expect("crates/ entry").path())
        .collect();
    folders.push(root.join("migrations"));
    folders.push(root.join("xtask"));
    for folder in folders {
        for file in ["src/lib.rs", "src/main.rs"] {
            let path = folder.join(file);
            if path.exists() {
                crate_roots.push(path);
            }
        }
    }
    assert!(crate_roots.len() >= 8, "found the crates: {crate_roots:?}");
    let undocumented: Vec<String> = crate_roots
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path).expect("readable crate root");
            !text.trim_start().starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "every crate starts with a `//!` paragraph saying what it is for: {undocumented:?}"
    );
}

#[test]
fn architecture_page_names_every_crate_service_port_and_worker() {
    let root = workspace_root();
    let page = fs::read_to_string(root.join("docs/architecture.md")).expect("docs/architecture.md");
    let mut missing = Vec::new();
    let mut folders: Vec<String> = fs::read_dir(root.join("crates"))
        .expect("crates/ directory")
        .map(|entry| entry.expect("crates/ entry").path())
        .filter(|path| path.join("Cargo.toml").exists())
        .map(|path| {
            let name = path.file_name().expect("folder name").to_string_lossy();
            format!("crates/{name}")
        })
        .collect();
    folders.extend(["migrations".to_owned(), "xtask".to_owned()]);
    missing.extend(
        folders
            .into_iter()
            .filter(|folder| !page.contains(&format!("`{folder}`")))
            .map(|folder| format!("crate {folder}")),
    );
    let declared = |dir: &str, prefix: &str, suffix: &str| -> Vec<String> {
        rust_files(&root.join(dir))
            .iter()
            .flat_map(|path| {
                let text = fs::read_to_string(path).expect("readable source");
                text.lines()
                    .filter_map(|line| line.strip_prefix(prefix))
                    .map(|rest| {
                        rest.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .filter(|name| name.ends_with(suffix))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let services = declared("crates/services/src", "pub struct ", "Service");
    assert!(services.len() >= 10, "found the services: {services:?}");
    let ports = declared("crates/ports/src", "pub trait ", "");
    assert!(ports.len() >= 15, "found the ports: {ports:?}");
    for name in services.iter().chain(&ports) {
        if !page.contains(&format!("`{name}`")) {
            missing.push(name.clone());
        }
    }
    let mut workers = Vec::new();
    for path in rust_files(&root.join("crates/server/src")) {
        let source = fs::read_to_string(&path).expect("readable server source");
        // Workers that unit tests start are not the product's.
        let text = source.split("#[cfg(test)]").next().unwrap_or_default();
        for (_, rest) in text
            .match_indices("Worker::start(")
            .map(|(i, _)| text.split_at(i))
        {
            if let Some(name) = rest.split('"').nth(1) {
                workers.push(name.to_owned());
            }
        }
    }
    assert!(workers.len() >= 3, "found the workers: {workers:?}");
    missing.extend(
        workers
            .into_iter()
            .filter(|name| !page.contains(name.as_str()))
            .map(|name| format!("worker {name}")),
    );
    assert!(
        missing.is_empty(),
        "docs/architecture.md's code map must name every crate (as `crates/x`), service, \
         port (in backticks) and worker: missing {missing:?}"
    );
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("readable source folder") {
            let path = entry.expect("source entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
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
