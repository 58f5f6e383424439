//! schemathesis (installed by tests/bootstrap.sh) fuzzes every operation of
//! the real `novum serve` from its own OpenAPI document
//! (`/novum/v1/openapi.json`), once as the admin and once as a member of
//! another project: no answer may be a 5xx, and every answer must match the
//! status codes, content types and schemas the document promises.

use std::process::Command;
use std::time::Instant;

use novum_tests::{Cloud, schemathesis};

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
    let member = cloud
        .project_member(&admin, "fuzz-project", "fuzz-member")?
        .token;
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
