//! The identity API (Keystone v3 subset) through the real router, on SQLite
//! and PostgreSQL.

use crate::api_common;

use api_common::{ADMIN_PASSWORD, Backend, PUBLIC_URL, TestApp, assert_keystone_error, backends};
use axum::http::{Method, StatusCode};
use novum_api::auth::AuthContext;
use novum_identity::keys;
use novum_identity::token::TokenPayload;
use serde_json::{Value, json};

/// Runs `test` on every backend.
macro_rules! on_backends {
    ($test:ident) => {
        for backend in backends().await {
            println!("backend: {}", backend.name);
            $test(&backend).await;
        }
    };
}

#[tokio::test]
async fn version_documents() {
    on_backends!(version_documents_on);
}

async fn version_documents_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let root = app.call(Method::GET, "/identity", None, Value::Null).await;
    assert_eq!(root.status, StatusCode::MULTIPLE_CHOICES);
    let version = &root.json["versions"]["values"][0];
    assert_eq!(version["status"], "stable");
    assert!(
        version["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("v3."))
    );
    assert_eq!(version["links"][0]["rel"], "self");
    assert_eq!(
        version["links"][0]["href"],
        format!("{PUBLIC_URL}/identity/v3/")
    );
    assert!(version["updated"].is_string());
    assert_eq!(
        version["media-types"][0]["type"],
        "application/vnd.openstack.identity-v3+json"
    );
    let v3 = app
        .call(Method::GET, "/identity/v3", None, Value::Null)
        .await;
    assert_eq!(v3.status, StatusCode::OK);
    assert_eq!(v3.json["version"], *version);
}

#[tokio::test]
async fn password_token_with_project_scope_and_catalog() {
    on_backends!(password_token_on);
}

async fn password_token_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let reply = app
        .password_auth("admin", ADMIN_PASSWORD, Some("admin"))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let subject = reply.header("x-subject-token").expect("X-Subject-Token");
    assert!(!subject.is_empty());
    let token = &reply.json["token"];
    assert_eq!(token["methods"], json!(["password"]));
    assert_eq!(token["user"]["name"], "admin");
    assert_eq!(
        token["user"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert_eq!(token["project"]["name"], "admin");
    assert_eq!(token["project"]["domain"]["id"], "default");
    let mut roles: Vec<&str> = token["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|role| role["name"].as_str())
        .collect();
    roles.sort_unstable();
    assert_eq!(
        roles,
        ["admin", "manager", "member", "reader"],
        "admin implies manager, member and reader"
    );
    assert!(token["roles"][0]["id"].is_string());
    assert!(
        token["expires_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    assert!(token["issued_at"].is_string());
    assert_eq!(token["audit_ids"].as_array().map(Vec::len), Some(1));
    // The catalog: identity, compute, image, network; public/internal/admin each.
    let catalog = token["catalog"].as_array().expect("catalog");
    let url_of = |kind: &str, interface: &str| {
        catalog
            .iter()
            .find(|service| service["type"] == kind)
            .and_then(|service| {
                service["endpoints"]
                    .as_array()?
                    .iter()
                    .find(|endpoint| endpoint["interface"] == interface)
            })
            .map(|endpoint| {
                assert_eq!(endpoint["region"], "RegionOne");
                assert_eq!(endpoint["region_id"], "RegionOne");
                endpoint["url"].as_str().unwrap_or_default().to_string()
            })
    };
    for interface in ["public", "internal", "admin"] {
        assert_eq!(
            url_of("identity", interface),
            Some(format!("{PUBLIC_URL}/identity"))
        );
        assert_eq!(
            url_of("compute", interface),
            Some(format!("{PUBLIC_URL}/compute/v2.1"))
        );
        assert_eq!(
            url_of("image", interface),
            Some(format!("{PUBLIC_URL}/image"))
        );
        assert_eq!(
            url_of("network", interface),
            Some(format!("{PUBLIC_URL}/network"))
        );
    }
    assert_eq!(catalog.len(), 4);

    // By ids: user id, project id, domain by id.
    let user_id = token["user"]["id"].as_str().expect("user id");
    let project_id = token["project"]["id"].as_str().expect("project id");
    let by_id = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": ADMIN_PASSWORD}}},
                "scope": {"project": {"id": project_id}},
            }}),
        )
        .await;
    assert_eq!(by_id.status, StatusCode::CREATED, "{}", by_id.json);
    assert_eq!(by_id.json["token"]["project"]["id"], project_id);

    // The compute side's view of the token.
    let context = AuthContext::validate(&app.state.identity, subject)
        .await
        .expect("valid token");
    assert_eq!(context.user_name, "admin");
    assert_eq!(context.project_id, project_id);
    assert!(context.is_admin() && context.has_role("reader"));
}

