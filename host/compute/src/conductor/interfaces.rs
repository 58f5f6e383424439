//! `os-interface`: plugging a port into a server and unplugging it, as
//! instance actions (`attach_interface`, `detach_interface`) with Nova's
//! `instance.interface_attach` / `instance.interface_detach` notifications.
//!
//! Attach: the port is made (or the user's taken) and bound to the server's
//! host by the network service first, then one serialized transaction
//! re-checks the server's state and queues the agent's `AttachInterface`
//! task with the action and its start notification; a failed task gives the
//! port back (deleted when made for the server, else unbound). Detach: the
//! port is released by the network service, then the `DetachInterface` task
//! unplugs it from the guest.

use std::sync::Arc;

use novum_network::{InstancePort, InstancePortRequest};
use novum_notify::{Phase, Publisher};
use novum_wire::TaskAction;

use super::model::Instance;
use super::networking::{PortPlan, interface_spec};
use super::notices;
use super::states::vm;
use super::{
    ActionData, Caller, Conductor, ConductorError, Result, actions, insert_operation, step, tasks,
    to_json,
};
use novum_db::Tx;

/// The instance action (and operation kind) of an attach.
pub const ATTACH: &str = "attach_interface";
/// The instance action (and operation kind) of a detach.
pub const DETACH: &str = "detach_interface";
const ATTACH_EVENT: &str = "compute_attach_interface";
const DETACH_EVENT: &str = "compute_detach_interface";

/// Nova's guard for interface changes: an active, paused or stopped
/// server with no task in progress and a host.
fn check_state(instance: &Instance, action: &str) -> Result<String> {
    let allowed = [vm::ACTIVE, vm::PAUSED, vm::STOPPED];
    if !allowed.contains(&instance.vm_state.as_str()) || instance.task_state.is_some() {
        return Err(ConductorError::Conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {}",
            instance.uuid, instance.vm_state
        )));
    }
    instance.host.clone().ok_or_else(|| {
        ConductorError::Conflict(format!(
            "Cannot '{action}' instance {}: it has no host",
            instance.uuid
        ))
    })
}

impl Conductor {
    /// The server `uuid` as it is now (not deleted).
    async fn current_instance(&self, uuid: &str) -> Result<Instance> {
        Instance::fetch(self.db.pool(), uuid)
            .await?
            .filter(|instance| instance.deleted == 0)
            .ok_or_else(|| ConductorError::NotFound(format!("Instance {uuid} could not be found.")))
    }

    /// Attaches a port to server `uuid`: `request` names a network (a new
    /// port, optionally at a fixed address) or the user's port. Returns the
    /// port as the server now has it; the agent plugs it in the background.
    pub async fn attach_interface(
        self: &Arc<Self>,
        uuid: &str,
        request: InstancePortRequest,
        admin: bool,
        caller: &Caller<'_>,
    ) -> Result<InstancePort> {
        let instance = self.current_instance(uuid).await?;
        let host = check_state(&instance, ATTACH)?;
        let zone = instance
            .availability_zone
            .clone()
            .unwrap_or_else(|| self.compute.default_availability_zone.clone());
        let plan = PortPlan {
            requests: vec![request],
            security_groups: Vec::new(),
            admin,
        };
        let request = plan.for_instance().remove(0);
        let port_id = match &request {
            InstancePortRequest::Network { port_id, .. }
            | InstancePortRequest::Port { port_id } => port_id.clone(),
        };
        self.prepare_ports(caller.project_id, &plan).await?;
        self.network
            .allocate_for_instance(
                &plan.caller(&instance.project_id),
                uuid,
                &plan.security_groups,
                &[request],
            )
            .await?;
        self.network.bind_instance_ports(uuid, &host, &zone).await?;
        let port = self
            .network
            .instance_ports(uuid)
            .await?
            .into_iter()
            .find(|port| port.port.id == port_id)
            .ok_or_else(|| ConductorError::NotFound(format!("Port {port_id} not found")))?;
        let interface = interface_spec(&port)?;
        let queued = async {
            let mut tx = self.begin_global(uuid).await?;
            let instance = Self::locked_instance(&mut tx, uuid).await?;
            let host = check_state(&instance, ATTACH)?;
            self.queue_interface_task(
                &mut tx,
                &instance,
                &host,
                ATTACH,
                TaskAction::AttachInterface { interface },
                Some(port_id.clone()),
                caller,
            )
            .await?;
            novum_notify::commit(tx).await?;
            self.board.wake(&host);
            Ok::<_, ConductorError>(())
        };
        if let Err(error) = queued.await {
            // The server changed meanwhile: the port goes back.
            self.network.detach_instance_port(uuid, &port_id).await?;
            return Err(error);
        }
        Ok(port)
    }

