//! Bindings generated from `wit/since_v0.1.0`, one module per world. The shared
//! `types` and `host` interfaces are generated once (in `filter`) and reused by
//! the other worlds, so every world speaks the same Rust types.

#![allow(missing_docs, clippy::all)]

/// The `filter` world (and the shared `types` and `host` interfaces).
pub mod filter {
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "filter",
        pub_export_macro: true,
        export_macro_name: "export_filter_world",
        default_bindings_module: "novum_plugin_sdk::bindings::filter",
        additional_derives: [PartialEq],
    });
}

/// The `weigher` world.
pub mod weigher {
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "weigher",
        pub_export_macro: true,
        export_macro_name: "export_weigher_world",
        default_bindings_module: "novum_plugin_sdk::bindings::weigher",
        with: {
            "novum:plugin/types@0.1.0": crate::bindings::filter::novum::plugin::types,
            "novum:plugin/host@0.1.0": crate::bindings::filter::novum::plugin::host,
        },
    });
}

/// The `quota-policy` world.
pub mod quota_policy {
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "quota-policy",
        pub_export_macro: true,
        export_macro_name: "export_quota_policy_world",
        default_bindings_module: "novum_plugin_sdk::bindings::quota_policy",
        with: {
            "novum:plugin/types@0.1.0": crate::bindings::filter::novum::plugin::types,
            "novum:plugin/host@0.1.0": crate::bindings::filter::novum::plugin::host,
        },
    });
}

/// The `notification-hook` world.
pub mod notification_hook {
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "notification-hook",
        pub_export_macro: true,
        export_macro_name: "export_notification_hook_world",
        default_bindings_module: "novum_plugin_sdk::bindings::notification_hook",
        with: {
            "novum:plugin/types@0.1.0": crate::bindings::filter::novum::plugin::types,
            "novum:plugin/host@0.1.0": crate::bindings::filter::novum::plugin::host,
        },
    });
}
