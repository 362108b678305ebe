//! Every file in `config/examples/` validates, and the built-in default is `loopback.toml`.

use std::path::{Path, PathBuf};

use sluice_config::{Config, ForwardMode, LcoreRole, PortDriver, XdpMode};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn example(name: &str) -> Config {
    Config::from_file(examples_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_validates_and_round_trips() {
    let mut count = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            let again = Config::from_str_named(&config.to_toml(), config.name())
                .unwrap_or_else(|e| panic!("{e}\n{}", config.to_toml()));
            assert_eq!(config, again, "{}", path.display());
            count += 1;
        }
    }
    assert!(
        count >= 4,
        "expected at least the four documented examples, found {count}"
    );
}

#[test]
fn loopback_is_the_builtin_default() {
    let text = std::fs::read_to_string(examples_dir().join("loopback.toml")).unwrap();
    assert_eq!(sluice_config::LOOPBACK_EXAMPLE, text);
    let builtin = Config::builtin_default();
    assert_eq!(builtin.name(), "config/examples/loopback.toml");
    let from_file = example("loopback.toml");
    assert_eq!(builtin.ports(), from_file.ports());
    assert_eq!(builtin.lcores(), from_file.lcores());
}

#[test]
fn loopback_reads_as_documented() {
    let c = Config::builtin_default();
    let id = |name| c.port_id(name).unwrap();
    let (gen0, fwd0, fwd1, sink0) = (id("gen0"), id("fwd0"), id("fwd1"), id("sink0"));
    assert_eq!(c.port(gen0).driver, PortDriver::Ring { peer: fwd0 });
    assert_eq!(c.port(fwd1).driver, PortDriver::Ring { peer: sink0 });
    let generator = c.generator().unwrap();
    let sink = c.sink().unwrap();
    assert_eq!((generator.port, sink.port), (gen0, sink0));
    assert_eq!(generator.frame_size, 64);
    assert_eq!(generator.rate_pps, None);
    // Two cores in all: generator and sink on 0, the forwarder on 1.
    assert_eq!((generator.core, sink.core), (0, 0));
    let [lcore] = c.lcores() else {
        panic!("one lcore")
    };
    assert_eq!((lcore.core, lcore.role), (1, LcoreRole::RunToCompletion));
    assert_eq!(c.queue_name(lcore.rx[0]), "fwd0/q0");
    assert_eq!(lcore.tx.len(), 1);
    assert_eq!(c.queue_name(lcore.tx[0]), "fwd1/q0");
    let rule = c.forward_from(fwd0).unwrap();
    assert_eq!((rule.to, rule.mode), (fwd1, ForwardMode::Io));
    assert_eq!(c.burst(), 32);
    assert_eq!(c.stats_interval(), Some(std::time::Duration::from_secs(1)));
}

#[test]
fn afxdp_example() {
    let c = example("afxdp-veth.toml");
    let interfaces: Vec<_> = c
        .ports()
        .iter()
        .map(|p| match &p.driver {
            PortDriver::AfXdp { interface, mode } => (interface.as_str(), *mode),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        interfaces,
        [("veth-a", XdpMode::Copy), ("veth-b", XdpMode::Copy)]
    );
    assert_eq!(c.lcores()[0].role, LcoreRole::RunToCompletion);
}

#[test]
fn virtio_example() {
    let c = example("virtio-vfio.toml");
    let pcis: Vec<String> = c
        .ports()
        .iter()
        .map(|p| match &p.driver {
            PortDriver::Virtio { pci } => pci.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pcis, ["0000:00:02.0", "0000:00:03.0"]);
    let lcore = &c.lcores()[0];
    let tx: Vec<String> = lcore.tx.iter().map(|q| c.queue_name(*q)).collect();
    assert_eq!(tx, ["port1/q0", "port0/q0"]);
}

#[test]
fn pipeline_example() {
    let c = example("pipeline.toml");
    let roles: Vec<LcoreRole> = c.lcores().iter().map(|l| l.role).collect();
    assert_eq!(roles, [LcoreRole::Rx, LcoreRole::Worker, LcoreRole::Tx]);
    let p = c.pipeline().unwrap();
    assert_eq!((p.ring_size, p.burst), (1024, 32));
    assert!(c.lcores()[1].rx.is_empty() && c.lcores()[1].tx.is_empty());
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = Config::from_file("/nonexistent/fwd.toml").unwrap_err();
    assert!(matches!(err, sluice_config::ConfigError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/fwd.toml: cannot read config file: "),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn virtio_user_example() {
    let c = example("virtio-user.toml");
    let paths: Vec<_> = c
        .ports()
        .iter()
        .map(|p| match &p.driver {
            PortDriver::VirtioUser { path, .. } => path.display().to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        ["/run/sluice/vhost-net0.sock", "/run/sluice/vhost-net1.sock"]
    );
    assert!(
        c.ports()
            .iter()
            .all(|p| p.queues == 1 && p.rx_descriptors == 256)
    );
}

#[test]
fn vhost_user_example() {
    let c = example("vhost-user.toml");
    let paths: Vec<_> = c
        .ports()
        .iter()
        .map(|p| match &p.driver {
            PortDriver::VhostUser { path } => path.display().to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(paths, ["/run/sluice/vm1.sock", "/run/sluice/vm2.sock"]);
    assert!(c.ports().iter().all(|p| p.queues == 1));
    // Rendered and read back, it is the same configuration.
    let again = sluice_config::Config::from_str_named(&c.to_toml(), "rendered.toml").unwrap();
    assert_eq!(again.ports(), c.ports());
}

#[test]
fn vhost_user_errors_name_the_key() {
    let text = std::fs::read_to_string(examples_dir().join("vhost-user.toml")).unwrap();
    let parse = |from: &str, to: &str| {
        Config::from_str_named(&text.replacen(from, to, 1), "t.toml")
            .unwrap_err()
            .to_string()
    };
    let e = parse("path = \"/run/sluice/vm1.sock\"\n", "");
    assert!(
        e.contains("ports[0].path") && e.contains("vhost-user ports need path"),
        "{e}"
    );
    let e = parse("queues = 1\n", "queues = 1\nrx_descriptors = 256\n");
    assert!(
        e.contains("rx_descriptors") && e.contains("vhost-user"),
        "{e}"
    );
    let e = parse("vm2.sock", "vm1.sock");
    assert!(
        e.contains("ports[1].path") && e.contains("already used by vm1"),
        "{e}"
    );
}
