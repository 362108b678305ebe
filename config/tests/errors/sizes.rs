//! Ring sizes, queue counts, pools.

use super::*;

#[test]
fn descriptor_counts_must_be_powers_of_two_in_range() {
    for (value, message) in [
        (
            "0",
            "0 is not a power of two (allowed: powers of two in 64..=32768)",
        ),
        (
            "1000",
            "1000 is not a power of two (allowed: powers of two in 64..=32768)",
        ),
        ("32", "32 is out of range 64..=32768"),
        ("65536", "65536 is out of range 64..=32768"),
    ] {
        let text = edit(&[(
            "queues = 4\n\n[[ports]]",
            &format!("queues = 4\nrx_descriptors = {value}\n\n[[ports]]"),
        )]);
        assert_eq!(
            error(&text),
            format!("fwd.toml: ports[0].rx_descriptors: {message}")
        );
        let text = edit(&[(
            "queues = 4\n\n[[ports]]",
            &format!("queues = 4\ntx_descriptors = {value}\n\n[[ports]]"),
        )]);
        assert_eq!(
            error(&text),
            format!("fwd.toml: ports[0].tx_descriptors: {message}")
        );
    }
}

#[test]
fn zero_queues() {
    let text = edit(&[("queues = 4\n\n[[ports]]", "queues = 0\n\n[[ports]]")]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].queues: 0 queues: a port needs at least one queue pair"
    );
}

#[test]
fn queues_over_the_driver_limit() {
    let text = edit(&[("queues = 4\n\n[[ports]]", "queues = 17\n\n[[ports]]")]);
    assert_eq!(
        error(&text),
        "fwd.toml: ports[0].queues: 17 is over the ring driver's limit of 16 queues"
    );
    let xdp = |queues: u32| {
        format!(
            "[[mempools]]\nname = \"p\"\nbuffers = 100000\nbuffer_size = 2048\n\
             [[ports]]\nname = \"x\"\ndriver = \"af_xdp\"\ninterface = \"eth0\"\nqueues = {queues}\n\
             rx_descriptors = 64\n"
        )
    };
    ok(&xdp(64));
    assert_eq!(
        error(&xdp(65)),
        "fwd.toml: ports[0].queues: 65 is over the af_xdp driver's limit of 64 queues"
    );
}

#[test]
fn cache_size_limits() {
    let text = edit(&[("buffer_size = 2048", "buffer_size = 2048\ncache_size = 513")]);
    assert_eq!(
        error(&text),
        "fwd.toml: mempools[0].cache_size: 513 is over the maximum of 512"
    );
    let text = edit(&[(
        "buffers = 8191\nbuffer_size = 2048",
        "buffers = 511\nbuffer_size = 2048\ncache_size = 256",
    )]);
    assert_rejected(
        &text,
        "fwd.toml: mempools[0].cache_size: 256 is over half the pool (511 buffers / 2 = 255)",
        &[],
    );
    // The default cache shrinks to fit a small pool.
    let small = ok(&edit(&[("buffers = 8191", "buffers = 100")]));
    assert_eq!(small.mempools()[0].cache_size, 50);
}

#[test]
fn buffer_size_bounds() {
    for (size, good) in [
        (63, false),
        (64, true),
        (9000, true),
        (16384, true),
        (16385, false),
    ] {
        let text = edit(&[("buffer_size = 2048", &format!("buffer_size = {size}"))]);
        if good {
            assert_eq!(ok(&text).mempools()[0].buffer_size, size);
        } else {
            assert_eq!(
                error(&text),
                format!("fwd.toml: mempools[0].buffer_size: {size} is out of range 64..=16384")
            );
        }
    }
}

#[test]
fn pool_must_fill_the_rx_rings_of_its_device_ports() {
    let text = r#"
[[mempools]]
name = "pkt"
buffers = 1000
buffer_size = 2048
[[ports]]
name = "a"
driver = "virtio"
pci = "00:02.0"
queues = 2
rx_descriptors = 512
"#;
    assert_eq!(
        error(text),
        "fwd.toml: mempools[0].buffers: 1000 buffers cannot fill the rx rings of the ports \
         using the pool (a 2x512 = 1024)"
    );
}
