//! `Device.DeviceInfo.`: identity values from the config (after the `USP_BOARD_*` overrides)
//! and the device's uptime.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use usp_dm::{GetRequest, GetResponse, Schema};

use super::{BuiltinError, ReadOnlyObjects, answer_get, standard_object};
use crate::config::DeviceInfoConfig;

const OBJECT: &str = "Device.DeviceInfo.";

/// Serves `Device.DeviceInfo.`.
pub struct DeviceInfoProvider {
    schema: Arc<Schema>,
    info: DeviceInfoConfig,
    started: Instant,
}

impl DeviceInfoProvider {
    /// The provider for these values; `started` is the agent's start, used for `UpTime` where
    /// the system uptime cannot be read.
    pub fn new(info: DeviceInfoConfig, started: Instant) -> Result<Self, BuiltinError> {
        let mut def = standard_object(
            OBJECT,
            &[
                "Manufacturer",
                "ManufacturerOUI",
                "ProductClass",
                "SerialNumber",
                "HardwareVersion",
                "SoftwareVersion",
                "UpTime",
            ],
            &[],
            &[],
        )?;
        for param in &mut def.params {
            if param.name == "UpTime" {
                param.value_change = usp_dm::ValueChange::WillIgnore;
            }
        }
        Ok(DeviceInfoProvider {
            schema: Arc::new(std::iter::once(def).collect()),
            info,
            started,
        })
    }

    fn value(&self, name: &str) -> Option<String> {
        let info = &self.info;
        Some(match name {
            "Manufacturer" => info.manufacturer.clone(),
            "ManufacturerOUI" => info.manufacturer_oui.clone(),
            "ProductClass" => info.product_class.clone(),
            "SerialNumber" => info.serial_number.clone(),
            "HardwareVersion" => info.hardware_version.clone(),
            "SoftwareVersion" => info.software_version.clone(),
            "UpTime" => system_uptime()
                .unwrap_or_else(|| self.started.elapsed().as_secs())
                .to_string(),
            _ => return None,
        })
    }
}

/// Seconds since the system booted: the clock behind `/proc/uptime` (suspend included), read
/// without the open/read/close a Get of `Device.DeviceInfo.` would otherwise pay.
fn system_uptime() -> Option<u64> {
    u64::try_from(rustix::time::clock_gettime(rustix::time::ClockId::Boottime).tv_sec).ok()
}

#[async_trait]
impl ReadOnlyObjects for DeviceInfoProvider {
    fn name(&self) -> &str {
        "builtin DeviceInfo"
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema)
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        answer_get(&self.schema, requests, |_, name| self.value(name))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_configured_identity_and_an_uptime() {
        let info = DeviceInfoConfig {
            serial_number: "SN-7".to_string(),
            ..DeviceInfoConfig::default()
        };
        let provider = DeviceInfoProvider::new(info, Instant::now()).unwrap();
        let answers = provider
            .get(&[GetRequest {
                object: OBJECT.to_string(),
                params: vec![],
            }])
            .await;
        let values = answers[0].as_ref().unwrap();
        assert_eq!(values["SerialNumber"], "SN-7");
        assert_eq!(values["ManufacturerOUI"], "000000");
        assert!(values["UpTime"].parse::<u64>().is_ok());
        assert_eq!(values.len(), 7);
    }

    #[tokio::test]
    async fn unknown_parameter_is_7010() {
        let provider =
            DeviceInfoProvider::new(DeviceInfoConfig::default(), Instant::now()).unwrap();
        let answers = provider
            .get(&[GetRequest {
                object: OBJECT.to_string(),
                params: vec!["ModelName".to_string()],
            }])
            .await;
        let err = answers[0].as_ref().unwrap_err();
        assert_eq!(err.code, usp_codec::UspErrorCode::UnsupportedParameter);
    }
}
