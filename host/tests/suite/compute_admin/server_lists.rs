//! Server lists as the database answers them, on SQLite and PostgreSQL:
//! Nova's default order and its sort keys (several, mixed directions,
//! nullable columns), pages followed link by link to the end, the marker's
//! position (a deleted marker too), the filters pushed into SQL (status,
//! host, flavor, image, user, locked, changes-since/before, deleted) and
//! the regular-expression ones checked over the pages, and the hypervisor
//! reads (statistics leave disabled services out, pages by id).
//!
//! The servers are instance rows written directly (the list is the
//! subject, not the create), each with the fields a test varies.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::api_common::{PUBLIC_URL, Reply};

use super::{Caller, Env, assert_fault, on_each_backend};

/// The flavor of every seeded server.
const FLAVOR_JSON: &str = r#"{"id":"1","name":"m1.tiny","vcpus":1,"memory_mb":512,"root_gb":1,"ephemeral_gb":0,"swap":0,"extra_specs":{}}"#;

/// The time `minute` minutes into 2026, as stored.
fn at_minute(minute: i64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    novum_db::timestamp(start + chrono::Duration::minutes(minute))
}

/// Writes a live ACTIVE server `name` of `caller`'s project created (and
/// updated) at `minute`; returns its uuid.
async fn seed(env: &Env, caller: &Caller, name: &str, minute: i64) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let time = at_minute(minute);
    sqlx::query(
        "INSERT INTO instances (uuid, display_name, project_id, user_id, flavor_id, flavor, vm_state, power_state, \
         reservation_id, availability_zone, created_at, updated_at, launched_at) \
         VALUES ($1, $2, $3, $4, '1', $5, 'active', 1, $6, 'nova', $7, $7, $7)",
    )
    .bind(&uuid)
    .bind(name)
    .bind(&caller.project_id)
    .bind(&caller.user_id)
    .bind(FLAVOR_JSON)
    .bind(format!("r-{name}"))
    .bind(&time)
    .execute(env.app.state.db.pool())
    .await
    .expect("insert instance");
    uuid
}

/// Sets text column `column` of server `uuid` to `value`.
async fn set_text(env: &Env, uuid: &str, column: &str, value: Option<&str>) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE instances SET {column} = $1 WHERE uuid = $2"
    )))
    .bind(value)
    .bind(uuid)
    .execute(env.app.state.db.pool())
    .await
    .expect("update instance");
}

/// Marks server `uuid` deleted at `minute` (as a delete does).
async fn delete_at(env: &Env, uuid: &str, minute: i64) {
    sqlx::query(
        "UPDATE instances SET deleted = 1, vm_state = 'deleted', deleted_at = $1, updated_at = $1, \
         terminated_at = $1 WHERE uuid = $2",
    )
    .bind(at_minute(minute))
    .bind(uuid)
    .execute(env.app.state.db.pool())
    .await
    .expect("delete instance");
}

/// `GET servers{query}` as `caller` at `version`.
async fn get(env: &Env, caller: &Caller, query: &str, version: &str) -> Reply {
    env.compute(
        caller,
        Method::GET,
        &format!("servers{query}"),
        version,
        Value::Null,
    )
    .await
}

/// The names of the servers of a 200 reply.
fn names(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|server| server["name"].as_str().expect("name").to_string())
        .collect()
}

/// Every page of `path` (`servers?…` or `servers/detail?…`) as `caller`,
/// following `servers_links` to the end: the names in order, and the
/// number of pages.
async fn all_pages(env: &Env, caller: &Caller, path: &str, version: &str) -> (Vec<String>, usize) {
    let prefix = format!("{PUBLIC_URL}/compute/v2.1/");
    let mut next = Some(path.to_string());
    let mut all = Vec::new();
    let mut pages = 0;
    while let Some(path) = next.take() {
        let reply = env
            .compute(caller, Method::GET, &path, version, Value::Null)
            .await;
        all.extend(names(&reply));
        pages += 1;
        assert!(pages < 50, "the links never end: {}", reply.json);
        next = reply.json["servers_links"][0]["href"]
            .as_str()
            .map(|href| href.strip_prefix(&prefix).expect("public URL").to_string());
    }
    (all, pages)
}

