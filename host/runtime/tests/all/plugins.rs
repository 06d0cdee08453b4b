//! The first-party plugins (`plugins/`), loaded from the bundled directory exactly as the agent
//! loads firmware plugins, checked against what this machine's kernel reports.

use std::collections::BTreeMap;
use std::path::Path;

use usp_codec::UspErrorCode;
use usp_dm::{Change, GetRequest, ParamValues, Provider};
use usp_runtime::{PluginHost, artifacts};

use crate::common;

async fn get(provider: &dyn Provider, object: &str) -> ParamValues {
    provider
        .get(&[GetRequest {
            object: object.to_string(),
            params: Vec::new(),
        }])
        .await
        .remove(0)
        .unwrap_or_else(|error| panic!("{object}: {error}"))
}

async fn load(host: &PluginHost, name: &str) -> std::sync::Arc<usp_runtime::PluginProvider> {
    host.load(&Path::new(artifacts::BUNDLED_PLUGINS_DIR).join(name))
        .await
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// Interface name by ifindex, read natively from sysfs.
fn kernel_interfaces() -> BTreeMap<u32, String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let index = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            (index, name)
        })
        .collect()
}

#[tokio::test]
async fn load_dir_loads_every_bundled_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let results = host
        .load_dir(Path::new(artifacts::BUNDLED_PLUGINS_DIR))
        .await;
    for (path, result) in &results {
        assert!(
            result.is_ok(),
            "{}: {:?}",
            path.display(),
            result.as_ref().err()
        );
    }
    let names: Vec<String> = host
        .plugins()
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["device-info", "network", "time"]);
}

#[tokio::test]
async fn ip_interfaces_match_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let network = load(&host, "network").await;
    let kernel = kernel_interfaces();
    let instances = network.instances("Device.IP.Interface.").await.unwrap();
    assert_eq!(instances, kernel.keys().copied().collect::<Vec<_>>());
    for (index, name) in &kernel {
        let values = get(&*network, &format!("Device.IP.Interface.{index}.")).await;
        assert_eq!(&values["Name"], name);
        let stats = get(&*network, &format!("Device.IP.Interface.{index}.Stats.")).await;
        stats["BytesReceived"].parse::<u64>().unwrap();
    }
    let ip = get(&*network, "Device.IP.").await;
    assert_eq!(ip["InterfaceNumberOfEntries"], kernel.len().to_string());
}

#[tokio::test]
async fn loopback_shows_its_ipv4_address() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let network = load(&host, "network").await;
    let (lo, _) = kernel_interfaces()
        .into_iter()
        .find(|(_, name)| name == "lo")
        .expect("lo");
    let table = format!("Device.IP.Interface.{lo}.IPv4Address.");
    let numbers = network.instances(&table).await.unwrap();
    let mut addresses = Vec::new();
    for number in numbers {
        addresses.push(get(&*network, &format!("{table}{number}.")).await);
    }
    assert!(
        addresses.iter().any(|values| values["IPAddress"] == "127.0.0.1" && values["SubnetMask"] == "255.0.0.0"),
        "{addresses:?}"
    );
    let loopback = get(&*network, &format!("Device.IP.Interface.{lo}.")).await;
    assert_eq!(loopback["Type"], "Loopback");
}

#[tokio::test]
async fn ethernet_interfaces_are_the_arp_type_1_ones() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let network = load(&host, "network").await;
    let ethernet: Vec<u32> = kernel_interfaces()
        .into_iter()
        .filter(|(_, name)| {
            std::fs::read_to_string(format!("/sys/class/net/{name}/type"))
                .unwrap()
                .trim()
                == "1"
        })
        .map(|(index, _)| index)
        .collect();
    assert_eq!(
        network
            .instances("Device.Ethernet.Interface.")
            .await
            .unwrap(),
        ethernet
    );
    for index in ethernet {
        let values = get(&*network, &format!("Device.Ethernet.Interface.{index}.")).await;
        assert_eq!(values["MACAddress"].len(), 17, "{values:?}");
        get(
            &*network,
            &format!("Device.Ethernet.Interface.{index}.Stats."),
        )
        .await;
    }
    let mut txn = network.begin().await.unwrap();
    let refused = txn
        .set("Device.IP.Interface.1.", "Enable", "false")
        .await
        .unwrap_err();
    assert_eq!(refused.code, UspErrorCode::RequestDenied);
    assert!(refused.message.contains("Device.IP.Interface.1.Enable"));
}

