//! The quota API and the server-create race over real HTTP: the real router
//! served on 127.0.0.1:0, real Keystone tokens from the identity API, the
//! embedded compute agents (libvirt test driver) building what is created.
//!
//! The quota-set, class-set, usage and limits tests each start their own
//! [`Tenants`]: a controller without agents and two projects; whatever
//! limits and servers a test needs it sets and creates itself.

mod class_sets;
mod limits;
mod personality;
mod quota_sets;
mod race;
mod usage;

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud;
use http_cloud::{Cloud, Reply, server};

/// A controller without compute agents (servers are accepted and counted,
/// not built), with project quota-p1 (member alice) and quota-p2 (reader
/// bob).
struct Tenants {
    cloud: Cloud,
    /// The admin's token.
    admin: String,
    /// quota-p1's id.
    project: String,
    /// alice's user id.
    user: String,
    /// alice's token, a member of quota-p1.
    member: String,
    /// quota-p2's id.
    other: String,
    /// bob's token, a reader of quota-p2.
    outsider: String,
    /// `/os-quota-sets/{project}`.
    path: String,
}

impl Tenants {
    async fn start() -> Self {
        let cloud = Cloud::start(|config| config.agent.embedded = false).await;
        let admin = cloud.admin.clone();
        let (project, user, member) = cloud.tenant("quota-p1", "alice", "member").await;
        let (other, _, outsider) = cloud.tenant("quota-p2", "bob", "reader").await;
        let path = format!("/os-quota-sets/{project}");
        Self {
            cloud,
            admin,
            project,
            user,
            member,
            other,
            outsider,
            path,
        }
    }

    async fn stop(self) {
        self.cloud.stop().await;
    }

    /// A compute API call without a body.
    async fn call(&self, token: &str, method: Method, path: &str, version: &str) -> Reply {
        self.cloud.compute(token, method, path, None, version).await
    }

    /// `PUT {path}` with `{"quota_set": quota_set}` as `token`.
    async fn update(&self, token: &str, path: &str, quota_set: Value, version: &str) -> Reply {
        self.cloud
            .compute(
                token,
                Method::PUT,
                path,
                Some(json!({ "quota_set": quota_set })),
                version,
            )
            .await
    }

    /// Sets quota-p1's limits to `quota_set` (admin, 2.56), asserting 200.
    async fn set_project_quota(&self, quota_set: Value) {
        let (status, body) = self
            .update(&self.admin, &self.path, quota_set, "2.56")
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// `PUT /os-quota-class-sets/default` with `quota_class_set` (admin, 2.57).
    async fn update_default_class(&self, quota_class_set: Value) -> Reply {
        self.cloud
            .compute(
                &self.admin,
                Method::PUT,
                "/os-quota-class-sets/default",
                Some(json!({ "quota_class_set": quota_class_set })),
                "2.57",
            )
            .await
    }

    /// `POST /servers` of m1.tiny server `name` as alice.
    async fn create_server(&self, name: &str) -> Reply {
        self.cloud
            .compute(
                &self.member,
                Method::POST,
                "/servers",
                Some(server(name, "1")),
                "2.57",
            )
            .await
    }

    /// Alice's m1.tiny (1 vCPU, 512 MiB) servers `names`, asserting 202.
    async fn create_servers(&self, names: &[&str]) {
        for name in names {
            let (status, body) = self.create_server(name).await;
            assert_eq!(status, 202, "{body}");
        }
    }
}

/// The keys of a JSON object, sorted.
fn keys(body: &Value) -> Vec<String> {
    let mut keys: Vec<String> = body
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}
