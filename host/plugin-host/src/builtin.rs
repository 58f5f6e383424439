//! The plugin components shipped inside the controller, built from
//! `plugins/{filters,weighers,quota,hooks}/*` by `host/plugin-host/build.rs`.

/// A shipped plugin component.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinWasm {
    /// Crate name, e.g. `ram-weigher`: the name configuration uses.
    pub name: &'static str,
    /// Directory group under `plugins/`: `filters`, `weighers`, `quota`, `hooks`.
    pub group: &'static str,
    /// The component.
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The shipped component named `name`.
pub fn builtin(name: &str) -> Option<&'static BuiltinWasm> {
    BUILTIN_WASM.iter().find(|plugin| plugin.name == name)
}

/// The directory holding every built component, test plugins included.
pub const PLUGIN_WASM_DIR: &str = env!("NOVUM_PLUGIN_WASM_DIR");

/// The path of the built component of crate `name` (e.g. a test plugin).
pub fn built_component_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(PLUGIN_WASM_DIR).join(format!("{}.wasm", name.replace('-', "_")))
}
