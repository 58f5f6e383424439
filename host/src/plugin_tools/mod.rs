//! Plugin authoring tools of the `novum` command, which need no running
//! controller:
//!
//! - [`new`]: `novum plugin new --lang rust|python filter|weigher|quota NAME`
//!   writes a ready-to-build plugin project (a crate on
//!   `novum-plugin-sdk`, or `app.py` on the Python SDK with its build
//!   script for componentize-py).
//! - [`test`]: `novum plugin test PLUGIN.wasm` loads a component in the
//!   real plugin host (same engine, sandbox and limits as the controller)
//!   and runs it against a synthetic cloud, or against the request of a
//!   recorded decision, printing its verdict per host (pass or the
//!   rejection's reason), its weights, or its quota answers.

pub mod new;
pub mod test;

/// What a plugin does, as the templates and `plugin new` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A scheduler filter (world `filter`).
    Filter,
    /// A scheduler weigher (world `weigher`).
    Weigher,
    /// A quota policy (world `quota-policy`).
    Quota,
}

impl Kind {
    /// The WIT world of this kind.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Filter => "filter",
            Kind::Weigher => "weigher",
            Kind::Quota => "quota-policy",
        }
    }
}

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate built for `wasm32-wasip2`.
    Rust,
    /// A Python module built with componentize-py.
    Python,
}
