//! Value rules of `Device.Time.` beyond the type checks the agent already made: NTP server
//! names and POSIX time-zone strings (IEEE 1003.1 `TZ`, the form TR-181 `LocalTimeZone` uses).

use std::net::IpAddr;

/// Why a value was refused (becomes the 7012 message).
pub type Reason = &'static str;

/// An NTP server: empty (unset), an IP address literal, or a DNS host name (RFC 1123).
pub fn ntp_server(value: &str) -> Result<(), Reason> {
    if value.is_empty() || value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if value.len() > 64 {
        return Err("longer than 64 characters");
    }
    let name = value.strip_suffix('.').unwrap_or(value);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("not a host name or IP address")
    }
}

/// A POSIX `TZ` string: `std offset [dst [offset] [,rule,rule]]`, e.g.
/// `CET-1CEST,M3.5.0,M10.5.0/3`. Empty means UTC.
pub fn posix_tz(value: &str) -> Result<(), Reason> {
    if value.is_empty() {
        return Ok(());
    }
    let mut rest = value;
    rest = zone_name(rest).ok_or("missing or malformed standard zone name")?;
    rest = offset(rest).ok_or("missing or malformed UTC offset")?;
    if rest.is_empty() {
        return Ok(());
    }
    rest = zone_name(rest).ok_or("malformed daylight-saving zone name")?;
    if let Some(after) = offset(rest) {
        rest = after;
    }
    if rest.is_empty() {
        return Ok(());
    }
    let rules = rest
        .strip_prefix(',')
        .ok_or("expected ',' before the transition rules")?;
    let (start, end) = rules
        .split_once(',')
        .ok_or("expected two transition rules")?;
    if rule(start) && rule(end) {
        Ok(())
    } else {
        Err("malformed transition rule (Mm.w.d[/time], Jn[/time] or n[/time])")
    }
}

/// Skips a zone name (3+ letters, or `<...>` with letters, digits, `+`, `-`).
fn zone_name(text: &str) -> Option<&str> {
    if let Some(quoted) = text.strip_prefix('<') {
        let end = quoted.find('>')?;
        let name = &quoted[..end];
        let valid = name.len() >= 3
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
        return valid.then(|| &quoted[end + 1..]);
    }
    let end = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    (end >= 3).then(|| &text[end..])
}

/// Skips `[+-]hh[:mm[:ss]]` with hours 0..=24.
fn offset(text: &str) -> Option<&str> {
    let text = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (hours, rest) = number(text, 2)?;
    if hours > 24 {
        return None;
    }
    let mut rest = rest;
    for _ in 0..2 {
        match rest.strip_prefix(':') {
            Some(after) => {
                let (part, after) = number(after, 2)?;
                if part > 59 {
                    return None;
                }
                rest = after;
            }
            None => break,
        }
    }
    Some(rest)
}

/// Reads 1..=`max_digits` digits.
fn number(text: &str, max_digits: usize) -> Option<(u32, &str)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if end == 0 || end > max_digits {
        return None;
    }
    Some((text[..end].parse().ok()?, &text[end..]))
}

/// One transition rule: `Mm.w.d`, `Jn` or `n`, optionally `/time`.
fn rule(text: &str) -> bool {
    let (date, time) = match text.split_once('/') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let date_ok = if let Some(month_rule) = date.strip_prefix('M') {
        let parts: Vec<&str> = month_rule.split('.').collect();
        let parse = |index: usize| parts.get(index).and_then(|part| part.parse::<u32>().ok());
        parts.len() == 3
            && matches!(parse(0), Some(1..=12))
            && matches!(parse(1), Some(1..=5))
            && matches!(parse(2), Some(0..=6))
    } else if let Some(julian) = date.strip_prefix('J') {
        matches!(julian.parse::<u32>(), Ok(1..=365))
    } else {
        matches!(date.parse::<u32>(), Ok(0..=365))
    };
    let time_ok = match time {
        Some(time) => {
            let time = time.strip_prefix(['+', '-']).unwrap_or(time);
            offset(time) == Some("")
        }
        None => true,
    };
    date_ok && time_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_servers_accept_names_and_addresses() {
        for good in [
            "",
            "pool.ntp.org",
            "ntp1.example.com.",
            "192.0.2.1",
            "2001:db8::1",
            "time-a",
        ] {
            assert_eq!(ntp_server(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn ntp_servers_reject_spaces_bad_labels_and_urls() {
        for bad in [
            "pool ntp.org",
            "-bad.example",
            "a..b",
            "http://pool.ntp.org",
            &"a".repeat(65),
        ] {
            assert!(ntp_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn posix_time_zones_are_accepted() {
        for good in [
            "",
            "UTC0",
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "EST5EDT",
            "<+0530>-5:30",
            "NZST-12NZDT,M9.5.0,M4.1.0/3",
            "AAA3BBB,J60/2,300",
        ] {
            assert_eq!(posix_tz(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn malformed_time_zones_are_rejected() {
        for bad in [
            "Europe/Paris",
            "CET",
            "C-1",
            "CET-1CEST,M13.5.0,M10.5.0",
            "CET-1CEST,M3.5.0",
            "UTC99",
            "CET-1CEST,M3.5.0,M10.5.0/3x",
        ] {
            assert!(posix_tz(bad).is_err(), "{bad}");
        }
    }
}
