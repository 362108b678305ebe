//! Every shipped example configuration is valid, and each one that needs no device or
//! privilege runs here, however few CPUs there are: its cores beyond the machine's are
//! mapped onto the last CPU with `--lcores` (with the warning that says so). Runs are
//! bounded by a frame count, not by time.

use std::path::Path;
use std::process::Command;

use sluice_apps::config::{Config, PortDriver};

const COUNT: u64 = 3000;

/// `--lcores` that puts every core of `config` this machine lacks onto its last CPU.
fn fit(config: &Config, cpus: usize) -> Option<String> {
    let cores = config
        .lcores()
        .iter()
        .map(|l| l.core)
        .chain(config.generator().map(|g| g.core))
        .chain(config.sink().map(|s| s.core));
    let over: Vec<String> = cores
        .filter(|&c| c as usize >= cpus)
        .map(|c| format!("{c}@{}", cpus - 1))
        .collect();
    (!over.is_empty()).then(|| over.join(","))
}

#[test]
fn every_example_is_valid_and_the_in_memory_ones_run_here() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut ran = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(p) = config
            .ports()
            .iter()
            .find(|p| !matches!(p.driver, PortDriver::Ring { .. }))
        {
            println!(
                "skipped: {name}: port {} is {:?}, a device or kernel interface this test \
                 does not set up (its own tests do)",
                p.name, p.driver
            );
            continue;
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-fwd"));
        cmd.arg("--config")
            .arg(&path)
            .args(["--json", "--count", &COUNT.to_string()]);
        let map = fit(&config, cpus);
        if let Some(m) = &map {
            cmd.args(["--lcores", m]);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{name}: {stdout}\n{stderr}");
        if map.is_some() {
            assert_eq!(
                stderr.matches("warning: --lcores").count(),
                1,
                "{name}: warned once: {stderr}"
            );
        }
        let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}: {stdout}"));
        assert_eq!(summary["sent"], COUNT, "{name}: {summary}");
        let received = summary["received"].as_u64().unwrap();
        // Lcores sharing a CPU can stall past the drop timeout: drops are allowed, and
        // counted; what arrives is intact and in order.
        assert!(received > 0, "{name}: {summary}");
        assert_eq!(
            (
                &summary["corrupted"],
                &summary["duplicates"],
                &summary["reordered"]
            ),
            (&0.into(), &0.into(), &0.into()),
            "{name}: {summary}"
        );
        println!(
            "{name}: ran ({}), {received} of {COUNT} frames arrived",
            map.as_deref()
                .map_or("no --lcores needed".to_string(), |m| format!(
                    "--lcores {m}"
                ))
        );
        ran += 1;
    }
    assert!(ran >= 2, "loopback and pipeline run everywhere");
}
