//! `sluice-fwd --capture`: pcapng files read back by `tcpdump -r`, every frame as sent, in
//! order; captures started and stopped while the forwarder runs; bad capture arguments.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_apps::capture::{CaptureControl, CaptureSettings, PointSpec, TapState};
use sluice_apps::config::Config;
use sluice_apps::fwd::{self, RunOptions, StartOptions};
use sluice_apps::traffic::frame;

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("capture-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The frames of a capture file as `tcpdump -r -xx` prints them; `None` without tcpdump.
fn tcpdump(path: &Path) -> Option<Vec<Vec<u8>>> {
    let out = match Command::new("tcpdump")
        .args(["-nn", "-xx", "-r"])
        .arg(path)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("tcpdump: {e}"),
    };
    assert!(
        out.status.success(),
        "tcpdump -r {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // A frame's first line is its summary; its bytes follow as "\t0x0010:  0251 0000 ...".
        let Some(hex) = line.strip_prefix('\t') else {
            frames.push(Vec::new());
            continue;
        };
        let (_, words) = hex.split_once(":  ").expect("a hex line");
        let cur = frames.last_mut().expect("bytes after a summary line");
        for w in words.split_whitespace() {
            for i in (0..w.len()).step_by(2) {
                cur.push(u8::from_str_radix(&w[i..i + 2], 16).unwrap());
            }
        }
    }
    Some(frames)
}

/// The sequence numbers of `frames`, each checked byte for byte against the generator's
/// layout (headers, checksum, fill pattern).
fn seqs(frames: &[Vec<u8>]) -> Vec<u64> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            frame::parse(f)
                .unwrap_or_else(|| panic!("frame {i} is not the generator's: {f:02x?}"))
                .seq
        })
        .collect()
}

