//! JsonFilter: passes hosts satisfying the scheduler hint `query`, a JSON
//! expression in prefix form, e.g.
//! `["and", [">=", "$free_ram_mb", 1024], ["in", "$hypervisor_type", "QEMU", "KVM"]]`.
//!
//! Commands, as in Nova (the first argument against each of the others):
//! `=`, `<`, `>`, `<=`, `>=` (true when it holds against all others, false
//! with fewer than two arguments), `in` (the first equals one of the others),
//! `not` (negates each argument, giving a list), `or`, `and`. Arguments are
//! numbers, booleans, strings or nested commands; a string starting with `$`
//! names a host attribute by its Nova name, nested with `.` (`$free_ram_mb`,
//! `$cpu_info.arch`, `$metrics.cpu.percent`; see
//! `novum_plugin_sdk::host_attributes`). Unknown attributes, empty strings and
//! nulls are dropped from the arguments. A list result passes when any
//! element is true; other results by Python truthiness.
//!
//! Without the hint, or with an empty query (`[]`, `{}`, `""`, ...), every
//! host passes. Where Nova raises (invalid JSON, an unknown command, ordering
//! a number against a string), every host is rejected with the reason.

use std::cmp::Ordering;

use novum_plugin_sdk::host_attributes::{self, COLUMNS};
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};
use serde_json::Value as Json;

/// A value during evaluation, with Python's comparison semantics.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    fn from_json(json: &Json) -> Option<Self> {
        Some(match json {
            Json::Null => return None,
            Json::Bool(value) => Value::Bool(*value),
            Json::Number(number) => match number.as_i64() {
                Some(int) => Value::Int(int),
                None => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(text) => Value::Text(text.clone()),
            Json::Array(items) => Value::List(items.iter().filter_map(Value::from_json).collect()),
            Json::Object(entries) => Value::Map(
                entries
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), Value::from_json(value)?)))
                    .collect(),
            ),
        })
    }

    fn from_attribute(value: host_attributes::Value<'_>) -> Self {
        match value {
            host_attributes::Value::Int(int) => Value::Int(int),
            host_attributes::Value::Float(float) => Value::Float(float),
            host_attributes::Value::Text(text) => Value::Text(text.to_string()),
            host_attributes::Value::List(items) => Value::List(
                items
                    .into_iter()
                    .map(|item| Value::Text(item.to_string()))
                    .collect(),
            ),
            host_attributes::Value::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| (key.to_string(), Value::from_attribute(value)))
                    .collect(),
            ),
        }
    }

    /// The value as a number, for booleans and numbers (Python's `bool` is an `int`).
    fn number(&self) -> Option<f64> {
        match self {
            Value::Bool(value) => Some(f64::from(u8::from(*value))),
            Value::Int(value) => Some(*value as f64),
            Value::Float(value) => Some(*value),
            _ => None,
        }
    }

    fn integer(&self) -> Option<i64> {
        match self {
            Value::Bool(value) => Some(i64::from(*value)),
            Value::Int(value) => Some(*value),
            _ => None,
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Value::Bool(value) => *value,
            Value::Int(value) => *value != 0,
            Value::Float(value) => *value != 0.0,
            Value::Text(text) => !text.is_empty(),
            Value::List(items) => !items.is_empty(),
            Value::Map(entries) => !entries.is_empty(),
        }
    }

    fn python_eq(&self, other: &Value) -> bool {
        if let (Some(left), Some(right)) = (self.integer(), other.integer()) {
            return left == right;
        }
        if let (Some(left), Some(right)) = (self.number(), other.number()) {
            return left == right;
        }
        match (self, other) {
            (Value::Text(left), Value::Text(right)) => left == right,
            (Value::List(left), Value::List(right)) => {
                left.len() == right.len()
                    && left
                        .iter()
                        .zip(right)
                        .all(|(left, right)| left.python_eq(right))
            }
            (Value::Map(left), Value::Map(right)) => {
                left.len() == right.len()
                    && left.iter().all(|(key, value)| {
                        right.iter().any(|(other_key, other_value)| {
                            key == other_key && value.python_eq(other_value)
                        })
                    })
            }
            _ => false,
        }
    }

    /// Python's ordering; `Ok(None)` for unordered numbers (NaN), `Err` where
    /// Python raises `TypeError`.
    fn python_cmp(&self, other: &Value) -> Result<Option<Ordering>, String> {
        if let (Some(left), Some(right)) = (self.integer(), other.integer()) {
            return Ok(Some(left.cmp(&right)));
        }
        if let (Some(left), Some(right)) = (self.number(), other.number()) {
            return Ok(left.partial_cmp(&right));
        }
        match (self, other) {
            (Value::Text(left), Value::Text(right)) => Ok(Some(left.cmp(right))),
            (Value::List(left), Value::List(right)) => {
                match left
                    .iter()
                    .zip(right)
                    .find(|(left, right)| !left.python_eq(right))
                {
                    Some((left, right)) => left.python_cmp(right),
                    None => Ok(Some(left.len().cmp(&right.len()))),
                }
            }
            _ => Err(format!("cannot order {} and {}", self.kind(), other.kind())),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Text(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "an object",
        }
    }
}

