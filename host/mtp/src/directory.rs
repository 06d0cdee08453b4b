//! The Controllers the agent's data model gives an MQTT topic
//! (`Device.LocalAgent.Controller.{i}.MTP.{j}.MQTT.Topic`), shared between the agent, which
//! rewrites the list whenever those rows change, and the MQTT MTPs, which read it when they need
//! it: where to answer a request that carries no reply-to (R-MQTT.25/26 give none), and whom to
//! send the MQTTConnect and Disconnect Records to.
//!
//! A shared list rather than a field of [`crate::MqttConfig`]: a Controller changing its topic
//! must take effect at once, without the MQTT connection being torn down and rebuilt as a
//! configuration change would do.

use std::sync::{Arc, PoisonError, RwLock};

use crate::config::MqttController;

/// One enabled `Controller.{i}.MTP.{j}` row with `Protocol` MQTT and a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttControllerRow {
    /// The Controller's `EndpointID`.
    pub endpoint_id: String,
    /// `MQTT.Topic`.
    pub topic: String,
    /// The agent MQTT MTP (by name) that `MQTT.AgentMTPReference` names; `None`: any of them.
    pub agent_mtp: Option<String>,
}

/// The rows, in the order the agent gives them (each Controller's rows by `Order`). Cheap to
/// clone; every clone sees the same list.
#[derive(Debug, Clone, Default)]
pub struct ControllerDirectory {
    rows: Arc<RwLock<Arc<[MqttControllerRow]>>>,
}

impl ControllerDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces every row.
    pub fn replace(&self, rows: Vec<MqttControllerRow>) {
        // A poisoned lock only means a reader panicked; the list itself is always whole.
        *self.rows.write().unwrap_or_else(PoisonError::into_inner) = rows.into();
    }

    /// The current rows.
    pub fn rows(&self) -> Arc<[MqttControllerRow]> {
        Arc::clone(&self.rows.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The controllers the MQTT MTP `mtp` knows a topic for: per Endpoint ID the first row usable
/// through `mtp` (its `AgentMTPReference` names `mtp` or nothing), then the config file's
/// controllers that no such row names. The data model comes first: it is what a Controller or
/// the factory-reset file last said.
fn merge(rows: &[MqttControllerRow], mtp: &str, file: &[MqttController]) -> Vec<MqttController> {
    let mut known: Vec<MqttController> = Vec::new();
    for row in rows
        .iter()
        .filter(|row| row.agent_mtp.as_deref().is_none_or(|name| name == mtp))
    {
        if !known.iter().any(|c| c.endpoint_id == row.endpoint_id) {
            known.push(MqttController {
                endpoint_id: row.endpoint_id.clone(),
                topic: row.topic.clone(),
            });
        }
    }
    for controller in file {
        if !known
            .iter()
            .any(|c| c.endpoint_id == controller.endpoint_id)
        {
            known.push(controller.clone());
        }
    }
    known
}

/// One MQTT MTP's merged controller list, rebuilt only when the directory's rows were replaced:
/// the MTP consults it for every PUBLISH it receives, and the rows change rarely.
#[derive(Debug, Default)]
pub(crate) struct KnownControllers {
    rows: Option<Arc<[MqttControllerRow]>>,
    merged: Vec<MqttController>,
}

impl KnownControllers {
    /// The controllers `mtp` knows a topic for (see [`merge`]).
    pub(crate) fn current(
        &mut self,
        directory: &ControllerDirectory,
        mtp: &str,
        file: &[MqttController],
    ) -> &[MqttController] {
        let rows = directory.rows();
        if !self
            .rows
            .as_ref()
            .is_some_and(|seen| Arc::ptr_eq(seen, &rows))
        {
            self.merged = merge(&rows, mtp, file);
            self.rows = Some(rows);
        }
        &self.merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(endpoint_id: &str, topic: &str, agent_mtp: Option<&str>) -> MqttControllerRow {
        MqttControllerRow {
            endpoint_id: endpoint_id.into(),
            topic: topic.into(),
            agent_mtp: agent_mtp.map(str::to_string),
        }
    }

    fn known(
        directory: &ControllerDirectory,
        mtp: &str,
        file: &[MqttController],
    ) -> Vec<MqttController> {
        KnownControllers::default()
            .current(directory, mtp, file)
            .to_vec()
    }

    fn file(endpoint_id: &str, topic: &str) -> MqttController {
        MqttController {
            endpoint_id: endpoint_id.into(),
            topic: topic.into(),
        }
    }

    #[test]
    fn data_model_rows_come_before_the_config_file_and_the_first_row_per_controller_wins() {
        let directory = ControllerDirectory::new();
        directory.replace(vec![
            row("proto::a", "dm/a-first", None),
            row("proto::a", "dm/a-second", None),
            row("proto::b", "dm/b", None),
        ]);
        let merged = known(
            &directory,
            "m",
            &[file("proto::b", "file/b"), file("proto::c", "file/c")],
        );
        assert_eq!(
            merged,
            vec![
                file("proto::a", "dm/a-first"),
                file("proto::b", "dm/b"),
                file("proto::c", "file/c"),
            ]
        );
    }

    #[test]
    fn a_row_pinned_to_another_mtp_is_not_used_here() {
        let directory = ControllerDirectory::new();
        directory.replace(vec![
            row("proto::a", "via/other", Some("other")),
            row("proto::a", "via/m", Some("m")),
        ]);
        assert_eq!(known(&directory, "m", &[]), vec![file("proto::a", "via/m")]);
        assert_eq!(
            known(&directory, "third", &[]),
            vec![],
            "no row reaches the Controller through this MTP"
        );
    }

    #[test]
    fn every_clone_sees_a_replacement() {
        let directory = ControllerDirectory::new();
        let seen_by_mtp = directory.clone();
        let mut cached = KnownControllers::default();
        directory.replace(vec![row("proto::a", "old", None)]);
        assert_eq!(
            cached.current(&seen_by_mtp, "m", &[]),
            &[file("proto::a", "old")]
        );
        directory.replace(vec![row("proto::a", "new", None)]);
        assert_eq!(
            cached.current(&seen_by_mtp, "m", &[]),
            &[file("proto::a", "new")]
        );
    }
}
