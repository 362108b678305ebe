//! The forwarder on a `virtio-user` port, against the in-process vhost-user backend
//! (`TestNetBackend`, echo): generator → `fwd0` → `vu0` → backend → `vu0` → `fwd1` → sink,
//! every frame counted, every buffer back; and a port whose backend is not started.

use sluice_config::Config;
use sluice_pmd::virtio::vhost_user::backend::{NetBackendConfig, TestNetBackend};

use crate::ports::{open_pools, open_ports};

/// Fewer than the frames the test backend holds per receive ring: the echo can never drop.
const FRAMES: u64 = 2_000;

fn config(path: &std::path::Path) -> Config {
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
name = "vu0"
driver = "virtio-user"
path = "{}"
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
rx = ["fwd0/q0", "vu0/q0"]

[[forward]]
from = "fwd0"
to = "vu0"
mode = "io"

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
        path.display()
    );
    Config::from_str_named(&text, "virtio-user.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// A directory of this process and test for the socket, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sluice-fwd-vu-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn as_path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_forwarder_moves_every_frame_through_a_vhost_user_backend() {
    let dir = TempDir::new("echo");
    let path = dir.as_path().join("vu0.sock");
    let backend = TestNetBackend::listen(&path, NetBackendConfig::default()).unwrap();
    let config = config(&path);
    let pools = open_pools(&config).unwrap();
    assert!(pools[0].region().fd_region().is_some(), "made shareable");
    let ports = open_ports(&config, &pools).unwrap();
    super::tests::drive_exact(&config, pools, ports, FRAMES);
    let st = backend.stats();
    assert_eq!(
        (st.tx_frames, st.rx_frames, st.dropped),
        (FRAMES, FRAMES, 0)
    );
    assert_eq!(backend.error(), None);
    backend.join().unwrap();
}

#[test]
fn a_backend_not_started_is_named_with_its_socket() {
    let dir = TempDir::new("none");
    let path = dir.as_path().join("nobody.sock");
    let config = config(&path);
    let pools = open_pools(&config).unwrap();
    let err = open_ports(&config, &pools).unwrap_err().to_string();
    assert!(err.contains("vu0"), "{err}");
    let source = format!("{:?}", open_ports(&config, &pools).unwrap_err());
    assert!(source.contains("nobody.sock"), "{source}");
}
