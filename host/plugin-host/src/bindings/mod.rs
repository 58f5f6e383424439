//! Bindings for every released version of the plugin contract.
//!
//! One module per version folder `wit/since_vX.Y.Z` (only `v0_1_0` exists),
//! and enums over the versions that dispatch each call. A new WIT version adds
//! a module and a variant here; the rest of the runtime speaks the SDK's types
//! and never sees a versioned type.

pub mod v0_1_0;

use std::cell::OnceCell;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::PluginKind;
use super::wasm::StoreState;
use novum_plugin_sdk as sdk;

/// A component linked against one world of one contract version.
pub enum VersionedPre {
    /// `novum:plugin@0.1.0`.
    V0_1_0(v0_1_0::WorldPre),
}

/// An instantiated plugin of one contract version.
pub enum VersionedInstance {
    /// `novum:plugin@0.1.0`.
    V0_1_0(v0_1_0::WorldInstance),
}

/// One scheduling request, converted into each contract version's type at
/// most once (on first use) and shared by every plugin call of the request.
#[derive(Debug)]
pub struct ConvertedRequest<'a> {
    request: &'a sdk::Request,
    v0_1_0: OnceCell<v0_1_0::Request>,
}

impl<'a> ConvertedRequest<'a> {
    /// Wraps `request`; nothing is converted yet.
    pub fn new(request: &'a sdk::Request) -> Self {
        Self {
            request,
            v0_1_0: OnceCell::new(),
        }
    }

    /// The request in the SDK's types.
    pub fn request(&self) -> &'a sdk::Request {
        self.request
    }

    /// The request as `novum:plugin@0.1.0`'s type.
    pub fn v0_1_0(&self) -> &v0_1_0::Request {
        self.v0_1_0.get_or_init(|| self.request.clone().into())
    }
}

impl VersionedPre {
    /// Finds the version and world `pre` implements, or `None` when it
    /// matches none of the released contracts.
    pub fn new(pre: &InstancePre<StoreState>) -> Option<Self> {
        v0_1_0::WorldPre::new(pre).map(Self::V0_1_0)
    }

    /// The contract version, e.g. `0.1.0`.
    pub fn version(&self) -> &'static str {
        match self {
            Self::V0_1_0(_) => "0.1.0",
        }
    }

    /// The plugin kind (world).
    pub fn kind(&self) -> PluginKind {
        match self {
            Self::V0_1_0(pre) => pre.kind(),
        }
    }

    /// Instantiates the plugin in `store`.
    pub fn instantiate(
        &self,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<VersionedInstance> {
        match self {
            Self::V0_1_0(pre) => pre.instantiate(store).map(VersionedInstance::V0_1_0),
        }
    }
}

impl VersionedInstance {
    /// `describe`.
    pub fn describe(&self, store: &mut Store<StoreState>) -> wasmtime::Result<sdk::PluginInfo> {
        match self {
            Self::V0_1_0(instance) => instance.describe(store),
        }
    }

    /// `begin`: hands the instance the request, returns the columns it needs.
    pub fn begin(
        &self,
        store: &mut Store<StoreState>,
        request: &ConvertedRequest<'_>,
    ) -> wasmtime::Result<Vec<sdk::Column>> {
        match self {
            Self::V0_1_0(instance) => instance.begin(store, request.v0_1_0()),
        }
    }

    /// `filter-hosts`, after `begin` on the same instance.
    pub fn filter_hosts(
        &self,
        store: &mut Store<StoreState>,
        hosts: sdk::HostTable,
    ) -> wasmtime::Result<sdk::FilterOutcome> {
        match self {
            Self::V0_1_0(instance) => instance.filter_hosts(store, &hosts.into()),
        }
    }

    /// `weigh-hosts`, after `begin` on the same instance.
    pub fn weigh_hosts(
        &self,
        store: &mut Store<StoreState>,
        hosts: sdk::HostTable,
    ) -> wasmtime::Result<Vec<f64>> {
        match self {
            Self::V0_1_0(instance) => instance.weigh_hosts(store, &hosts.into()),
        }
    }

    /// `check-quota`.
    pub fn check_quota(
        &self,
        store: &mut Store<StoreState>,
        request: sdk::QuotaRequest,
    ) -> wasmtime::Result<Result<(), sdk::QuotaDenial>> {
        match self {
            Self::V0_1_0(instance) => instance.check_quota(store, &request.into()),
        }
    }

    /// `on-notification`.
    pub fn on_notification(
        &self,
        store: &mut Store<StoreState>,
        notification: sdk::Notification,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::V0_1_0(instance) => instance.on_notification(store, &notification.into()),
        }
    }

    /// `report`.
    pub fn report(&self, store: &mut Store<StoreState>) -> wasmtime::Result<String> {
        match self {
            Self::V0_1_0(instance) => instance.report(store),
        }
    }
}
