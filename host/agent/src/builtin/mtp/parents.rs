//! [`MtpParents`]: `Device.MQTT.`, `Device.STOMP.` and `Device.UnixDomainSockets.`, whose only
//! served values are their tables' `*NumberOfEntries`.

use std::sync::Arc;

use async_trait::async_trait;
use usp_dm::{GetRequest, GetResponse, MemoryProvider, Provider, Schema};

use super::{MQTT_CLIENT_TABLE, STOMP_TABLE, UDS_TABLE};
use crate::builtin::{BuiltinError, ReadOnlyObjects, answer_get, standard_object};

/// Serves `Device.MQTT.`, `Device.STOMP.` and `Device.UnixDomainSockets.` (their
/// `*NumberOfEntries`) over the stored tables.
pub struct MtpParents {
    schema: Arc<Schema>,
    tables: MemoryProvider,
}

const PARENTS: &[(&str, &str, &str)] = &[
    ("Device.MQTT.", "ClientNumberOfEntries", MQTT_CLIENT_TABLE),
    ("Device.STOMP.", "ConnectionNumberOfEntries", STOMP_TABLE),
    (
        "Device.UnixDomainSockets.",
        "UnixDomainSocketNumberOfEntries",
        UDS_TABLE,
    ),
];

impl MtpParents {
    /// The provider over `tables` (the LocalAgent tables, which hold the MTP tables too).
    pub fn new(tables: MemoryProvider) -> Result<Self, BuiltinError> {
        let schema = PARENTS
            .iter()
            .map(|(object, count, _)| standard_object(object, &[count], &[], &[]))
            .collect::<Result<Schema, _>>()?;
        Ok(MtpParents {
            schema: Arc::new(schema),
            tables,
        })
    }
}

#[async_trait]
impl ReadOnlyObjects for MtpParents {
    fn name(&self) -> &str {
        "builtin MTP objects"
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema)
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        let mut counts = Vec::new();
        for (object, count, table) in PARENTS {
            let entries = self.tables.instances(table).await.map_or(0, |n| n.len());
            counts.push((*object, *count, entries.to_string()));
        }
        answer_get(&self.schema, requests, |object, name| {
            counts
                .iter()
                .find(|(o, c, _)| *o == object && *c == name)
                .map(|(_, _, value)| value.clone())
        })
    }
}