#[tokio::test]
async fn server_pages_follow_the_links_to_the_end_in_nova_order() {
    on_each_backend(async |env| {
        for minute in 0..7 {
            seed(env, &env.member, &format!("s{minute}"), minute).await;
        }
        let gone = seed(env, &env.member, "gone", 10).await;
        delete_at(env, &gone, 11).await;
        seed(env, &env.other, "elsewhere", 12).await;
        let newest_first: Vec<String> = (0..7).rev().map(|minute| format!("s{minute}")).collect();
        assert_eq!(names(&get(env, &env.member, "", "2.1").await), newest_first);
        let (paged, pages) = all_pages(env, &env.member, "servers?limit=3", "2.1").await;
        assert_eq!(paged, newest_first);
        assert_eq!(pages, 3);
        // Exactly a page's worth: no link after it.
        let reply = get(env, &env.member, "?limit=7", "2.1").await;
        assert!(reply.json.get("servers_links").is_none(), "{}", reply.json);
        let (paged, _) = all_pages(
            env,
            &env.member,
            "servers/detail?limit=2&sort_dir=asc",
            "2.1",
        )
        .await;
        let oldest_first: Vec<String> = newest_first.iter().rev().cloned().collect();
        assert_eq!(paged, oldest_first);
        assert!(names(&get(env, &env.member, "?limit=0", "2.1").await).is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_marker_is_a_position_even_when_its_server_is_deleted_or_unknown() {
    on_each_backend(async |env| {
        let mut uuids = Vec::new();
        for minute in 0..5 {
            uuids.push(seed(env, &env.member, &format!("s{minute}"), minute).await);
        }
        delete_at(env, &uuids[2], 20).await;
        // s2 is gone, yet the page after it starts below its place.
        let reply = get(env, &env.member, &format!("?marker={}", uuids[2]), "2.1").await;
        assert_eq!(names(&reply), ["s1", "s0"]);
        let reply = get(env, &env.member, "?marker=no-such-server", "2.1").await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

#[tokio::test]
async fn several_sort_keys_in_mixed_directions_page_without_gaps() {
    on_each_backend(async |env| {
        // Names repeat, so the second key decides within a name; two
        // servers have no key name (NULL), which sorts as ''.
        let plan = [
            ("b", Some("k2")),
            ("a", None),
            ("b", Some("k1")),
            ("a", Some("k3")),
            ("c", None),
            ("a", Some("k1")),
        ];
        for (minute, (name, key)) in plan.iter().enumerate() {
            let uuid = seed(env, &env.member, name, minute as i64).await;
            set_text(env, &uuid, "key_name", *key).await;
        }
        let query = "sort_key=display_name&sort_dir=asc&sort_key=created_at&sort_dir=desc";
        // a@5, a@3, a@1, b@2, b@0, c@4
        let expected = ["a", "a", "a", "b", "b", "c"];
        assert_eq!(
            names(&get(env, &env.member, &format!("?{query}"), "2.1").await),
            expected
        );
        let (paged, pages) =
            all_pages(env, &env.member, &format!("servers?{query}&limit=2"), "2.1").await;
        assert_eq!(paged, expected);
        assert_eq!(pages, 3);
        // A nullable key, descending, then the name ascending: one page
        // and two-at-a-time pages agree (no NULL row lost at a boundary).
        let query = "sort_key=key_name&sort_dir=desc&sort_key=display_name&sort_dir=asc";
        let whole = names(&get(env, &env.member, &format!("?{query}"), "2.1").await);
        assert_eq!(whole, ["a", "b", "a", "b", "a", "c"]);
        let (paged, _) =
            all_pages(env, &env.member, &format!("servers?{query}&limit=2"), "2.1").await;
        assert_eq!(paged, whole);
        // A key without a direction takes the first one's; an ignored key
        // (Nova's `id`) drops out with its direction, and the defaults
        // then sort ascending.
        let reply = get(
            env,
            &env.member,
            "?sort_key=display_name&sort_key=created_at&sort_dir=asc",
            "2.1",
        )
        .await;
        assert_eq!(names(&reply), ["a", "a", "a", "b", "b", "c"]);
        let reply = get(env, &env.member, "?sort_key=id&sort_dir=desc", "2.1").await;
        assert_eq!(names(&reply), ["b", "a", "b", "a", "c", "a"]);
    })
    .await;
}

#[tokio::test]
async fn sort_parameters_nova_refuses_are_refused() {
    on_each_backend(async |env| {
        seed(env, &env.member, "s", 0).await;
        for (query, version, status, fault) in [
            (
                "?sort_key=bogus",
                "2.1",
                StatusCode::BAD_REQUEST,
                "badRequest",
            ),
            (
                "?sort_key=id",
                "2.75",
                StatusCode::BAD_REQUEST,
                "badRequest",
            ),
            ("?sort_key=locked", "2.75", StatusCode::OK, ""),
            (
                "?sort_key=display_name&sort_dir=sideways",
                "2.1",
                StatusCode::BAD_REQUEST,
                "badRequest",
            ),
            (
                "?sort_key=display_name&sort_dir=asc&sort_dir=desc",
                "2.1",
                StatusCode::BAD_REQUEST,
                "badRequest",
            ),
            ("?sort_key=host", "2.1", StatusCode::FORBIDDEN, "forbidden"),
        ] {
            let reply = get(env, &env.member, query, version).await;
            if status == StatusCode::OK {
                assert_eq!(reply.status, status, "{query}: {}", reply.json);
            } else {
                assert_fault(&reply, status, fault);
            }
        }
        let reply = get(
            env,
            &env.admin,
            "?all_tenants=1&sort_key=host&sort_key=node",
            "2.1",
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    })
    .await;
}

#[tokio::test]
async fn filters_the_database_applies_match_novas() {
    on_each_backend(async |env| {
        let on_alpha = seed(env, &env.member, "on-alpha", 0).await;
        set_text(env, &on_alpha, "host", Some("alpha")).await;
        let stopped = seed(env, &env.member, "stopped", 1).await;
        set_text(env, &stopped, "vm_state", Some("stopped")).await;
        set_text(env, &stopped, "flavor_id", Some("2")).await;
        let imaged = seed(env, &env.member, "imaged", 2).await;
        set_text(env, &imaged, "image_ref", Some("image-x")).await;
        seed(env, &env.reader, "readers", 3).await;
        let locked = seed(env, &env.member, "locked", 4).await;
        sqlx::query("UPDATE instances SET locked = 1, locked_by = 'owner' WHERE uuid = $1")
            .bind(&locked)
            .execute(env.app.state.db.pool())
            .await
            .expect("lock");
        let soft = seed(env, &env.member, "soft", 5).await;
        set_text(env, &soft, "vm_state", Some("soft-delete")).await;
        let gone = seed(env, &env.member, "gone", 6).await;
        delete_at(env, &gone, 30).await;
        let live = ["locked", "readers", "imaged", "stopped", "on-alpha"];

        let member = &env.member;
        let admin = &env.admin;
        let project = &member.project_id;
        assert_eq!(names(&get(env, member, "", "2.1").await), live);
        assert_eq!(
            names(&get(env, member, "?status=SHUTOFF", "2.1").await),
            ["stopped"]
        );
        assert_eq!(
            names(&get(env, member, "?flavor=2", "2.1").await),
            ["stopped"]
        );
        assert_eq!(
            names(&get(env, member, "?image=image-x", "2.1").await),
            ["imaged"]
        );
        // host: administrators only (ignored for others).
        assert_eq!(names(&get(env, member, "?host=alpha", "2.1").await), live);
        let query = format!("?all_tenants=1&project_id={project}&host=alpha");
        assert_eq!(names(&get(env, admin, &query, "2.1").await), ["on-alpha"]);
        // user_id: administrators, and everyone from 2.83.
        let by_reader = format!("?user_id={}", env.reader.user_id);
        assert_eq!(names(&get(env, member, &by_reader, "2.82").await), live);
        assert_eq!(
            names(&get(env, member, &by_reader, "2.83").await),
            ["readers"]
        );
        // locked (2.73): a strict boolean.
        assert_eq!(
            names(&get(env, member, "?locked=true", "2.73").await),
            ["locked"]
        );
        assert_eq!(names(&get(env, member, "?locked=true", "2.72").await), live);
        assert_eq!(
            get(env, member, "?locked=false", "2.73").await.json["servers"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
        assert_fault(
            &get(env, member, "?locked=maybe", "2.73").await,
            StatusCode::BAD_REQUEST,
            "badRequest",
        );
        // changes-since lists deleted and soft-deleted servers too;
        // changes-before bounds it; the two the wrong way round is a 400.
        let since = format!("?changes-since={}", at_minute(4));
        assert_eq!(
            names(&get(env, member, &since, "2.1").await),
            ["gone", "soft", "locked"]
        );
        let window = format!(
            "?changes-since={}&changes-before={}",
            at_minute(4),
            at_minute(5)
        );
        assert_eq!(
            names(&get(env, member, &window, "2.66").await),
            ["soft", "locked"]
        );
        let backwards = format!(
            "?changes-since={}&changes-before={}",
            at_minute(5),
            at_minute(4)
        );
        assert_fault(
            &get(env, member, &backwards, "2.66").await,
            StatusCode::BAD_REQUEST,
            "badRequest",
        );
        // deleted=true (administrators): deleted and soft-deleted ones only.
        let query = format!("?all_tenants=1&project_id={project}&deleted=true");
        assert_eq!(
            names(&get(env, admin, &query, "2.1").await),
            ["gone", "soft"]
        );
        assert_eq!(names(&get(env, member, "?deleted=true", "2.1").await), live);
    })
    .await;
}

#[tokio::test]
async fn regular_expression_filters_fill_every_page() {
    on_each_backend(async |env| {
        // One server in five matches; pages of two read on past the
        // servers the expression drops.
        for minute in 0..30 {
            let name = if minute % 5 == 0 {
                format!("web-{minute}")
            } else {
                format!("db-{minute}")
            };
            seed(env, &env.member, &name, minute).await;
        }
        let expected = ["web-25", "web-20", "web-15", "web-10", "web-5", "web-0"];
        let (paged, pages) = all_pages(env, &env.member, "servers?name=^web-&limit=2", "2.1").await;
        assert_eq!(paged, expected);
        assert_eq!(pages, 3);
        let reply = get(env, &env.member, "?reservation_id=^r-web-1", "2.1").await;
        assert_eq!(names(&reply), ["web-15", "web-10"]);
        let reply = get(env, &env.member, "?availability_zone=^no", "2.1").await;
        assert_eq!(names(&reply).len(), 30);
        // Plain text narrows in SQL (LIKE, whose `_` and `%` are escaped),
        // and the exact, case-sensitive search still decides.
        for (minute, name) in [
            (40, "x_y"),
            (41, "xzy"),
            (42, "50%"),
            (43, "500"),
            (44, "X_Y"),
        ] {
            seed(env, &env.member, name, minute).await;
        }
        assert_eq!(
            names(&get(env, &env.member, "?name=x_y", "2.1").await),
            ["x_y"]
        );
        assert_eq!(
            names(&get(env, &env.member, "?name=50%25", "2.1").await),
            ["50%"]
        );
        assert_eq!(
            names(&get(env, &env.member, "?name=web-2", "2.1").await),
            ["web-25", "web-20"]
        );
    })
    .await;
}

#[tokio::test]
async fn hypervisor_statistics_leave_out_disabled_services() {
    on_each_backend(async |env| {
        let statistics = async || {
            env.compute(
                &env.admin,
                Method::GET,
                "os-hypervisors/statistics",
                "2.1",
                Value::Null,
            )
            .await
            .json["hypervisor_statistics"]
                .clone()
        };
        let both = statistics().await;
        assert_eq!(both["count"], 2);
        assert_eq!(both["memory_mb"], 32768);
        let free_ram = both["memory_mb"].as_i64().expect("memory")
            - both["memory_mb_used"].as_i64().expect("memory used");
        assert_eq!(both["free_ram_mb"], free_ram);
        assert_eq!(both["disk_available_least"], both["free_disk_gb"]);
        sqlx::query("UPDATE services SET disabled = 1 WHERE host = 'beta'")
            .execute(env.app.state.db.pool())
            .await
            .expect("disable beta");
        let one = statistics().await;
        assert_eq!(one["count"], 1);
        assert_eq!(one["vcpus"], 8);
        assert_eq!(one["local_gb"], 100);
    })
    .await;
}

#[tokio::test]
async fn hypervisor_pages_follow_markers_by_id_and_uuid() {
    on_each_backend(async |env| {
        let on_beta = seed(env, &env.member, "on-beta", 0).await;
        set_text(env, &on_beta, "host", Some("beta")).await;
        for version in ["2.33", "2.53"] {
            let list = async |query: &str| {
                env.compute(
                    &env.admin,
                    Method::GET,
                    &format!("os-hypervisors{query}"),
                    version,
                    Value::Null,
                )
                .await
            };
            let first = list("?limit=1").await;
            assert_eq!(
                first.json["hypervisors"][0]["hypervisor_hostname"],
                "alpha.example"
            );
            let href = first.json["hypervisors_links"][0]["href"]
                .as_str()
                .expect("link")
                .to_string();
            let marker = href.rsplit_once("marker=").expect("marker").1.to_string();
            let second = list(&format!("?limit=1&marker={marker}")).await;
            assert_eq!(
                second.json["hypervisors"][0]["hypervisor_hostname"], "beta.example",
                "{version}"
            );
            assert!(
                second.json.get("hypervisors_links").is_none(),
                "{}",
                second.json
            );
            let unknown = list("?marker=4242").await;
            assert_fault(&unknown, StatusCode::BAD_REQUEST, "badRequest");
        }
        let reply = env
            .compute(
                &env.admin,
                Method::GET,
                "os-hypervisors?with_servers=true&limit=5",
                "2.53",
                Value::Null,
            )
            .await;
        let hypervisors = reply.json["hypervisors"].as_array().expect("list").clone();
        assert!(hypervisors[0].get("servers").is_none(), "{}", reply.json);
        assert_eq!(hypervisors[1]["servers"][0]["uuid"], on_beta.as_str());
    })
    .await;
}

#[tokio::test]
async fn usage_pages_walk_every_project_and_one_project_to_the_end() {
    on_each_backend(async |env| {
        let mut everyone = Vec::new();
        let mut member_only = Vec::new();
        for minute in 0..4 {
            let uuid = seed(env, &env.member, &format!("m{minute}"), minute).await;
            member_only.push(uuid.clone());
            everyone.push(uuid);
            everyone.push(seed(env, &env.other, &format!("o{minute}"), minute).await);
        }
        // A server deleted inside the window still counts.
        delete_at(env, &member_only[0], 30).await;
        everyone.sort();
        member_only.sort();
        let window = "start=2025-12-31T00:00:00&end=2026-01-02T00:00:00";
        let prefix = format!("{PUBLIC_URL}/compute/v2.1/");
        // Every page's server ids, following `links` from `path`.
        let walk = async |path: String, usages: &str, links: &str| {
            let mut next = Some(path);
            let mut ids = Vec::new();
            while let Some(path) = next.take() {
                let reply = env
                    .compute(&env.admin, Method::GET, &path, "2.40", Value::Null)
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
                let tenants = match &reply.json[usages] {
                    Value::Array(list) => list.clone(),
                    one => vec![one.clone()],
                };
                for tenant in tenants {
                    for server in tenant["server_usages"].as_array().into_iter().flatten() {
                        ids.push(server["instance_id"].as_str().expect("id").to_string());
                    }
                }
                assert!(ids.len() <= 20, "the links never end");
                next = reply.json[links][0]["href"]
                    .as_str()
                    .map(|href| href.strip_prefix(&prefix).expect("public URL").to_string());
            }
            ids
        };
        let mut all = walk(
            format!("os-simple-tenant-usage?{window}&detailed=1&limit=3"),
            "tenant_usages",
            "tenant_usages_links",
        )
        .await;
        all.sort();
        assert_eq!(all, everyone);
        let mut one = walk(
            format!(
                "os-simple-tenant-usage/{}?{window}&limit=1",
                env.member.project_id
            ),
            "tenant_usage",
            "tenant_usage_links",
        )
        .await;
        one.sort();
        assert_eq!(one, member_only);
    })
    .await;
}
