//! Stop signals as they really come: each binary is started in a process group of its own,
//! and once it says it runs (a line on stdout, or stderr with `--json`) it gets SIGINT twice
//! in a row, once as coreutils `timeout` sends it (to the process, then to its group) and
//! once directly. The duplicate must not cost the summary: the run ends in order, prints it
//! and exits with its usual status. Nothing here waits for a time: every step waits for the
//! binary to say something or to exit.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};

/// How the two signals are sent.
#[derive(Clone, Copy, Debug)]
enum Twice {
    /// As `timeout` does: to the process, then to its process group.
    ProcessThenGroup,
    /// SIGINT then SIGTERM, both to the process.
    IntThenTerm,
}

fn kill(sig: &str, target: &str) {
    let ok = Command::new("kill")
        .args([sig, "--", target])
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill {sig} {target}");
}

/// A binary started in a process group of its own.
struct Run {
    child: Child,
    out: BufReader<ChildStdout>,
    err: BufReader<ChildStderr>,
    /// What was read of stdout and of stderr while waiting.
    seen: [String; 2],
}

impl Run {
    fn start(bin: &str, args: &[&str]) -> Run {
        let mut child = Command::new(bin)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        Run {
            child,
            out,
            err,
            seen: Default::default(),
        }
    }

    /// Reads lines of stdout (or stderr) until one contains `what`; false at the end of
    /// the stream (the binary exited first).
    fn wait_for(&mut self, on_stderr: bool, what: &str) -> bool {
        loop {
            let mut line = String::new();
            let n = if on_stderr {
                self.err.read_line(&mut line)
            } else {
                self.out.read_line(&mut line)
            }
            .expect("reading the binary's output");
            self.seen[usize::from(on_stderr)].push_str(&line);
            if n == 0 {
                return false;
            }
            if line.contains(what) {
                return true;
            }
        }
    }

    fn signal_twice(&self, how: Twice) {
        let pid = self.child.id().to_string();
        match how {
            Twice::ProcessThenGroup => {
                kill("-INT", &pid);
                kill("-INT", &format!("-{pid}"));
            }
            Twice::IntThenTerm => {
                kill("-INT", &pid);
                kill("-TERM", &pid);
            }
        }
    }

    /// Waits for the exit: status, all of stdout, all of stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let [mut out, mut err] = self.seen;
        // stderr is drained on a thread so that neither pipe can fill and block the binary.
        let mut err_pipe = self.err;
        let reader = std::thread::spawn(move || {
            let _ = err_pipe.read_to_string(&mut err);
            err
        });
        self.out.read_to_string(&mut out).unwrap();
        let err = reader.join().unwrap();
        let status = self.child.wait().unwrap();
        (status.code(), out, err)
    }
}

fn stop_twice(
    bin: &str,
    args: &[&str],
    ready: &str,
    on_stderr: bool,
    how: Twice,
) -> (String, String) {
    let mut run = Run::start(bin, args);
    if !run.wait_for(on_stderr, ready) {
        let (code, out, err) = run.finish();
        panic!("{bin} {args:?} exited ({code:?}) before saying '{ready}':\n{out}\n{err}");
    }
    run.signal_twice(how);
    let (code, out, err) = run.finish();
    assert_eq!(
        code,
        Some(0),
        "{bin} {args:?}, {how:?}: exit status\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        !err.contains("without the summary"),
        "{how:?}: the duplicate forced an exit: {err}"
    );
    (out, err)
}

#[test]
fn sluice_fwd_prints_its_summary_when_a_stop_comes_twice() {
    for how in [Twice::ProcessThenGroup, Twice::IntThenTerm] {
        let (out, _) = stop_twice(
            env!("CARGO_BIN_EXE_sluice-fwd"),
            &[],
            "until Ctrl-C",
            false,
            how,
        );
        assert!(out.contains("summary: "), "{how:?}: {out}");
        assert!(out.contains(", interrupted"), "{how:?}: {out}");
        assert!(out.contains("pkt 8191/8191 free"), "{how:?}: {out}");
    }
}

#[test]
fn sluice_pktgen_prints_its_summary_when_a_stop_comes_twice() {
    for how in [Twice::ProcessThenGroup, Twice::IntThenTerm] {
        let (out, _) = stop_twice(
            env!("CARGO_BIN_EXE_sluice-pktgen"),
            &["--rate", "100000"],
            "until Ctrl-C",
            false,
            how,
        );
        assert!(out.contains("summary: "), "{how:?}: {out}");
        assert!(out.contains(", interrupted"), "{how:?}: {out}");
    }
}

#[test]
fn sluice_blkperf_on_the_ram_disk_reports_what_it_did_when_stopped() {
    let (out, _) = stop_twice(
        env!("CARGO_BIN_EXE_sluice-blkperf"),
        &[
            "--target",
            "ram",
            "--ram-mib",
            "8",
            "-q",
            "4",
            "-t",
            "3600",
            "--verify",
        ],
        "Ctrl-C stops it",
        false,
        Twice::ProcessThenGroup,
    );
    assert!(out.contains(", interrupted"), "{out}");
    assert!(out.contains("\ntotal "), "{out}");
    assert!(out.contains("errors: 0"), "{out}");
    // Stopped during the pre-fill, nothing was read back; after it, nothing differed.
    assert!(
        !out.contains("verify: ") || out.contains(" 0 mismatches"),
        "{out}"
    );
}

#[test]
fn sluice_blkperf_json_lines_end_with_the_summary_when_stopped() {
    let (out, err) = stop_twice(
        env!("CARGO_BIN_EXE_sluice-blkperf"),
        &[
            "--target",
            "ram",
            "--ram-mib",
            "8",
            "-q",
            "4",
            "-t",
            "3600",
            "--json",
        ],
        "Ctrl-C stops it",
        true,
        Twice::IntThenTerm,
    );
    // One JSON object per line: the records of each second, then the summary.
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
        .collect();
    let v = lines.last().unwrap_or_else(|| panic!("no output: {err}"));
    assert_eq!(v["type"], "summary", "{out}");
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|r| r["type"] == "interval"),
        "{out}"
    );
    assert_eq!(v["interrupted"], true, "{out}");
    assert_eq!(v["total"]["errors"], 0, "{out}");
    assert!(err.contains("running"), "{err}");
}

#[test]
fn sluice_blkperf_through_io_uring_reports_what_it_did_when_stopped() {
    let dir = std::env::temp_dir().join(format!("sluice-signals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("disk");
    std::fs::write(&path, vec![0u8; 4 << 20]).unwrap();
    let mut run = Run::start(
        env!("CARGO_BIN_EXE_sluice-blkperf"),
        &[
            "--target",
            path.to_str().unwrap(),
            "--buffered",
            "-q",
            "4",
            "-t",
            "3600",
            "-w",
            "randrw",
        ],
    );
    if !run.wait_for(false, "Ctrl-C stops it") {
        let (_, _, err) = run.finish();
        std::fs::remove_dir_all(&dir).unwrap();
        if err.contains("io_uring_setup") {
            println!("skipped: io_uring is not available here: {err}");
            return;
        }
        panic!("sluice-blkperf exited before it ran: {err}");
    }
    run.signal_twice(Twice::ProcessThenGroup);
    let (code, out, err) = run.finish();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains(", interrupted") && out.contains("\ntotal "),
        "{out}"
    );
    assert!(out.contains("errors: 0"), "{out}");
}