/// Resolves a string argument: `$path` looks up a host attribute.
fn resolve_string(text: &str, host: &HostView<'_>) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    let Some(path) = text.strip_prefix('$') else {
        return Some(Value::Text(text.to_string()));
    };
    let path: Vec<&str> = path.split('.').collect();
    host_attributes::lookup(host, &path).map(Value::from_attribute)
}

/// Compares the first argument against all the others with `accept`.
fn compare_all(args: &[Value], accept: fn(Ordering) -> bool) -> Result<Value, String> {
    let Some((first, rest)) = args.split_first().filter(|(_, rest)| !rest.is_empty()) else {
        return Ok(Value::Bool(false));
    };
    let mut all = true;
    for other in rest {
        all &= first.python_cmp(other)?.is_some_and(accept);
    }
    Ok(Value::Bool(all))
}

/// Evaluates a command list.
fn evaluate(query: &[Json], host: &HostView<'_>) -> Result<Value, String> {
    let Some((command, arguments)) = query.split_first() else {
        return Ok(Value::Bool(true));
    };
    let mut args = Vec::with_capacity(arguments.len());
    for argument in arguments {
        let value = match argument {
            Json::Array(nested) => Some(evaluate(nested, host)?),
            Json::String(text) => resolve_string(text, host),
            other => Value::from_json(other),
        };
        args.extend(value);
    }
    match command.as_str().unwrap_or_default() {
        "=" => {
            let equal = args
                .split_first()
                .filter(|(_, rest)| !rest.is_empty())
                .map(|(first, rest)| rest.iter().all(|other| first.python_eq(other)));
            Ok(Value::Bool(equal.unwrap_or(false)))
        }
        "<" => compare_all(&args, Ordering::is_lt),
        ">" => compare_all(&args, Ordering::is_gt),
        "<=" => compare_all(&args, Ordering::is_le),
        ">=" => compare_all(&args, Ordering::is_ge),
        "in" => Ok(Value::Bool(args.split_first().is_some_and(
            |(first, rest)| rest.iter().any(|other| first.python_eq(other)),
        ))),
        "not" => Ok(Value::List(
            args.iter().map(|arg| Value::Bool(!arg.truthy())).collect(),
        )),
        "or" => Ok(Value::Bool(args.iter().any(Value::truthy))),
        "and" => Ok(Value::Bool(args.iter().all(Value::truthy))),
        _ => Err(format!("unknown command {command} in query")),
    }
}

/// Whether the parsed query passes `host`.
fn query_passes(query: &Json, host: &HostView<'_>) -> Result<bool, String> {
    if Value::from_json(query).is_none_or(|value| !value.truthy()) {
        return Ok(true);
    }
    let Json::Array(query) = query else {
        return Err("query must be a JSON list".to_string());
    };
    Ok(match evaluate(query, host)? {
        Value::List(items) => items.iter().any(Value::truthy),
        other => other.truthy(),
    })
}

/// Nova's JsonFilter.
#[derive(Default)]
pub struct JsonFilter {
    /// The parsed `query` hint, if any (or why it is not JSON).
    query: Option<Result<Json, String>>,
}

/// The first path segments of the `$attribute` strings in `query`.
fn attribute_names<'a>(query: &'a Json, names: &mut Vec<&'a str>) {
    match query {
        Json::Array(items) => {
            for item in items {
                attribute_names(item, names);
            }
        }
        Json::String(text) => {
            if let Some(path) = text.strip_prefix('$') {
                names.push(path.split('.').next().unwrap_or(path));
            }
        }
        _ => {}
    }
}

impl Filter for JsonFilter {
    const DESCRIPTION: &'static str = "host satisfies the JSON query hint";
    const NEEDS: &'static [Column] = COLUMNS;

    /// Only the columns of the attributes the query names.
    fn needs(config: &Config, request: &Request) -> Vec<Column> {
        let filter = Self::prepare(config, request);
        let mut names = Vec::new();
        if let Some(Ok(query)) = &filter.query {
            attribute_names(query, &mut names);
        }
        host_attributes::columns_for(names)
    }

