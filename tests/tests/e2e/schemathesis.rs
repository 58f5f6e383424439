//! schemathesis (installed by tests/bootstrap.sh) fuzzes every operation of
//! the real `novum serve` from its own OpenAPI document
//! (`/novum/v1/openapi.json`), once as the admin and once as a member of
//! another project: no answer may be a 5xx, and every answer must match the
//! status codes, content types and schemas the document promises.

use std::process::Command;
use std::time::Instant;

use novum_tests::{Cloud, schemathesis};
use serde_json::{Value, json};

/// Generated test cases per operation: enough to reach every handler's
/// validation with valid and invalid input, few enough for the whole run
/// (two callers, 126 operations, with the coverage phase) to take under
/// three minutes on two cores.
const MAX_EXAMPLES: &str = "8";

/// A fixed seed: the same cases every run, so a failure reproduces.
const SEED: &str = "20261205";

/// What every response is checked for.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// The phases that run: the schema's examples, the coverage phase (the
/// boundaries of every parameter and body: missing, empty, wrong type,
/// repeated), and generated cases. Stateful chains (links between
/// operations) are left out to bound the time.
const PHASES: &str = "examples,coverage,fuzzing";

/// The hooks schemathesis loads: serializers for novum's own media types.
const HOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis_hooks.py");

/// The member's password.
const MEMBER_PASSWORD: &str = "schemathesis-member-password";

/// Sends `body` to `path` with `token`; the JSON answer, or an error naming
/// the status.
fn call(
    cloud: &Cloud,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(reqwest::header::HeaderMap, Value)> {
    let mut request = reqwest::blocking::Client::new()
        .request(method.clone(), format!("{}{path}", cloud.url))
        .header("x-auth-token", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send()?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text()?;
    anyhow::ensure!(
        status.is_success(),
        "{method} {path} answered {status}: {text}"
    );
    Ok((headers, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A token of a new user holding `member` in a new project (made through
/// the identity API as the admin).
fn member_token(cloud: &Cloud, admin: &str) -> anyhow::Result<String> {
    use reqwest::Method;
    let (_, project) = call(
        cloud,
        admin,
        Method::POST,
        "/identity/v3/projects",
        Some(json!({"project": {"name": "fuzz-project", "domain_id": "default"}})),
    )?;
    let project_id = project["project"]["id"].as_str().unwrap_or_default();
    let (_, user) = call(
        cloud,
        admin,
        Method::POST,
        "/identity/v3/users",
        Some(
            json!({"user": {"name": "fuzz-member", "domain_id": "default",
            "password": MEMBER_PASSWORD, "default_project_id": project_id}}),
        ),
    )?;
    let user_id = user["user"]["id"].as_str().unwrap_or_default();
    let (_, roles) = call(
        cloud,
        admin,
        Method::GET,
        "/identity/v3/roles?name=member",
        None,
    )?;
    let role_id = roles["roles"][0]["id"].as_str().unwrap_or_default();
    call(
        cloud,
        admin,
        Method::PUT,
        &format!("/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
        None,
    )?;
    let (headers, _) = call(
        cloud,
        "",
        Method::POST,
        "/identity/v3/auth/tokens",
        Some(json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "id": user_id, "password": MEMBER_PASSWORD}}},
            "scope": {"project": {"id": project_id}},
        }})),
    )?;
    Ok(headers
        .get("x-subject-token")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("no X-Subject-Token for the member"))?
        .to_string())
}

/// The lines of schemathesis' output from its summary on (or all of it).
fn summary(output: &str) -> &str {
    output
        .find("SUMMARY")
        .map_or(output, |start| &output[start..])
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() -> anyhow::Result<()> {
    // Saturates the cores on purpose: runs alone (see `exclusive_turn`).
    let _turn = novum_tests::exclusive_turn();
    let schemathesis = schemathesis().ok_or_else(|| {
        anyhow::anyhow!("schemathesis is missing: run tests/bootstrap.sh (it installs it)")
    })?;
    let cloud = Cloud::start("schemathesis", "")?;
    let admin = cloud.admin_token()?;
    let member = member_token(&cloud, &admin)?;
    let document = format!("{}/novum/v1/openapi.json", cloud.url);
    let mut failures = Vec::new();
    for (caller, token) in [("admin", &admin), ("member", &member)] {
        let started = Instant::now();
        let run = Command::new(&schemathesis)
            .args(["run", &document, "--url", &cloud.url])
            .args(["--header", &format!("X-Auth-Token: {token}")])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
            .args(["--checks", CHECKS, "--phases", PHASES])
            // One worker: Hypothesis' lambda-description cache is not
            // thread-safe (two workers crashed a run with "AST constructor
            // recursion depth mismatch").
            .args(["--workers", "1", "--no-shrink", "--continue-on-failure"])
            .args(["--request-timeout", "30"])
            .current_dir(&cloud.data_dir)
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", HOOKS)
            .output()?;
        let output = format!(
            "{}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        eprintln!(
            "schemathesis as {caller} ({:?}, exit {}):\n{}",
            started.elapsed(),
            run.status,
            summary(&output)
        );
        if !run.status.success() {
            failures.push(format!("as {caller}:\n{output}"));
        }
    }
    assert!(
        failures.is_empty(),
        "schemathesis found failures:\n{}",
        failures.join("\n\n")
    );
    Ok(())
}
