//! The forwarder on a `vhost-user` port, with a `virtio-user` port of the same
//! configuration as its frontend (opened after it, so that it finds the socket):
//! generator → `fwd0` → `vu0` → `vh0` → back out of `vh0` (mac-swap) → `vu0` → `fwd1` → sink, every
//! frame counted, every buffer back, both of Sluice's vhost-user sides in one run.

use sluice_config::Config;

use crate::ports::{open_pools, open_ports};

const FRAMES: u64 = 5_000;

fn config(path: &std::path::Path, packed: bool) -> Config {
    let text = format!(
        r#"
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
hugepages = "none"

[[ports]]
name = "gen0"
driver = "ring"
peer = "fwd0"

[[ports]]
name = "fwd0"
driver = "ring"
peer = "gen0"

[[ports]]
name = "vh0"
driver = "vhost-user"
path = "{path}"

[[ports]]
name = "vu0"
driver = "virtio-user"
path = "{path}"
packed = {packed}
rx_descriptors = 256
tx_descriptors = 256

[[ports]]
name = "fwd1"
driver = "ring"
peer = "sink0"

[[ports]]
name = "sink0"
driver = "ring"
peer = "fwd1"

[[lcores]]
core = 1
role = "rtc"
rx = ["fwd0/q0", "vu0/q0", "vh0/q0"]

[[forward]]
from = "fwd0"
to = "vu0"
mode = "io"

[[forward]]
from = "vh0"
to = "vh0"
mode = "mac-swap"

[[forward]]
from = "vu0"
to = "fwd1"
mode = "io"

[generator]
port = "gen0"
core = 0
frame_size = 64

[sink]
port = "sink0"
core = 0
"#,
        path = path.display()
    );
    Config::from_str_named(&text, "vhost-user.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn through_both_sides(packed: bool) {
    let dir = std::env::temp_dir().join(format!("sluice-fwd-vh-{}-{packed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vh0.sock");
    let config = config(&path, packed);
    let pools = open_pools(&config).unwrap();
    let ports = open_ports(&config, &pools).unwrap();
    super::tests::drive_exact(&config, pools, ports, FRAMES);
    assert!(!path.exists(), "the socket is removed when the port closes");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_forwarder_moves_every_frame_through_its_own_vhost_user_port_split() {
    through_both_sides(false);
}

#[test]
fn the_forwarder_moves_every_frame_through_its_own_vhost_user_port_packed() {
    through_both_sides(true);
}
