//! Guard shared by the DDS tests: they send multicast discovery traffic, so they run only
//! inside a private network namespace whose sole interface is loopback (`.ci/netns-run`).
//! The DDS test files include this file with `#[path]`; on its own it has no tests.

#![allow(dead_code)]

use std::fs;

/// Returns the interface names of the calling process's network namespace, read from
/// /proc/self/net/dev (which, unlike /sys/class/net, follows the process's namespace).
pub fn network_interfaces() -> Vec<String> {
    let table = fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    table
        .lines()
        .skip(2)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .collect()
}

/// Panics unless the process runs in a network namespace with loopback as its only
/// interface.
pub fn require_private_network() {
    let interfaces = network_interfaces();
    assert!(
        interfaces == ["lo"],
        "DDS tests send multicast traffic and must run in a private network namespace with \
         only loopback: run them through `.ci/netns-run cargo test ...` (interfaces here: \
         {interfaces:?})"
    );
}
