//! A small LAN of Linux network namespaces, so workers in a test reach the relay and each other
//! by address and share no loopback, as on separate machines: a bridge in the test's own
//! namespace holds the gateway address (where the relay listens), and each host is a namespace
//! with a veth cable plugged into the bridge. Needs root (CI runs as root); everything is torn
//! down on drop.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Lan {
    bridge: String,
    /// Each host's namespace and the name of its end of the cable.
    hosts: Vec<(String, String)>,
    subnet: [u8; 3],
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {} (network namespace tests need root and iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

impl Lan {
    pub fn new(hosts: usize) -> Lan {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Unique among concurrent tests of this process and, very likely, of others.
        let tag = format!("{:x}{n}", pid % 0xffff);
        let subnet = [10, 100 + (n % 100) as u8, (pid % 250) as u8];
        let mut lan = Lan { bridge: format!("hyb{tag}"), hosts: Vec::new(), subnet };
        ip(&["link", "add", &lan.bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{}/24", lan.gateway()), "dev", &lan.bridge]);
        ip(&["link", "set", &lan.bridge, "up"]);
        for h in 0..hosts {
            let ns = format!("hyn{tag}h{h}");
            let (outside, inside) = (format!("hyv{tag}h{h}"), format!("hyw{tag}h{h}"));
            ip(&["netns", "add", &ns]);
            lan.hosts.push((ns.clone(), inside.clone()));
            ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside]);
            ip(&["link", "set", &inside, "netns", &ns]);
            ip(&["link", "set", &outside, "master", &lan.bridge]);
            ip(&["link", "set", &outside, "up"]);
            let address = format!("{}/24", lan.host_address(h));
            ip(&["-n", &ns, "addr", "add", &address, "dev", &inside]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", &lan.gateway().to_string()]);
        }
        lan
    }

    /// The bridge's address in the test's namespace: where the relay listens.
    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    pub fn host_address(&self, host: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 10 + host as u8)
    }

    /// The namespace of host `host`, for `ip netns exec`.
    pub fn namespace(&self, host: usize) -> &str {
        &self.hosts[host].0
    }

    /// Slows everything `host` sends to `rate` (tc's notation: `1mbit`), as a thin uplink would.
    pub fn limit_upload(&self, host: usize, rate: &str) {
        let (ns, cable) = &self.hosts[host];
        let output = Command::new("ip")
            .args(["netns", "exec", ns, "tc", "qdisc", "add", "dev", cable, "root", "tbf"])
            .args(["rate", rate, "burst", "16kb", "latency", "5s"])
            .output()
            .expect("running tc (iproute2)");
        assert!(output.status.success(), "tc: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the other end.
        for (ns, _) in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}
