//! Parsers for the kernel files the plugin reads: `/proc/net/dev` (counters),
//! `/proc/net/fib_trie` (local IPv4 addresses) and `/proc/net/route` (which interface and
//! netmask each address belongs to). Pure functions over the file text, tested natively.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Counters of one interface from `/proc/net/dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Received bytes.
    pub rx_bytes: u64,
    /// Received packets.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Received multicast packets.
    pub rx_multicast: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
    /// Sent packets.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Sent packets dropped.
    pub tx_dropped: u64,
    /// Collisions.
    pub collisions: u64,
}

/// Parses `/proc/net/dev` into counters by interface name.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, Counters> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let numbers: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|field| field.parse().ok())
                .collect();
            let at = |index: usize| numbers.get(index).copied().unwrap_or(0);
            (numbers.len() >= 16).then(|| {
                (
                    name.trim().to_string(),
                    Counters {
                        rx_bytes: at(0),
                        rx_packets: at(1),
                        rx_errors: at(2),
                        rx_dropped: at(3),
                        rx_multicast: at(7),
                        tx_bytes: at(8),
                        tx_packets: at(9),
                        tx_errors: at(10),
                        tx_dropped: at(11),
                        collisions: at(13),
                    },
                )
            })
        })
        .collect()
}

/// The host's own IPv4 addresses: the `/32 host LOCAL` leaves of `/proc/net/fib_trie`, in
/// ascending order, without duplicates (the file lists the local table and the main table).
pub fn parse_local_addresses(fib_trie: &str) -> Vec<Ipv4Addr> {
    let mut addresses = Vec::new();
    let mut last_leaf: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let trimmed = line.trim_start();
        if let Some(leaf) = trimmed.strip_prefix("|-- ") {
            last_leaf = leaf.trim().parse().ok();
        } else if trimmed.starts_with("/32 host LOCAL")
            && let Some(address) = last_leaf
        {
            addresses.push(address);
        }
    }
    addresses.sort_unstable();
    addresses.dedup();
    addresses
}

/// One row of `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Interface name.
    pub interface: String,
    /// Destination network.
    pub destination: Ipv4Addr,
    /// Netmask.
    pub mask: Ipv4Addr,
}

/// Parses `/proc/net/route` (addresses are little-endian hex).
pub fn parse_routes(text: &str) -> Vec<Route> {
    let hex = |field: &str| {
        u32::from_str_radix(field, 16)
            .ok()
            .map(|raw| Ipv4Addr::from(raw.swap_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(Route {
                interface: fields.first()?.to_string(),
                destination: hex(fields.get(1)?)?,
                mask: hex(fields.get(7)?)?,
            })
        })
        .collect()
}

/// The interface and netmask of a local address: loopback addresses belong to `lo`
/// (`/8`); others to the most specific non-default route whose network contains them.
pub fn locate(address: Ipv4Addr, routes: &[Route]) -> Option<(String, Ipv4Addr)> {
    if address.is_loopback() {
        return Some(("lo".to_string(), Ipv4Addr::new(255, 0, 0, 0)));
    }
    routes
        .iter()
        .filter(|route| u32::from(route.mask) != 0)
        .filter(|route| u32::from(address) & u32::from(route.mask) == u32::from(route.destination))
        .max_by_key(|route| u32::from(route.mask).count_ones())
        .map(|route| (route.interface.clone(), route.mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.2.0/24 2 0 2
        |-- 10.0.2.15
           /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 10.0.2.15
           /32 host LOCAL
        |-- 10.0.2.255
           /32 link BROADCAST
";

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
";

    #[test]
    fn local_addresses_come_from_host_local_leaves_once() {
        assert_eq!(
            parse_local_addresses(FIB_TRIE),
            [Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(127, 0, 0, 1)]
        );
    }

    #[test]
    fn addresses_are_placed_on_the_most_specific_route() {
        let routes = parse_routes(ROUTE);
        assert_eq!(routes[1].destination, Ipv4Addr::new(10, 0, 2, 0));
        assert_eq!(
            locate(Ipv4Addr::new(10, 0, 2, 15), &routes),
            Some(("eth0".to_string(), Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(
            locate(Ipv4Addr::new(127, 0, 0, 1), &routes),
            Some(("lo".to_string(), Ipv4Addr::new(255, 0, 0, 0)))
        );
        assert_eq!(locate(Ipv4Addr::new(192, 168, 1, 1), &routes), None);
    }

    #[test]
    fn net_dev_counters_are_read_by_column() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
  eth0: 1000 10 1 2 0 0 0 3 2000 20 4 5 0 6 0 0
";
        let counters = parse_net_dev(text);
        let eth0 = counters["eth0"];
        assert_eq!(
            (
                eth0.rx_bytes,
                eth0.rx_packets,
                eth0.rx_errors,
                eth0.rx_dropped
            ),
            (1000, 10, 1, 2)
        );
        assert_eq!(eth0.rx_multicast, 3);
        assert_eq!(
            (
                eth0.tx_bytes,
                eth0.tx_packets,
                eth0.tx_errors,
                eth0.tx_dropped
            ),
            (2000, 20, 4, 5)
        );
        assert_eq!(eth0.collisions, 6);
    }
}
