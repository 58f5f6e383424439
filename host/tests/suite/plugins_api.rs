//! novum's plugin admin API over the real router and a real database: listing
//! with metrics, admin-only access, hot reload from the configuration file,
//! and a failing reload that leaves the running set in place.

use crate::api_common;

use api_common::{TestApp, backends};
use axum::http::{Method, StatusCode};
use serde_json::Value;

fn plugin<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["plugins"]
        .as_array()
        .and_then(|plugins| plugins.iter().find(|plugin| plugin["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn list_and_reload_plugins() {
    for backend in backends().await {
        let file = backend.dir.0.join("novum.toml");
        std::fs::write(&file, "").expect("write config");
        let mut config = api_common::config(&backend.dir.0);
        config.source = Some(file.clone());
        let app = TestApp::new(&backend, config).await;
        let admin = app.admin_token().await;

        let listed = app
            .call(Method::GET, "/novum/v1/plugins", Some(&admin), Value::Null)
            .await;
        assert_eq!(listed.status, StatusCode::OK, "{}", backend.name);
        let compute = plugin(&listed.json, "compute-filter");
        assert_eq!(compute["kind"], "filter", "{}", listed.json);
        assert!(compute["metrics"].is_object(), "{compute}");
        assert_eq!(plugin(&listed.json, "ram-weigher")["multiplier"], 1.0);

        // Members may not see or reload the plugin set; no token is 401.
        let project = app.create_project(&admin, "tenant").await;
        let user = app.create_user(&admin, "alice", "alice-secret").await;
        app.grant(&admin, &project, &user, "member").await;
        let member = app.token("alice", "alice-secret", "tenant").await;
        let denied = app
            .call(Method::GET, "/novum/v1/plugins", Some(&member), Value::Null)
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        let denied = app
            .call(
                Method::POST,
                "/novum/v1/plugins/reload",
                Some(&member),
                Value::Null,
            )
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        let anonymous = app
            .call(Method::GET, "/novum/v1/plugins", None, Value::Null)
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

        // A reload picks up a changed multiplier.
        std::fs::write(&file, "[plugins.ram-weigher]\nmultiplier = 2.5\n").expect("write config");
        let reloaded = app
            .call(
                Method::POST,
                "/novum/v1/plugins/reload",
                Some(&admin),
                Value::Null,
            )
            .await;
        assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.json);
        assert_eq!(plugin(&reloaded.json, "ram-weigher")["multiplier"], 2.5);

        // A set with a plugin that cannot load is refused, naming the plugin,
        // and the running set stays.
        std::fs::write(
            &file,
            "[scheduler]\nenabled_filters = [\"compute-filter\", \"missing-filter\"]\n[plugins.missing-filter]\npath = \"/nonexistent/missing.wasm\"\n",
        )
        .expect("write config");
        let refused = app
            .call(
                Method::POST,
                "/novum/v1/plugins/reload",
                Some(&admin),
                Value::Null,
            )
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.json);
        let message = refused.json["conflictingRequest"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("missing-filter"), "{message}");
        let listed = app
            .call(Method::GET, "/novum/v1/plugins", Some(&admin), Value::Null)
            .await;
        assert_eq!(plugin(&listed.json, "ram-weigher")["multiplier"], 2.5);
        assert!(plugin(&listed.json, "missing-filter").is_null());

        // A file that does not parse is a 400 naming the key.
        std::fs::write(&file, "[plugins.ram-weigher]\nmultiplyer = 3\n").expect("write config");
        let invalid = app
            .call(
                Method::POST,
                "/novum/v1/plugins/reload",
                Some(&admin),
                Value::Null,
            )
            .await;
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{}", invalid.json);
        assert!(
            invalid.json.to_string().contains("multiplyer"),
            "{}",
            invalid.json
        );
    }
}