#[test]
fn a_capture_reads_back_in_tcpdump_as_sent_in_order() {
    let d = dir("tcpdump");
    let (rx, tx) = (d.join("rx.pcapng"), d.join("tx.pcapng"));
    let n = 5000u64;
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-fwd"))
        .args(["--json", "--count", &n.to_string()])
        .arg("--capture")
        .arg(format!("fwd0/q0:rx={}", rx.display()))
        .arg("--capture")
        .arg(format!("fwd1:tx={}", tx.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.iter().find(|l| l["type"] == "summary").unwrap();
    let taps = &lines.last().unwrap()["captures"];
    let (sent, received) = (
        summary["sent"].as_u64().unwrap(),
        summary["received"].as_u64().unwrap(),
    );
    assert_eq!(sent, n);
    for t in taps.as_array().unwrap() {
        // 8 MiB side rings hold the whole run: nothing may be missing.
        assert_eq!(t["not_captured"], 0, "{t}");
        assert_eq!(t["state"], "done", "{t}");
    }
    let Some(rx_frames) = tcpdump(&rx) else {
        println!("skipped: tcpdump is not installed (apt-get install tcpdump)");
        return;
    };
    // What fwd0 received is the generator's stream from its start: every sequence number, in
    // order. (The run ends once the sink has been quiet for a moment, which on a busy host
    // can leave the last frames in the generator's ring: fwd0 received what was forwarded
    // and what was dropped on the way out.)
    let at_fwd0 = received + summary["drops"].as_u64().unwrap();
    assert!(at_fwd0 > 0 && at_fwd0 <= n, "{summary}");
    assert_eq!(taps[0]["written"], at_fwd0);
    assert_eq!(seqs(&rx_frames), (0..at_fwd0).collect::<Vec<_>>());
    // What fwd1 sent is what the sink received, unchanged (io mode), in order.
    let tx_frames = tcpdump(&tx).unwrap();
    assert_eq!(tx_frames.len() as u64, received);
    assert_eq!(taps[1]["written"], received);
    let mut last = None;
    for (f, s) in tx_frames.iter().zip(seqs(&tx_frames)) {
        assert!(last < Some(s), "tx capture out of order at seq {s}");
        assert_eq!(
            f, &rx_frames[s as usize],
            "frame {s} changed between rx and tx"
        );
        last = Some(s);
    }
}

#[test]
fn bad_capture_arguments_are_named_before_any_packet_moves() {
    let d = dir("bad");
    let fwd = |arg: String| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice-fwd"))
            .args(["--count", "10", "--capture", &arg])
            .output()
            .unwrap();
        // 1: a run-time error; 2: clap's usage error.
        assert!(matches!(out.status.code(), Some(1 | 2)), "{arg}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!stdout.contains("summary:"), "ran anyway: {stdout}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let f = d.join("x.pcapng");
    let err = fwd(format!("nope={}", f.display()));
    assert!(
        err.contains("no such port; known: fwd0/q0:rx, fwd1/q0:tx"),
        "{err}"
    );
    let err = fwd(format!("fwd0/q3={}", f.display()));
    assert!(err.contains("no such queue; known: fwd0/q0:rx"), "{err}");
    let missing = d.join("no-such-dir/x.pcapng");
    let err = fwd(format!("fwd0={}", missing.display()));
    assert!(
        err.contains(&format!(
            "capture file {}: cannot create: ",
            missing.display()
        )),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
    let err = fwd("fwd0:sideways=x".into());
    assert!(err.contains("the direction is rx, tx or both"), "{err}");
}

/// Waits until `done` holds, polling; a generous bound keeps a broken build from hanging.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn captures_start_and_stop_while_the_forwarder_runs() {
    let d = dir("runtime");
    let config = Config::builtin_default();
    let control = CaptureControl::new(&config, CaptureSettings::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        duration: None,
        print_stats: false,
        json: false,
        start: StartOptions {
            pin: false,
            stall_timeout: None,
            gen_count: None,
            tx_first: 0,
        },
        telemetry: Default::default(),
    };
    let (first, second) = (d.join("first.pcapng"), d.join("second.pcapng"));
    std::thread::scope(|s| {
        let run = s.spawn(|| {
            fwd::run_with(
                &config,
                &opts,
                stop.clone(),
                fwd::Attach {
                    capture: Some(&control),
                    cores: None,
                },
            )
        });
        // Through the text interface, as a control socket would.
        let started = control
            .command(&format!("start,fwd0/q0:rx,{}", first.display()))
            .unwrap();
        assert_eq!(started["id"], 1, "{started}");
        assert_eq!(started["state"], "running");
        let err = control
            .start(&PointSpec::parse("fwd0").unwrap(), &second)
            .unwrap_err();
        assert_eq!(err.to_string(), "fwd0/q0:rx is already captured by tap 1");
        wait_for("1000 frames captured", || control.list()[0].written >= 1000);
        let stopped = control.command("stop,1").unwrap();
        assert_eq!(stopped["state"], "done", "{stopped}");
        assert_eq!(stopped["not_captured"], 0);
        let written = stopped["written"].as_u64().unwrap();

        // The point is free again; the second capture takes both ports' points.
        let id = control
            .start(&PointSpec::parse("fwd1").unwrap(), &second)
            .unwrap();
        assert_eq!(id, 2);
        wait_for("100 frames captured", || control.list()[1].written >= 100);
        stop.store(true, Ordering::Release);
        let summary = run.join().unwrap().unwrap();
        assert!(summary.received > 0);
        let all = control.finish();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|t| t.state == TapState::Done), "{all:?}");
        assert!(all[1].written >= 100);
        assert!(control.command("stop,7").is_err());
        assert!(control.command("pause").is_err());

        // A window of the stream: consecutive sequence numbers, as many as reported.
        let frames = read(&first);
        assert_eq!(frames.len() as u64, written);
        let seq = seqs(&frames);
        assert_eq!(seq, (seq[0]..seq[0] + written).collect::<Vec<_>>());
        assert_eq!(read(&second).len() as u64, all[1].written);
    });
}

/// The packets of a pcapng file, read with the `pcap-file` crate.
fn read(path: &Path) -> Vec<Vec<u8>> {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let mut r = PcapNgReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut frames = Vec::new();
    let mut names = Vec::new();
    while let Some(block) = r.next_block() {
        match block.unwrap() {
            Block::EnhancedPacket(p) => frames.push(p.data.into_owned()),
            Block::InterfaceDescription(i) => names.push(format!("{:?}", i.options)),
            _ => {}
        }
    }
    assert!(!names.is_empty() && names[0].contains("fwd"), "{names:?}");
    frames
}