#[tokio::test]
async fn memory_and_processes_match_proc() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let info = load(&host, "device-info").await;
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap();
    assert_eq!(
        get(&*info, "Device.DeviceInfo.MemoryStatus.").await["Total"],
        total
    );

    let pid = std::process::id();
    let pids = info
        .instances("Device.DeviceInfo.ProcessStatus.Process.")
        .await
        .unwrap();
    assert!(pids.contains(&pid));
    let me = get(
        &*info,
        &format!("Device.DeviceInfo.ProcessStatus.Process.{pid}."),
    )
    .await;
    assert_eq!(me["PID"], pid.to_string());
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let comm = &stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()];
    assert_eq!(me["Command"], comm);
    assert!(
        ["Running", "Sleeping"].contains(&me["State"].as_str()),
        "{me:?}"
    );
    let status = get(&*info, "Device.DeviceInfo.ProcessStatus.").await;
    assert!(status["CPUUsage"].parse::<u32>().unwrap() <= 100);
    let gone = info
        .get(&[GetRequest {
            object: "Device.DeviceInfo.ProcessStatus.Process.4294967295.".into(),
            params: vec![],
        }])
        .await;
    assert_eq!(
        gone[0].as_ref().unwrap_err().code,
        UspErrorCode::ObjectDoesNotExist
    );
}

#[tokio::test]
async fn time_settings_are_validated_persisted_and_status_is_pushed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let host = common::host(dir.path());
        let time = load(&host, "time").await;
        let collected = common::Collected::default();
        time.attach(collected.sink());
        assert_eq!(get(&*time, "Device.Time.").await["Status"], "Disabled");

        let mut txn = time.begin().await.unwrap();
        let bad_server = txn
            .set("Device.Time.", "NTPServer1", "not a host")
            .await
            .unwrap_err();
        assert_eq!(bad_server.code, UspErrorCode::InvalidValue);
        assert!(
            bad_server.message.contains("Device.Time.NTPServer1"),
            "{bad_server}"
        );
        let bad_zone = txn
            .set("Device.Time.", "LocalTimeZone", "Europe/Paris")
            .await
            .unwrap_err();
        assert_eq!(bad_zone.code, UspErrorCode::InvalidValue);
        assert!(
            bad_zone.message.contains("Device.Time.LocalTimeZone"),
            "{bad_zone}"
        );
        txn.set("Device.Time.", "NTPServer1", "pool.ntp.org")
            .await
            .unwrap();
        txn.set(
            "Device.Time.",
            "LocalTimeZone",
            "CET-1CEST,M3.5.0,M10.5.0/3",
        )
        .await
        .unwrap();
        txn.set("Device.Time.", "Enable", "1").await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(
            collected.wait_for(1).await,
            [Change::ValueChanged {
                path: "Device.Time.Status".into(),
                value: "Unsynchronized".into()
            }]
        );
    }
    let host = common::host(dir.path());
    let time = load(&host, "time").await;
    let values = get(&*time, "Device.Time.").await;
    assert_eq!(values["NTPServer1"], "pool.ntp.org");
    assert_eq!(values["LocalTimeZone"], "CET-1CEST,M3.5.0,M10.5.0/3");
    assert_eq!(values["Enable"], "true");
    assert_eq!(values["Status"], "Unsynchronized");
    assert!(
        values["CurrentLocalTime"].ends_with('Z') && values["CurrentLocalTime"].starts_with("20")
    );
}

#[tokio::test]
async fn bundled_schemas_match_tr181_for_standard_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    for name in ["device-info", "network", "time"] {
        let plugin = load(&host, name).await;
        for object in plugin.schema().objects() {
            let standard = usp_dm::tr181::schema(&object.path).unwrap();
            let reference = standard.object(&object.path).unwrap();
            for param in &object.params {
                if let Some(expected) = reference.param(&param.name) {
                    assert_eq!(
                        expected.value_type, param.value_type,
                        "{}{}",
                        object.path, param.name
                    );
                    assert_eq!(
                        expected.access, param.access,
                        "{}{}",
                        object.path, param.name
                    );
                } else {
                    assert!(
                        param.name.starts_with("NTPServer"),
                        "{}{} is not in TR-181",
                        object.path,
                        param.name
                    );
                }
            }
        }
    }
}