    /// Detaches port `port_id` from server `uuid`: the port is given back
    /// (deleted when made for the server, else unbound) and the agent
    /// unplugs it. [`ConductorError::NotFound`] when the server has no such
    /// port.
    pub async fn detach_interface(
        self: &Arc<Self>,
        uuid: &str,
        port_id: &str,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let instance = self.current_instance(uuid).await?;
        check_state(&instance, DETACH)?;
        let port = self
            .network
            .instance_ports(uuid)
            .await?
            .into_iter()
            .find(|port| port.port.id == port_id)
            .ok_or_else(|| {
                ConductorError::NotFound(format!(
                    "Port {port_id} is not attached to instance {uuid}"
                ))
            })?;
        let interface = interface_spec(&port)?;
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        let host = check_state(&instance, DETACH)?;
        self.give_back_port(&mut tx, uuid, port_id).await?;
        self.queue_interface_task(
            &mut tx,
            &instance,
            &host,
            DETACH,
            TaskAction::DetachInterface {
                port_id: interface.port_id,
                mac_address: interface.mac_address,
            },
            None,
            caller,
        )
        .await?;
        novum_notify::commit(tx).await?;
        self.board.wake(&host);
        Ok(())
    }

    /// Gives port `port_id` of `uuid` back in `tx` (deleted when made for
    /// it, else unbound); a port already gone is no error.
    pub(super) async fn give_back_port(
        &self,
        tx: &mut Tx,
        uuid: &str,
        port_id: &str,
    ) -> Result<()> {
        match self
            .network
            .detach_instance_port_in(tx, uuid, port_id)
            .await
        {
            Ok(_) | Err(novum_network::NetworkError::PortNotFound(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Queues an interface task as instance action `kind` with its start
    /// notification, in `tx`.
    #[allow(clippy::too_many_arguments)]
    async fn queue_interface_task(
        &self,
        tx: &mut Tx,
        instance: &Instance,
        host: &str,
        kind: &str,
        task: TaskAction,
        port_id: Option<String>,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let uuid = instance.uuid.as_str();
        let event = if kind == ATTACH {
            ATTACH_EVENT
        } else {
            DETACH_EVENT
        };
        let action_id = actions::start_action(
            tx,
            uuid,
            kind,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        actions::start_event(tx, &action_id, event, Some(host)).await?;
        let data = ActionData {
            result_state: instance.vm_state.clone(),
            event: event.to_string(),
            port_id,
            error_state: None,
        };
        let operation = insert_operation(
            tx,
            uuid,
            kind,
            step::TASK,
            &to_json(&data),
            caller.request_id,
            &action_id,
        )
        .await?;
        tasks::enqueue(tx, host, uuid, &operation, &task, caller.request_id).await?;
        if let Some(action) = notices::named_action(kind) {
            notices::action(
                tx,
                &Publisher::compute(host),
                uuid,
                action,
                Phase::Start,
                &notices::caller_context(caller),
                None,
            )
            .await?;
        }
        Ok(())
    }
}
