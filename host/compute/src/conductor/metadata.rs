//! What the conductor gives the instance metadata generator
//! ([`crate::instance_metadata`]): the instance row, its ports and its
//! security groups; and the spawn spec's config drive made from it.

use novum_wire::{InterfaceSpec, SpawnSpec};

use super::model::{FlavorSnapshot, Instance};
use super::{Conductor, Result, spawn_spec};
use crate::instance_metadata::InstanceMetadata;

impl Conductor {
    /// The metadata documents of `instance` as its ports are now (what the
    /// metadata service answers).
    pub async fn instance_metadata(&self, instance: &Instance) -> Result<InstanceMetadata> {
        let interfaces = self.interfaces(&instance.uuid).await?;
        self.metadata_with(instance, &interfaces).await
    }

    async fn metadata_with(
        &self,
        instance: &Instance,
        interfaces: &[InterfaceSpec],
    ) -> Result<InstanceMetadata> {
        let groups = self
            .network
            .instance_security_groups(&instance.uuid)
            .await?
            .into_iter()
            .map(|group| group.name)
            .collect();
        Ok(InstanceMetadata::new(instance, interfaces, groups)?)
    }

    /// The domain `instance` should have with `flavor` and `interfaces`:
    /// with its config drive's files when its `config_drive` says it has one.
    pub(super) async fn complete_spec(
        &self,
        instance: &Instance,
        flavor: &FlavorSnapshot,
        interfaces: Vec<InterfaceSpec>,
    ) -> Result<SpawnSpec> {
        let config_drive = if instance.config_drive.is_empty() {
            None
        } else {
            Some(
                self.metadata_with(instance, &interfaces)
                    .await?
                    .config_drive(),
            )
        };
        Ok(SpawnSpec {
            interfaces,
            config_drive,
            ..spawn_spec(instance, flavor)
        })
    }
}
