//! `novum plugin new`: a ready-to-build plugin project from a template.
//!
//! - Rust: `Cargo.toml` (a `cdylib` on `novum-plugin-sdk`, a workspace of
//!   its own) and `src/lib.rs`; `cargo build --release --target
//!   wasm32-wasip2` gives `target/wasm32-wasip2/release/<name>.wasm`.
//! - Python: `app.py` (the plugin, on the `novum_plugin` SDK module),
//!   `novum_plugin.py`, the WIT package (`wit/`) and `build.sh`, which runs
//!   componentize-py and gives `<name>.wasm`.
//!
//! Each template is a small working plugin (a RAM-headroom filter, a
//! fewest-instances weigher, a vCPUs-per-server quota policy), the same in
//! both languages, so `novum plugin test` shows what it does right away.

use std::path::{Path, PathBuf};

use super::{Kind, Lang};

/// The componentize-py release the Python templates and the project's own
/// Python plugins are built with (tests/bootstrap.sh installs the same).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The Python SDK module, as plugins/python/sdk holds it.
const PYTHON_SDK: &str = include_str!("../../../plugins/python/sdk/novum_plugin.py");
/// The WIT package the plugins are built against.
const WIT_TYPES: &str = include_str!("../../../wit/since_v0.1.0/types.wit");
const WIT_WORLDS: &str = include_str!("../../../wit/since_v0.1.0/worlds.wit");

const PYTHON_BUILD: &str = include_str!("templates/python/build.sh");
const CARGO_TOML: &str = include_str!("templates/rust/Cargo.toml");

/// The plugin source of `kind` in `lang`.
fn source_template(lang: Lang, kind: Kind) -> &'static str {
    match (lang, kind) {
        (Lang::Python, Kind::Filter) => include_str!("templates/python/filter.py"),
        (Lang::Python, Kind::Weigher) => include_str!("templates/python/weigher.py"),
        (Lang::Python, Kind::Quota) => include_str!("templates/python/quota.py"),
        (Lang::Rust, Kind::Filter) => include_str!("templates/rust/filter.rs"),
        (Lang::Rust, Kind::Weigher) => include_str!("templates/rust/weigher.rs"),
        (Lang::Rust, Kind::Quota) => include_str!("templates/rust/quota.rs"),
    }
}

/// The SDK crate of the novum tree this binary was built from.
pub fn default_sdk_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
    path.canonicalize().unwrap_or(path)
}

/// Whether `name` can name a plugin: a crate name and a file name alike
/// (ASCII letters, digits, `-`, `_`; starting with a letter).
fn valid_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64
}

/// Writes the project of a `kind` plugin `name` in `lang` into `dir`
/// (created; refused if it exists and is not empty). `sdk` is the
/// `novum-plugin-sdk` crate a Rust project depends on. Returns the files
/// written, and the commands that build it.
pub fn write_project(
    lang: Lang,
    kind: Kind,
    name: &str,
    dir: &Path,
    sdk: &Path,
) -> anyhow::Result<(Vec<PathBuf>, String)> {
    if !valid_name(name) {
        anyhow::bail!(
            "`{name}` is not a plugin name: use ASCII letters, digits, `-` and `_`, starting with a letter"
        );
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!("{} exists and is not empty", dir.display());
    }
    let fill = |template: &str| {
        template
            .replace("__NAME__", name)
            .replace("__WORLD__", kind.world())
            .replace("__COMPONENTIZE_VERSION__", COMPONENTIZE_PY_VERSION)
            .replace("__SDK__", &sdk.display().to_string())
    };
    let files: Vec<(&str, String)> = match lang {
        Lang::Python => vec![
            ("app.py", fill(source_template(lang, kind))),
            ("novum_plugin.py", PYTHON_SDK.to_string()),
            ("wit/types.wit", WIT_TYPES.to_string()),
            ("wit/worlds.wit", WIT_WORLDS.to_string()),
            ("build.sh", fill(PYTHON_BUILD)),
        ],
        Lang::Rust => vec![
            ("Cargo.toml", fill(CARGO_TOML)),
            ("src/lib.rs", fill(source_template(lang, kind))),
        ],
    };
    let mut written = Vec::new();
    for (relative, text) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written.push(path);
    }
    let build = match lang {
        Lang::Python => {
            let script = dir.join("build.sh");
            set_executable(&script)?;
            format!(
                "bash {}    # writes {}",
                script.display(),
                dir.join(format!("{name}.wasm")).display()
            )
        }
        Lang::Rust => format!(
            "cd {} && cargo build --release --target wasm32-wasip2    # writes target/wasm32-wasip2/release/{}.wasm",
            dir.display(),
            name.replace('-', "_")
        ),
    };
    Ok((written, build))
}

fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("my-filter_2"));
        assert!(!valid_name("2filter"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
    }
}