    fn prepare(_config: &Config, request: &Request) -> Self {
        let query = request
            .hint_value("query")
            .filter(|query| !query.is_empty())
            .map(|query| {
                serde_json::from_str(query).map_err(|error| format!("query is not JSON: {error}"))
            });
        Self { query }
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let Some(query) = &self.query else {
            return Ok(());
        };
        let query = query.as_ref().map_err(Clone::clone)?;
        if query_passes(query, host)? {
            Ok(())
        } else {
            Err("host does not satisfy the query".to_string())
        }
    }
}

novum_plugin_sdk::export_filter!(JsonFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_verdicts, hint};
    use serde_json::json;

    fn host(free_ram_mb: i64, free_disk_mb: i64) -> HostSpec {
        HostSpec {
            memory_total_mb: free_ram_mb,
            disk_total_mb: free_disk_mb,
            vcpus_total: 8,
            vcpus_used: 2,
            num_instances: 3,
            hypervisor_type: "QEMU".into(),
            cpu_arch: "x86_64".into(),
            cpu_features: vec!["aes".into()],
            metrics: vec![("cpu.percent".into(), 0.5)],
            ..HostSpec::named("host1")
        }
    }

    fn verdict(query: &str, host: HostSpec) -> Result<(), String> {
        let request = Request {
            scheduler_hints: vec![hint("query", &[query])],
            ..request()
        };
        filter_verdicts::<JsonFilter>(&Config::default(), &request, &[host]).remove(0)
    }

    fn needs(query: &str) -> Vec<Column> {
        let request = Request {
            scheduler_hints: vec![hint("query", &[query])],
            ..request()
        };
        JsonFilter::needs(&Config::default(), &request)
    }

    #[test]
    fn needs_only_the_queried_attributes() {
        assert!(JsonFilter::needs(&Config::default(), &request()).is_empty());
        assert!(needs("not json").is_empty());
        assert!(needs("[]").is_empty());
        assert_eq!(
            needs(
                r#"["and", [">=", "$free_ram_mb", 1], ["in", "$cpu_info.arch", "x86_64"], ["=", "$metrics.cpu.percent", 1]]"#
            ),
            [Column::Memory, Column::Cpu, Column::Metrics]
        );
        assert!(needs(r#"["=", "$unknown", 1]"#).is_empty());
    }

    fn passes(query: Json, host: HostSpec) -> bool {
        verdict(&query.to_string(), host).is_ok()
    }

    fn eval(query: Json) -> bool {
        passes(query, host(0, 0))
    }

    fn memory_and_disk() -> Json {
        json!([
            "and",
            [">=", "$free_ram_mb", 1024],
            [">=", "$free_disk_mb", 200 * 1024]
        ])
    }

    #[test]
    fn query_on_memory_and_disk() {
        assert!(passes(memory_and_disk(), host(1024, 200 * 1024)));
        assert!(!passes(memory_and_disk(), host(1023, 200 * 1024)));
        assert!(!passes(memory_and_disk(), host(1024, 200 * 1024 - 1)));
    }

    #[test]
    fn no_query_passes() {
        let hosts = [host(0, 0)];
        assert_eq!(
            filter_verdicts::<JsonFilter>(&Config::default(), &request(), &hosts),
            [Ok(())]
        );
        assert!(verdict("", host(0, 0)).is_ok());
    }

    #[test]
    fn empty_queries_pass() {
        for query in [
            json!([]),
            json!({}),
            json!(""),
            json!(null),
            json!(0),
            json!(false),
        ] {
            assert!(eval(query.clone()), "{query}");
        }
    }

    #[test]
    fn missing_attribute_under_not_fails() {
        // `$service.disabled` is unknown: dropped, so `not` yields an empty list.
        let query = json!([
            "and",
            [">=", "$free_ram_mb", 1024],
            [">=", "$free_disk_mb", 200 * 1024],
            ["not", "$service.disabled"]
        ]);
        assert!(!passes(query, host(1024, 200 * 1024)));
    }

    #[test]
    fn nested_or_of_ands() {
        let query = json!([
            "or",
            [
                "and",
                ["<", "$free_ram_mb", 30],
                ["<", "$free_disk_mb", 300]
            ],
            [
                "and",
                [">", "$free_ram_mb", 30],
                [">", "$free_disk_mb", 300]
            ]
        ]);
        assert!(passes(query.clone(), host(10, 200)));
        assert!(passes(query.clone(), host(40, 400)));
        assert!(!passes(query.clone(), host(30, 300)));
        assert!(!passes(query, host(20, 400)));
    }

    #[test]
    fn basic_operators() {
        let cases = [
            (json!(["=", 1, 1]), true),
            (json!(["=", 1, 2]), false),
            (json!(["=", 1, 1.0, true]), true),
            (json!(["<", 1, 2]), true),
            (json!(["<", 1, 1]), false),
            (json!(["<", 2, 1]), false),
            (json!([">", 2, 1]), true),
            (json!([">", 2, 2]), false),
            (json!([">", 2, 3]), false),
            (json!(["<=", 1, 2]), true),
            (json!(["<=", 1, 1]), true),
            (json!(["<=", 2, 1]), false),
            (json!([">=", 2, 1]), true),
            (json!([">=", 2, 2]), true),
            (json!([">=", 2, 3]), false),
            (json!(["in", 1, 1]), true),
            (json!(["in", 1, 1, 2, 3]), true),
            (json!(["in", 4, 1, 2, 3]), false),
            (json!(["not", true]), false),
            (json!(["not", false]), true),
            (json!(["or", true, false]), true),
            (json!(["or", false, false]), false),
            (json!(["and", true, true]), true),
            (json!(["and", false, false]), false),
            (json!(["and", true, false]), false),
            (json!(["and", ["or", true, false], [">", 2, 1]]), true),
            (json!(["not", true, false, true, false]), true),
            (json!(["not", true, true, true]), false),
            (json!([">", 3, 1, 2]), true),
            (json!([">", 3, 1, 4]), false),
            (json!(["<", "abc", "abd"]), true),
        ];
        for (query, expected) in cases {
            assert_eq!(eval(query.clone()), expected, "{query}");
        }
    }

    #[test]
    fn unknown_command_rejects() {
        assert_eq!(
            verdict(r#"["!=", 1, 2]"#, host(0, 0)),
            Err("unknown command \"!=\" in query".to_string())
        );
        assert!(verdict(r#"[1, 2]"#, host(0, 0)).is_err());
        assert!(verdict(r#"{"a": 1}"#, host(0, 0)).is_err());
    }

    #[test]
    fn invalid_json_rejects() {
        assert!(
            verdict("[\"=\", 1", host(0, 0))
                .is_err_and(|reason| reason.starts_with("query is not JSON"))
        );
    }

    #[test]
    fn too_few_arguments_fail() {
        assert!(!eval(json!([
            ">",
            ["and", ["or", ["not", ["<", [">=", ["<=", ["in"]]]]]]]
        ])));
        assert!(!eval(json!([">", 1])));
    }

    #[test]
    fn unknown_variables_are_ignored() {
        assert!(eval(json!(["=", "$........", 1, 1])));
        assert!(eval(json!(["=", "$foo", 2, 2])));
        assert!(eval(json!(["=", "", null, 2, 2])));
    }

    #[test]
    fn host_attributes_resolve() {
        let host = || host(2048, 4096);
        assert!(passes(json!(["=", "$hypervisor_type", "QEMU"]), host()));
        assert!(passes(
            json!(["in", "$hypervisor_type", "KVM", "QEMU"]),
            host()
        ));
        assert!(passes(json!(["=", "$cpu_info.arch", "x86_64"]), host()));
        assert!(passes(
            json!(["=", "$cpu_info.features", "$cpu_info.features"]),
            host()
        ));
        assert!(passes(
            json!(["<=", "$cpu_info.features", "$cpu_info.features"]),
            host()
        ));
        assert!(passes(json!(["<", "$metrics.cpu.percent", 0.75]), host()));
        assert!(passes(
            json!([
                "and",
                ["=", "$vcpus_total", 8],
                ["=", "$vcpus_used", 2],
                ["=", "$num_instances", 3]
            ]),
            host()
        ));
        assert!(passes(json!(["=", "$total_usable_ram_mb", 2048]), host()));
        assert!(passes(json!(["=", "$host", "host1"]), host()));
        assert!(!passes(json!(["=", "$hypervisor_type", "KVM"]), host()));
    }

    #[test]
    fn ordering_a_number_against_a_string_rejects() {
        assert!(
            verdict(&json!(["<", "$free_ram_mb", "abc"]).to_string(), host(1, 1))
                .is_err_and(|r| r.contains("cannot order"))
        );
        // Equality across types is simply false.
        assert!(!eval(json!(["=", 1, "1"])));
    }

    #[test]
    fn list_arguments_are_nested_commands_not_literals() {
        assert!(verdict(&json!(["<", [1, 2], [1, 3]]).to_string(), host(0, 0)).is_err());
        assert!(
            verdict(
                &json!(["=", "$cpu_info.features", ["aes"]]).to_string(),
                host(0, 0)
            )
            .is_err()
        );
    }
}
