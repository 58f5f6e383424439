//! The operator commands that talk to a running controller (`novum plugin
//! list`, `novum plugin reload`): they authenticate like the openstack CLI,
//! from the `OS_*` environment that `<data_dir>/admin-openrc.sh` sets, and call
//! novum's admin API.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Credentials and endpoint from the `OS_*` environment.
#[derive(Clone, Debug)]
pub struct AdminClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (source <data_dir>/admin-openrc.sh)"))
}

impl AdminClient {
    /// Authenticates with `OS_AUTH_URL`, `OS_USERNAME`, `OS_PASSWORD`,
    /// `OS_PROJECT_NAME` (domains default to `Default`). The controller's base
    /// URL is the auth URL without its `/identity/v3` suffix.
    pub async fn from_env() -> anyhow::Result<Self> {
        let auth_url = env("OS_AUTH_URL")?;
        let auth_url = auth_url.trim_end_matches('/');
        let base_url = auth_url
            .trim_end_matches("/v3")
            .trim_end_matches("/identity")
            .to_string();
        let user_domain =
            std::env::var("OS_USER_DOMAIN_NAME").unwrap_or_else(|_| "Default".to_string());
        let project_domain =
            std::env::var("OS_PROJECT_DOMAIN_NAME").unwrap_or_else(|_| "Default".to_string());
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": env("OS_USERNAME")?, "password": env("OS_PASSWORD")?, "domain": {"name": user_domain}}}},
            "scope": {"project": {"name": env("OS_PROJECT_NAME")?, "domain": {"name": project_domain}}},
        }});
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{base_url}/identity/v3/auth/tokens"))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the controller at {base_url}"))?;
        if !response.status().is_success() {
            bail!(
                "authentication failed ({}): {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .context("the controller answered without a token")?
            .to_string();
        Ok(Self {
            http,
            base_url,
            token,
        })
    }

    /// Calls `method path` on the admin API and returns the JSON answer, or an
    /// error with the controller's message.
    pub async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("x-auth-token", &self.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body
                .as_object()
                .and_then(|fault| fault.values().next())
                .and_then(|fault| fault["message"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            bail!("{status}: {message}");
        }
        Ok(body)
    }
}

/// One line per plugin: name, kind, calls, rejections, errors, p50/p99 latency.
pub fn format_plugins(body: &Value) -> String {
    let mut out = format!(
        "{:<42} {:<18} {:>8} {:>10} {:>7} {:>8} {:>8}\n",
        "plugin", "kind", "calls", "rejected", "errors", "p50 µs", "p99 µs"
    );
    for plugin in body["plugins"].as_array().into_iter().flatten() {
        let metrics = &plugin["metrics"];
        let count = |value: &Value| value.as_u64().unwrap_or(0);
        let errors: u64 = metrics["errors"]
            .as_object()
            .map(|kinds| kinds.values().map(count).sum())
            .unwrap_or(0);
        out.push_str(&format!(
            "{:<42} {:<18} {:>8} {:>10} {:>7} {:>8} {:>8}\n",
            plugin["name"].as_str().unwrap_or("?"),
            plugin["kind"].as_str().unwrap_or("?"),
            count(&metrics["calls"]),
            count(&metrics["rejections"]),
            errors,
            count(&metrics["latency"]["p50_us"]),
            count(&metrics["latency"]["p99_us"]),
        ));
    }
    out
}
