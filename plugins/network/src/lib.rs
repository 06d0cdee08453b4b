//! `Device.IP.Interface.{i}.` (with `IPv4Address.{i}.` and `Stats.`) and
//! `Device.Ethernet.Interface.{i}.` (with `Stats.`), read without netlink from read-only
//! preopens of `/sys` and `/proc`: interface attributes from `/sys/class/net/<name>/`,
//! counters from `/proc/net/dev`, IPv4 addresses from `/proc/net/fib_trie` placed on their
//! interface and netmask by `/proc/net/route`.
//!
//! Layout:
//! - [`sysfs`]: parsers of the kernel files.
//! - this file: the schema, the interface snapshot and the [`Plugin`] implementation.
//!
//! Instance numbers are the kernel's ifindex (stable while the interface exists). Ethernet
//! interfaces are the ones with ARP hardware type 1. The writable standard parameters
//! (`Enable`, `IPAddress`, ...) need netlink, which the sandbox does not grant: a Set answers
//! 7002 naming the parameter.

pub mod sysfs;

use std::net::Ipv4Addr;

use usp_sdk::{
    ErrorCode, Fault, Object, ObjectPath, Param, Plugin, Schema, Transaction, Type, Values,
};

const NET: &str = "/sys/class/net";
const ARPHRD_ETHER: u32 = 1;
const ARPHRD_LOOPBACK: u32 = 772;
const STATUS: [&str; 7] = [
    "Up",
    "Down",
    "Unknown",
    "Dormant",
    "NotPresent",
    "LowerLayerDown",
    "Error",
];

/// One network interface as the kernel shows it.
#[derive(Debug, Clone)]
struct Interface {
    index: u32,
    name: String,
    hw_type: u32,
    up: bool,
    status: &'static str,
    mtu: u32,
    mac: String,
    speed: u32,
}

fn read_attr(name: &str, attr: &str) -> Option<String> {
    std::fs::read_to_string(format!("{NET}/{name}/{attr}"))
        .ok()
        .map(|text| text.trim().to_string())
}

fn read_interface(name: &str) -> Option<Interface> {
    let index = read_attr(name, "ifindex")?.parse().ok()?;
    let flags = read_attr(name, "flags")
        .and_then(|flags| u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    let status = match read_attr(name, "operstate").as_deref() {
        Some("up") => "Up",
        Some("down") => "Down",
        Some("dormant") => "Dormant",
        Some("notpresent") => "NotPresent",
        Some("lowerlayerdown") => "LowerLayerDown",
        _ if flags & 1 != 0 => "Up",
        _ => "Unknown",
    };
    Some(Interface {
        index,
        name: name.to_string(),
        hw_type: read_attr(name, "type")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        up: flags & 1 != 0,
        status,
        mtu: read_attr(name, "mtu")
            .and_then(|mtu| mtu.parse().ok())
            .unwrap_or(0),
        mac: read_attr(name, "address").unwrap_or_default(),
        speed: read_attr(name, "speed")
            .and_then(|speed| speed.parse().ok())
            .unwrap_or(0),
    })
}

fn interfaces() -> Result<Vec<Interface>, Fault> {
    let entries = std::fs::read_dir(NET).map_err(|err| Fault::internal(NET, err))?;
    let mut found: Vec<Interface> = entries
        .filter_map(|entry| read_interface(entry.ok()?.file_name().to_str()?))
        .collect();
    found.sort_by_key(|interface| interface.index);
    Ok(found)
}

/// One interface by index. Only `ifindex` is read for the others: every file read is a WASI
/// call, and a Get of `Device.IP.` asks for each interface's objects in turn.
fn interface(object: &ObjectPath, index: u32, ethernet_only: bool) -> Result<Interface, Fault> {
    let entries = std::fs::read_dir(NET).map_err(|err| Fault::internal(NET, err))?;
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|name| read_attr(name, "ifindex").and_then(|i| i.parse().ok()) == Some(index))
        .and_then(|name| read_interface(&name))
        .filter(|interface| !ethernet_only || interface.hw_type == ARPHRD_ETHER)
        .ok_or_else(|| Fault::no_such_object(object))
}

/// The IPv4 addresses of one interface with their netmasks, ascending.
fn ipv4_addresses(name: &str) -> Result<Vec<(Ipv4Addr, Ipv4Addr)>, Fault> {
    let read = |path: &str| std::fs::read_to_string(path).map_err(|err| Fault::internal(path, err));
    let routes = sysfs::parse_routes(&read("/proc/net/route")?);
    Ok(sysfs::parse_local_addresses(&read("/proc/net/fib_trie")?)
        .into_iter()
        .filter_map(|address| {
            let (interface, mask) = sysfs::locate(address, &routes)?;
            (interface == name).then_some((address, mask))
        })
        .collect())
}