#[tokio::test]
async fn bad_credentials_are_keystone_shaped_401() {
    on_backends!(bad_credentials_on);
}

async fn bad_credentials_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let wrong = app.password_auth("admin", "wrong", Some("admin")).await;
    assert_keystone_error(&wrong, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json["error"]["title"], "Unauthorized");
    assert!(wrong.header("x-subject-token").is_none());
    let unknown = app.password_auth("nobody", "x", Some("admin")).await;
    assert_keystone_error(&unknown, StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.json["error"]["message"], wrong.json["error"]["message"],
        "no user enumeration"
    );
    let other_domain = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Elsewhere"}, "password": ADMIN_PASSWORD}}}}}),
        )
        .await;
    assert_keystone_error(&other_domain, StatusCode::UNAUTHORIZED);
    let no_domain = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "password": ADMIN_PASSWORD}}}}}),
        )
        .await;
    assert_keystone_error(&no_domain, StatusCode::BAD_REQUEST);
    let malformed = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            json!({"auth": {}}),
        )
        .await;
    assert_keystone_error(&malformed, StatusCode::BAD_REQUEST);
    let unsupported = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            json!({"auth": {"identity": {"methods": ["totp"]}}}),
        )
        .await;
    assert_keystone_error(&unsupported, StatusCode::UNAUTHORIZED);
    // No or a garbage token on an identity API: 401, Keystone-shaped.
    let anonymous = app
        .call(Method::GET, "/identity/v3/projects", None, Value::Null)
        .await;
    assert_keystone_error(&anonymous, StatusCode::UNAUTHORIZED);
    let garbage = app
        .call(
            Method::GET,
            "/identity/v3/projects",
            Some("gAAAA-not-a-token"),
            Value::Null,
        )
        .await;
    assert_keystone_error(&garbage, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn scoping_rules() {
    on_backends!(scoping_on);
}

async fn scoping_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project_id, user_id, _) = app.project_user(&admin, "alpha", "alice", "member").await;
    app.create_project(&admin, "beta").await;
    // A project the user holds no role on, an unknown project, a domain.
    let no_role = app.password_auth("alice", "pw", Some("beta")).await;
    assert_keystone_error(&no_role, StatusCode::UNAUTHORIZED);
    let unknown = app.password_auth("alice", "pw", Some("gamma")).await;
    assert_keystone_error(&unknown, StatusCode::UNAUTHORIZED);
    let domain = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"name": "alice", "domain": {"id": "default"}, "password": "pw"}}},
                "scope": {"domain": {"id": "default"}},
            }}),
        )
        .await;
    assert_keystone_error(&domain, StatusCode::UNAUTHORIZED);

    // No scope and no default project: an unscoped token, without catalog;
    // the compute side refuses it with 403.
    let unscoped = app.password_auth("alice", "pw", None).await;
    assert_eq!(unscoped.status, StatusCode::CREATED, "{}", unscoped.json);
    assert!(unscoped.json["token"].get("project").is_none());
    assert!(unscoped.json["token"].get("catalog").is_none());
    let unscoped_token = unscoped
        .header("x-subject-token")
        .expect("token")
        .to_string();
    let refused = AuthContext::validate(&app.state.identity, &unscoped_token).await;
    assert_eq!(
        refused.err().map(|error| error.status()),
        Some(StatusCode::FORBIDDEN)
    );
    // An unscoped token lists the user's projects and rescopes with the token method.
    let projects = app
        .call(
            Method::GET,
            "/identity/v3/auth/projects",
            Some(&unscoped_token),
            Value::Null,
        )
        .await;
    assert_eq!(projects.status, StatusCode::OK);
    assert_eq!(projects.json["projects"][0]["name"], "alpha");
    let rescoped = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            json!({"auth": {
                "identity": {"methods": ["token"], "token": {"id": unscoped_token}},
                "scope": {"project": {"id": project_id}},
            }}),
        )
        .await;
    assert_eq!(rescoped.status, StatusCode::CREATED, "{}", rescoped.json);
    assert_eq!(rescoped.json["token"]["project"]["name"], "alpha");
    let audit_ids = rescoped.json["token"]["audit_ids"]
        .as_array()
        .expect("audit ids");
    assert_eq!(audit_ids.len(), 2);
    assert_eq!(audit_ids[1], unscoped.json["token"]["audit_ids"][0]);
    assert!(
        rescoped.json["token"]["expires_at"].as_str()
            <= unscoped.json["token"]["expires_at"].as_str(),
        "a rescoped token never outlives its original"
    );

    // With a default project the user holds a role on, no scope means that project.
    let patched = app
        .call(
            Method::PATCH,
            &format!("/identity/v3/users/{user_id}"),
            Some(&admin),
            json!({"user": {"default_project_id": project_id}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.json);
    let defaulted = app.password_auth("alice", "pw", None).await;
    assert_eq!(defaulted.json["token"]["project"]["id"], project_id);
    let context = AuthContext::validate(
        &app.state.identity,
        defaulted.header("x-subject-token").expect("token"),
    )
    .await
    .expect("valid");
    assert_eq!(context.roles, ["member", "reader"]);
    assert!(context.can_write() && !context.is_admin());
}

#[tokio::test]
async fn validate_and_revoke() {
    on_backends!(validate_and_revoke_on);
}

async fn validate_and_revoke_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (_, _, user) = app.project_user(&admin, "alpha", "alice", "member").await;
    let validate = |caller: String, subject: String| {
        let app = &app;
        async move {
            app.send(
                Method::GET,
                "/identity/v3/auth/tokens",
                &[
                    ("x-auth-token", caller.as_str()),
                    ("x-subject-token", subject.as_str()),
                ],
                Vec::new(),
            )
            .await
        }
    };
    let ok = validate(admin.clone(), user.clone()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(ok.header("x-subject-token"), Some(user.as_str()));
    assert_eq!(ok.json["token"]["user"]["name"], "alice");
    let own = validate(user.clone(), user.clone()).await;
    assert_eq!(own.status, StatusCode::OK, "a user validates its own token");
    let other = validate(user.clone(), admin.clone()).await;
    assert_keystone_error(&other, StatusCode::FORBIDDEN);
    let bogus = validate(admin.clone(), "bogus".to_string()).await;
    assert_keystone_error(&bogus, StatusCode::NOT_FOUND);
    let head = app
        .send(
            Method::HEAD,
            "/identity/v3/auth/tokens",
            &[
                ("x-auth-token", admin.as_str()),
                ("x-subject-token", user.as_str()),
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);

    let revoked = app
        .send(
            Method::DELETE,
            "/identity/v3/auth/tokens",
            &[
                ("x-auth-token", admin.as_str()),
                ("x-subject-token", user.as_str()),
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let gone = validate(admin.clone(), user.clone()).await;
    assert_keystone_error(&gone, StatusCode::NOT_FOUND);
    let refused = AuthContext::validate(&app.state.identity, &user).await;
    assert_eq!(
        refused.err().map(|error| error.status()),
        Some(StatusCode::UNAUTHORIZED)
    );
    // A new token of the same user is unaffected.
    let fresh = app.token("alice", "pw", "alpha").await;
    assert!(
        AuthContext::validate(&app.state.identity, &fresh)
            .await
            .is_ok()
    );
    // A checked token is kept, but not past a change made anywhere: here
    // in the database itself, as another controller's write would be.
    sqlx::query("UPDATE identity_users SET enabled = 0 WHERE name = 'alice'")
        .execute(backend.db.pool())
        .await
        .expect("disable alice behind the controller's back");
    let refused = AuthContext::validate(&app.state.identity, &fresh).await;
    assert_eq!(
        refused.err().map(|error| error.status()),
        Some(StatusCode::UNAUTHORIZED),
        "a user disabled elsewhere is refused at once"
    );
}

#[tokio::test]
async fn expiry_and_key_rotation() {
    on_backends!(expiry_and_rotation_on);
}

async fn expiry_and_rotation_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let context = AuthContext::validate(&app.state.identity, &admin)
        .await
        .expect("valid");
    let config = api_common::config(&backend.dir.0);
    let key_dir = config.identity.key_repository(&config.data_dir);
    assert_eq!(
        keys::key_indices(&key_dir).expect("keys"),
        vec![0, 1],
        "Keystone's layout at first start"
    );

    // An expired token (made with the repository's own primary key) fails.
    let ring = keys::KeyRing::load(&key_dir).expect("ring");
    let mut payload = TokenPayload::new(
        context.user_id.clone(),
        Some(context.project_id.clone()),
        vec!["password".into()],
        3600,
    );
    let valid = ring.encrypt(&payload.encode());
    assert!(
        AuthContext::validate(&app.state.identity, &valid)
            .await
            .is_ok(),
        "control: same payload, not expired"
    );
    payload.expires_at = payload.issued_at - 1;
    let expired = ring.encrypt(&payload.encode());
    let refused = AuthContext::validate(&app.state.identity, &expired).await;
    assert_eq!(
        refused.err().map(|error| error.status()),
        Some(StatusCode::UNAUTHORIZED)
    );
    let reply = app
        .call(
            Method::GET,
            "/identity/v3/auth/projects",
            Some(&expired),
            Value::Null,
        )
        .await;
    assert_keystone_error(&reply, StatusCode::UNAUTHORIZED);

    // Rotation by another process (the CLI): the running service reloads;
    // the old primary is now a secondary and still validates.
    keys::rotate(&key_dir, 3).expect("rotate");
    assert_eq!(keys::key_indices(&key_dir).expect("keys"), vec![0, 1, 2]);
    assert!(
        AuthContext::validate(&app.state.identity, &admin)
            .await
            .is_ok(),
        "signed by a secondary key"
    );
    let after_first = app.admin_token().await;
    // A second rotation drops key 1: its tokens fail, key 2's still validate.
    app.state.identity.rotate_keys().expect("rotate");
    assert_eq!(keys::key_indices(&key_dir).expect("keys"), vec![0, 2, 3]);
    let refused = AuthContext::validate(&app.state.identity, &admin).await;
    assert_eq!(
        refused.err().map(|error| error.status()),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert!(
        AuthContext::validate(&app.state.identity, &after_first)
            .await
            .is_ok()
    );
    let newest = app.admin_token().await;
    assert!(
        AuthContext::validate(&app.state.identity, &newest)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn admin_crud_and_rbac() {
    on_backends!(admin_crud_on);
}

async fn admin_crud_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project_id, user_id, member) = app.project_user(&admin, "alpha", "alice", "member").await;

    // Non-admins get 403 on admin APIs, Keystone-shaped.
    for path in [
        "/identity/v3/projects",
        "/identity/v3/users",
        "/identity/v3/roles",
        "/identity/v3/role_assignments",
    ] {
        let reply = app
            .call(Method::GET, path, Some(&member), Value::Null)
            .await;
        assert_keystone_error(&reply, StatusCode::FORBIDDEN);
    }
    let create = app
        .call(
            Method::POST,
            "/identity/v3/projects",
            Some(&member),
            json!({"project": {"name": "x"}}),
        )
        .await;
    assert_keystone_error(&create, StatusCode::FORBIDDEN);
    // ... but a member may read its own project and user.
    let own = app
        .call(
            Method::GET,
            &format!("/identity/v3/projects/{project_id}"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    let me = app
        .call(
            Method::GET,
            &format!("/identity/v3/users/{user_id}"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert!(
        me.json["user"].get("password").is_none() && me.json["user"].get("password_hash").is_none()
    );

    // Projects: list with filters, duplicate, update, delete.
    let list = app
        .call(
            Method::GET,
            "/identity/v3/projects",
            Some(&admin),
            Value::Null,
        )
        .await;
    let names: Vec<&str> = list.json["projects"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["admin", "alpha"]);
    let filtered = app
        .call(
            Method::GET,
            "/identity/v3/projects?name=alpha",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(filtered.json["projects"].as_array().map(Vec::len), Some(1));
    assert_eq!(filtered.json["projects"][0]["domain_id"], "default");
    let duplicate = app
        .call(
            Method::POST,
            "/identity/v3/projects",
            Some(&admin),
            json!({"project": {"name": "alpha"}}),
        )
        .await;
    assert_keystone_error(&duplicate, StatusCode::CONFLICT);
    let other_domain = app
        .call(
            Method::POST,
            "/identity/v3/projects",
            Some(&admin),
            json!({"project": {"name": "z", "domain_id": "other"}}),
        )
        .await;
    assert_keystone_error(&other_domain, StatusCode::BAD_REQUEST);
    let bad_field = app
        .call(
            Method::POST,
            "/identity/v3/projects",
            Some(&admin),
            json!({"project": {"name": "z", "enabled": "yes"}}),
        )
        .await;
    assert_keystone_error(&bad_field, StatusCode::BAD_REQUEST);
    assert!(
        bad_field.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("enabled")),
        "{}",
        bad_field.json
    );
    let beta = app.create_project(&admin, "beta").await;
    let renamed = app
        .call(
            Method::PATCH,
            &format!("/identity/v3/projects/{beta}"),
            Some(&admin),
            json!({"project": {"name": "beta2", "description": "d"}}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.json["project"]["name"], "beta2");
    assert_eq!(renamed.json["project"]["description"], "d");
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/identity/v3/projects/{beta}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let missing = app
        .call(
            Method::GET,
            &format!("/identity/v3/projects/{beta}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_keystone_error(&missing, StatusCode::NOT_FOUND);

    // Domains: the one default domain.
    let domains = app
        .call(
            Method::GET,
            "/identity/v3/domains",
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(domains.json["domains"][0]["id"], "default");
    assert_eq!(domains.json["domains"][0]["name"], "Default");
    let domain = app
        .call(
            Method::GET,
            "/identity/v3/domains/default",
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(domain.status, StatusCode::OK);

    // Roles and grants; removing a role takes effect on existing tokens.
    let reader_id = app.role_id(&admin, "reader").await;
    let member_id = app.role_id(&admin, "member").await;
    let grant_path =
        |role: &str| format!("/identity/v3/projects/{project_id}/users/{user_id}/roles/{role}");
    let check = app
        .call(
            Method::HEAD,
            &grant_path(&member_id),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(check.status, StatusCode::NO_CONTENT);
    let not_granted = app
        .call(
            Method::HEAD,
            &grant_path(&reader_id),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(not_granted.status, StatusCode::NOT_FOUND);
    let grant = app
        .call(
            Method::PUT,
            &grant_path(&reader_id),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(grant.status, StatusCode::NO_CONTENT);
    let grants = app
        .call(
            Method::GET,
            &format!("/identity/v3/projects/{project_id}/users/{user_id}/roles"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(grants.json["roles"].as_array().map(Vec::len), Some(2));
    let assignments = app
        .call(
            Method::GET,
            &format!("/identity/v3/role_assignments?user.id={user_id}&include_names"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(
        assignments.status,
        StatusCode::OK,
        "a user lists its own assignments"
    );
    let listed = assignments.json["role_assignments"]
        .as_array()
        .expect("assignments");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["scope"]["project"]["id"], project_id);
    assert_eq!(listed[0]["user"]["name"], "alice");
    let by_project = app
        .call(
            Method::GET,
            &format!(
                "/identity/v3/role_assignments?scope.project.id={project_id}&role.id={member_id}"
            ),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        by_project.json["role_assignments"].as_array().map(Vec::len),
        Some(1)
    );

    let revoke = app
        .call(
            Method::DELETE,
            &grant_path(&member_id),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let context = AuthContext::validate(&app.state.identity, &member)
        .await
        .expect("still has reader");
    assert_eq!(context.roles, ["reader"], "roles are re-read on validation");
    assert!(!context.can_write());
    let revoke = app
        .call(
            Method::DELETE,
            &grant_path(&reader_id),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let refused = AuthContext::validate(&app.state.identity, &member).await;
    assert_eq!(
        refused.err().map(|error| error.status()),
        Some(StatusCode::UNAUTHORIZED),
        "no role left"
    );

    // Users: disable → tokens stop working and login fails; delete.
    app.grant(&admin, &project_id, &user_id, "member").await;
    let token = app.token("alice", "pw", "alpha").await;
    let disabled = app
        .call(
            Method::PATCH,
            &format!("/identity/v3/users/{user_id}"),
            Some(&admin),
            json!({"user": {"enabled": false}}),
        )
        .await;
    assert_eq!(disabled.json["user"]["enabled"], false);
    assert!(
        AuthContext::validate(&app.state.identity, &token)
            .await
            .is_err()
    );
    assert_keystone_error(
        &app.password_auth("alice", "pw", Some("alpha")).await,
        StatusCode::UNAUTHORIZED,
    );
    let password = app
        .call(
            Method::PATCH,
            &format!("/identity/v3/users/{user_id}"),
            Some(&admin),
            json!({"user": {"enabled": true, "password": "new"}}),
        )
        .await;
    assert_eq!(password.status, StatusCode::OK);
    assert_keystone_error(
        &app.password_auth("alice", "pw", Some("alpha")).await,
        StatusCode::UNAUTHORIZED,
    );
    app.token("alice", "new", "alpha").await;
    let users = app
        .call(
            Method::GET,
            "/identity/v3/users?name=alice",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(users.json["users"][0]["id"], user_id);
    let duplicate = app
        .call(
            Method::POST,
            "/identity/v3/users",
            Some(&admin),
            json!({"user": {"name": "alice"}}),
        )
        .await;
    assert_keystone_error(&duplicate, StatusCode::CONFLICT);
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/identity/v3/users/{user_id}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(
        AuthContext::validate(&app.state.identity, &token)
            .await
            .is_err()
    );

    // A custom role.
    let role = app
        .call(
            Method::POST,
            "/identity/v3/roles",
            Some(&admin),
            json!({"role": {"name": "auditor"}}),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED);
    let role_id = role.json["role"]["id"].as_str().expect("id");
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/identity/v3/roles/{role_id}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    // Unknown identity paths: Keystone-shaped 404.
    let unknown = app
        .call(
            Method::GET,
            "/identity/v3/nothing",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_keystone_error(&unknown, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bootstrap_generates_password_and_openrc_once() {
    on_backends!(bootstrap_on);
}

async fn bootstrap_on(backend: &Backend) {
    let mut config = api_common::config(&backend.dir.0);
    config.identity.admin_password = None;
    let app = TestApp::new(backend, config.clone()).await;
    let openrc_path = config.data_dir.join(novum_identity::ADMIN_OPENRC);
    let openrc = std::fs::read_to_string(&openrc_path).expect("admin-openrc.sh");
    let var = |name: &str| {
        openrc
            .lines()
            .find_map(|line| line.strip_prefix(&format!("export {name}=")))
            .map(|value| value.trim_matches('\'').to_string())
    };
    assert_eq!(
        var("OS_AUTH_URL").as_deref(),
        Some(&*format!("{PUBLIC_URL}/identity/v3"))
    );
    assert_eq!(var("OS_USERNAME").as_deref(), Some("admin"));
    assert_eq!(var("OS_PROJECT_NAME").as_deref(), Some("admin"));
    assert_eq!(var("OS_USER_DOMAIN_NAME").as_deref(), Some("Default"));
    assert_eq!(var("OS_PROJECT_DOMAIN_NAME").as_deref(), Some("Default"));
    assert_eq!(var("OS_IDENTITY_API_VERSION").as_deref(), Some("3"));
    let password = var("OS_PASSWORD").expect("password");
    assert!(password.len() >= 16);
    app.token("admin", &password, "admin").await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&openrc_path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "credentials readable by the owner only");
    }
    // A second start keeps the admin and the password.
    std::fs::remove_file(&openrc_path).expect("remove");
    let again = TestApp::new(backend, config).await;
    assert!(!openrc_path.exists(), "no second bootstrap");
    let admin = again.token("admin", &password, "admin").await;
    let users = again
        .call(Method::GET, "/identity/v3/users", Some(&admin), Value::Null)
        .await;
    assert_eq!(users.json["users"].as_array().map(Vec::len), Some(1));
    let roles = again
        .call(Method::GET, "/identity/v3/roles", Some(&admin), Value::Null)
        .await;
    // admin, manager, member, reader and service.
    assert_eq!(roles.json["roles"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn catalog_services_and_endpoints() {
    on_backends!(catalog_on);
}

async fn catalog_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let catalog = app
        .call(
            Method::GET,
            "/identity/v3/auth/catalog",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(catalog.status, StatusCode::OK);
    assert_eq!(catalog.json["catalog"].as_array().map(Vec::len), Some(4));
    let endpoints = app
        .call(
            Method::GET,
            "/identity/v3/endpoints",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        endpoints.json["endpoints"].as_array().map(Vec::len),
        Some(12)
    );
    let services = app
        .call(
            Method::GET,
            "/identity/v3/services",
            Some(&admin),
            Value::Null,
        )
        .await;
    let service_ids: Vec<&Value> = services.json["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| &s["id"])
        .collect();
    for endpoint in endpoints.json["endpoints"].as_array().expect("endpoints") {
        assert!(service_ids.contains(&&endpoint["service_id"]));
    }
    let compute = app
        .call(
            Method::GET,
            "/identity/v3/services?type=compute",
            Some(&admin),
            Value::Null,
        )
        .await;
    let compute_services = compute.json["services"].as_array().expect("services");
    assert_eq!(compute_services.len(), 1);
    let compute_id = compute_services[0]["id"].as_str().expect("id");
    let shown = app
        .call(
            Method::GET,
            &format!("/identity/v3/services/{compute_id}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(shown.json["service"]["name"], "nova");
    let public = app
        .call(
            Method::GET,
            &format!("/identity/v3/endpoints?service_id={compute_id}&interface=public"),
            Some(&admin),
            Value::Null,
        )
        .await;
    let public_endpoints = public.json["endpoints"].as_array().expect("endpoints");
    assert_eq!(public_endpoints.len(), 1);
    assert_eq!(
        public_endpoints[0]["url"],
        format!("{PUBLIC_URL}/compute/v2.1")
    );
    let endpoint_id = public_endpoints[0]["id"].as_str().expect("id");
    let shown = app
        .call(
            Method::GET,
            &format!("/identity/v3/endpoints/{endpoint_id}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(shown.json["endpoint"]["interface"], "public");
    let missing = app
        .call(
            Method::GET,
            "/identity/v3/services/nope",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_keystone_error(&missing, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn repeated_failures_lock_a_user_out_for_the_lockout_duration() {
    on_backends!(lockout_on);
}

/// Consecutive failures that lock in [`lockout_on`].
const LOCKOUT_ATTEMPTS: u32 = 3;
/// The lockout of [`lockout_on`], seconds.
const LOCKOUT_SECONDS: u64 = 2;

async fn lockout_on(backend: &Backend) {
    let mut config = api_common::config(&backend.dir.0);
    config.identity.lockout_failure_attempts = LOCKOUT_ATTEMPTS;
    config.identity.lockout_duration = LOCKOUT_SECONDS;
    let app = api_common::TestApp::new(backend, config).await;
    let admin = app.admin_token().await;
    app.project_user(&admin, "lockers", "locky", "member").await;
    let login = |password: &'static str| app.password_auth("locky", password, Some("lockers"));

    // A success ends a run of failures: two, a success, two more, a success.
    for _ in 0..2 {
        for _ in 0..LOCKOUT_ATTEMPTS - 1 {
            assert_keystone_error(&login("wrong").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(
            login("pw").await.status,
            StatusCode::CREATED,
            "[{}]",
            backend.name
        );
    }

    // N consecutive failures lock: the right password is refused too, with
    // the same answer as a wrong one (nothing tells a locked account apart).
    for _ in 0..LOCKOUT_ATTEMPTS {
        assert_keystone_error(&login("wrong").await, StatusCode::UNAUTHORIZED);
    }
    let locked_at = std::time::Instant::now();
    let locked = login("pw").await;
    assert_keystone_error(&locked, StatusCode::UNAUTHORIZED);
    assert_eq!(
        locked.json["error"]["message"],
        login("wrong").await.json["error"]["message"]
    );
    // Other users are not affected; unknown users cannot be locked (every
    // attempt is the same 401, before and after many).
    app.admin_token().await;
    for _ in 0..LOCKOUT_ATTEMPTS + 2 {
        let unknown = app.password_auth("ghost", "x", Some("lockers")).await;
        assert_keystone_error(&unknown, StatusCode::UNAUTHORIZED);
    }

    // Attempts while locked do not extend the lock; once it ran out, a new
    // run of failures starts from one (a failure, then the right password).
    tokio::time::sleep(std::time::Duration::from_secs(LOCKOUT_SECONDS) / 2).await;
    assert_keystone_error(&login("wrong").await, StatusCode::UNAUTHORIZED);
    let until_unlocked = std::time::Duration::from_millis(LOCKOUT_SECONDS * 1000 + 300)
        .saturating_sub(locked_at.elapsed());
    tokio::time::sleep(until_unlocked).await;
    assert_keystone_error(&login("wrong").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login("pw").await.status,
        StatusCode::CREATED,
        "[{}] unlocked after the lockout duration",
        backend.name
    );
}

#[tokio::test]
async fn concurrent_failures_each_count_once_and_see_their_own_count() {
    on_backends!(concurrent_failures_on);
}

/// Concurrent failed logins of one user (a flood): each failure counts, and
/// each sees the run's length its own failure made, so exactly one sees the
/// run reach the lockout threshold (the one that logs the lockout).
async fn concurrent_failures_on(backend: &Backend) {
    const FAILURES: i64 = 24;
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (_, user_id, _) = app
        .project_user(&admin, "flooded", "floody", "member")
        .await;
    let now = novum_db::timestamp(chrono::Utc::now());
    let long_ago = "2000-01-01T00:00:00.000000Z";
    let failures = (0..FAILURES).map(|_| {
        novum_identity::store::record_failed_auth(&backend.db, &user_id, &now, 1_000, long_ago)
    });
    let mut counts: Vec<i64> = futures_util::future::join_all(failures)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("recorded");
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=FAILURES).collect::<Vec<_>>(),
        "[{}]",
        backend.name
    );
    let unknown =
        novum_identity::store::record_failed_auth(&backend.db, "nobody", &now, 3, long_ago)
            .await
            .expect("an unknown user");
    assert_eq!(unknown, 0, "[{}]", backend.name);
}

#[tokio::test]
async fn an_empty_admin_password_is_refused_at_start() {
    on_backends!(empty_admin_password_on);
}

async fn empty_admin_password_on(backend: &Backend) {
    let mut config = api_common::config(&backend.dir.0);
    config.identity.admin_password = Some(String::new());
    let error = match novum::server::build_state_with_db(config, backend.db.clone()).await {
        Ok(_) => panic!(
            "[{}] a cloud started with an empty admin password",
            backend.name
        ),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("`identity.admin_password`"), "{error}");
    // Nothing was created: no admin user to log in as, with any password.
    assert!(
        novum_identity::store::get_user_by_name(&backend.db, "admin")
            .await
            .expect("query")
            .is_none()
    );
}