fn counters(object: &ObjectPath, name: &str) -> Result<sysfs::Counters, Fault> {
    let text =
        std::fs::read_to_string("/proc/net/dev").map_err(|err| Fault::internal(object, err))?;
    Ok(sysfs::parse_net_dev(&text).remove(name).unwrap_or_default())
}

fn clamp(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn stats(object: &ObjectPath, name: &str, ethernet: bool) -> Result<Values, Fault> {
    let counters = counters(object, name)?;
    let mut values = Values::new()
        .with("BytesSent", counters.tx_bytes)
        .with("BytesReceived", counters.rx_bytes)
        .with("PacketsSent", counters.tx_packets)
        .with("PacketsReceived", counters.rx_packets)
        .with("ErrorsSent", clamp(counters.tx_errors))
        .with("ErrorsReceived", clamp(counters.rx_errors))
        .with("DiscardPacketsSent", clamp(counters.tx_dropped))
        .with("DiscardPacketsReceived", clamp(counters.rx_dropped))
        .with("MulticastPacketsReceived", counters.rx_multicast);
    if ethernet {
        values.put("Collisions", counters.collisions);
    }
    Ok(values)
}

fn stats_object(path: &str, ethernet: bool) -> Object {
    let mut object = Object::new(path);
    for name in [
        "BytesSent",
        "BytesReceived",
        "PacketsSent",
        "PacketsReceived",
    ] {
        object = object.param(Param::new(name, Type::UnsignedLong).volatile());
    }
    for name in [
        "ErrorsSent",
        "ErrorsReceived",
        "DiscardPacketsSent",
        "DiscardPacketsReceived",
    ] {
        object = object.param(Param::new(name, Type::UnsignedInt).volatile());
    }
    object = object.param(Param::new("MulticastPacketsReceived", Type::UnsignedLong).volatile());
    if ethernet {
        object = object.param(Param::new("Collisions", Type::UnsignedLong).volatile());
    }
    object
}

/// The plugin (stateless: every read goes to the kernel).
#[derive(Default)]
pub struct Network;

impl Plugin for Network {
    fn schema(&self) -> Schema {
        Schema::new()
            .object(
                Object::new("Device.IP.")
                    .param(Param::new("IPv4Capable", Type::Boolean))
                    .param(Param::new("InterfaceNumberOfEntries", Type::UnsignedInt)),
            )
            .object(
                Object::new("Device.IP.Interface.{i}.")
                    .unique_key(&["Name"])
                    .param(Param::new("Enable", Type::Boolean).writable())
                    .param(Param::new("IPv4Enable", Type::Boolean).writable())
                    .param(Param::new("Status", Type::String).enumeration(&STATUS))
                    .param(Param::new("Name", Type::String).max_length(64))
                    .param(
                        Param::new("MaxMTUSize", Type::UnsignedInt)
                            .writable()
                            .range(Some(64), Some(65535)),
                    )
                    .param(
                        Param::new("Type", Type::String)
                            .enumeration(&["Normal", "Loopback", "Tunnel", "Tunneled"]),
                    )
                    .param(Param::new("Loopback", Type::Boolean).writable())
                    .param(Param::new("IPv4AddressNumberOfEntries", Type::UnsignedInt)),
            )
            .object(
                Object::new("Device.IP.Interface.{i}.IPv4Address.{i}.")
                    .unique_key(&["IPAddress", "SubnetMask"])
                    .param(Param::new("Enable", Type::Boolean).writable())
                    .param(Param::new("Status", Type::String).enumeration(&[
                        "Disabled",
                        "Enabled",
                        "Error_Misconfigured",
                        "Error",
                    ]))
                    .param(
                        Param::new("IPAddress", Type::String)
                            .writable()
                            .max_length(15),
                    )
                    .param(
                        Param::new("SubnetMask", Type::String)
                            .writable()
                            .max_length(15),
                    )
                    .param(
                        Param::new("AddressingType", Type::String).enumeration(&[
                            "DHCP", "IKEv2", "AutoIP", "IPCP", "Static", "3GPP-NAS",
                        ]),
                    ),
            )
            .object(stats_object("Device.IP.Interface.{i}.Stats.", false))
            .object(
                Object::new("Device.Ethernet.")
                    .param(Param::new("InterfaceNumberOfEntries", Type::UnsignedInt)),
            )
            .object(
                Object::new("Device.Ethernet.Interface.{i}.")
                    .unique_key(&["Name"])
                    .param(Param::new("Enable", Type::Boolean).writable())
                    .param(Param::new("Status", Type::String).enumeration(&STATUS))
                    .param(Param::new("Name", Type::String).max_length(64))
                    .param(Param::new("MACAddress", Type::String).max_length(17))
                    .param(Param::new("CurrentBitRate", Type::UnsignedInt)),
            )
            .object(stats_object("Device.Ethernet.Interface.{i}.Stats.", true))
    }

    fn instances(&self, table: &ObjectPath) -> Result<Vec<u32>, Fault> {
        if table.matches::<0>("Device.IP.Interface.").is_some() {
            return Ok(interfaces()?
                .iter()
                .map(|interface| interface.index)
                .collect());
        }
        if table.matches::<0>("Device.Ethernet.Interface.").is_some() {
            return Ok(interfaces()?
                .iter()
                .filter(|interface| interface.hw_type == ARPHRD_ETHER)
                .map(|interface| interface.index)
                .collect());
        }
        if let Some([index]) = table.matches("Device.IP.Interface.{i}.IPv4Address.") {
            let interface = interface(table, index, false)?;
            return Ok((1..=ipv4_addresses(&interface.name)?.len() as u32).collect());
        }
        Err(Fault::invalid_path(table))
    }

    fn get(&self, object: &ObjectPath) -> Result<Values, Fault> {
        if object.matches::<0>("Device.IP.").is_some() {
            return Ok(Values::new()
                .with("IPv4Capable", true)
                .with("InterfaceNumberOfEntries", interfaces()?.len() as u32));
        }
        if object.matches::<0>("Device.Ethernet.").is_some() {
            let count = interfaces()?
                .iter()
                .filter(|i| i.hw_type == ARPHRD_ETHER)
                .count();
            return Ok(Values::new().with("InterfaceNumberOfEntries", count as u32));
        }
        if let Some([index]) = object.matches("Device.IP.Interface.{i}.") {
            let interface = interface(object, index, false)?;
            let loopback = interface.hw_type == ARPHRD_LOOPBACK;
            let addresses = ipv4_addresses(&interface.name)?;
            return Ok(Values::new()
                .with("Enable", interface.up)
                .with("IPv4Enable", !addresses.is_empty())
                .with("Status", interface.status.to_string())
                .with("Name", interface.name)
                .with("MaxMTUSize", interface.mtu)
                .with(
                    "Type",
                    if loopback { "Loopback" } else { "Normal" }.to_string(),
                )
                .with("Loopback", loopback)
                .with("IPv4AddressNumberOfEntries", addresses.len() as u32));
        }
        if let Some([index, number]) = object.matches("Device.IP.Interface.{i}.IPv4Address.{i}.") {
            let interface = interface(object, index, false)?;
            let addresses = ipv4_addresses(&interface.name)?;
            let (address, mask) = addresses
                .get(number as usize - 1)
                .ok_or_else(|| Fault::no_such_object(object))?;
            return Ok(Values::new()
                .with("Enable", true)
                .with("Status", "Enabled".to_string())
                .with("IPAddress", address.to_string())
                .with("SubnetMask", mask.to_string())
                .with("AddressingType", "Static".to_string()));
        }
        if let Some([index]) = object.matches("Device.IP.Interface.{i}.Stats.") {
            let interface = interface(object, index, false)?;
            return stats(object, &interface.name, false);
        }
        if let Some([index]) = object.matches("Device.Ethernet.Interface.{i}.") {
            let interface = interface(object, index, true)?;
            return Ok(Values::new()
                .with("Enable", interface.up)
                .with("Status", interface.status.to_string())
                .with("Name", interface.name)
                .with("MACAddress", interface.mac)
                .with("CurrentBitRate", interface.speed));
        }
        if let Some([index]) = object.matches("Device.Ethernet.Interface.{i}.Stats.") {
            let interface = interface(object, index, true)?;
            return stats(object, &interface.name, true);
        }
        Err(Fault::invalid_path(object))
    }

    fn begin(&self) -> Box<dyn Transaction> {
        Box::new(NoNetlink)
    }
}

/// Writes need netlink, which the sandbox does not grant.
struct NoNetlink;

impl Transaction for NoNetlink {
    fn set(&mut self, object: &ObjectPath, param: &str, _value: &str) -> Result<(), Fault> {
        Err(Fault::new(
            ErrorCode::RequestDenied,
            format!(
                "{}: changing interfaces needs netlink, which this plugin is not granted",
                object.param(param)
            ),
        ))
    }

    fn commit(self: Box<Self>) -> Result<(), Fault> {
        Ok(())
    }
}

usp_sdk::export_plugin!(Network);
