//! Pipeline.

use super::*;

const PIPELINE_LCORES: &str = "[[lcores]]\ncore = 1\nrole = \"rx\"\nrx = [\"port0/q0\"]\n\n\
    [[lcores]]\ncore = 2\nrole = \"worker\"\n\n[[lcores]]\ncore = 3\nrole = \"tx\"\ntx = [\"port1/q0\"]\n";
const BASE_LCORE: &str = "[[lcores]]\ncore = 1\nrole = \"rtc\"\nrx = [\"port0/q0\"]\n";

#[test]
fn pipeline_roles_need_a_pipeline_section() {
    let text = edit(&[(BASE_LCORE, PIPELINE_LCORES)]);
    assert_eq!(
        error(&text),
        "fwd.toml: pipeline: missing: lcores[0] is a pipeline stage, which needs a [pipeline] section"
    );
    let c = ok(&format!("{text}\n[pipeline]\n"));
    let p = c.pipeline().unwrap();
    assert_eq!((p.ring_size, p.burst), (1024, 32));
}

#[test]
fn pipeline_needs_every_stage() {
    let text = edit(&[(
        BASE_LCORE,
        "[[lcores]]\ncore = 1\nrole = \"rx\"\nrx = [\"port0/q0\"]\n\n\
         [[lcores]]\ncore = 3\nrole = \"tx\"\ntx = [\"port1/q0\"]\n",
    )]);
    assert_eq!(
        error(&format!("{text}\n[pipeline]\n")),
        "fwd.toml: lcores: lcores[0] is a pipeline stage, but no lcore has role \"worker\": \
         a pipeline needs rx, worker and tx lcores"
    );
}

#[test]
fn pipeline_section_without_stages() {
    let text = format!("{BASE}\n[pipeline]\nring_size = 1024\n");
    assert_rejected(
        &text,
        "fwd.toml: pipeline: no lcore has role",
        &["remove it"],
    );
}

#[test]
fn pipeline_ring_size_and_burst() {
    let text = edit(&[(BASE_LCORE, PIPELINE_LCORES)]);
    assert_eq!(
        error(&format!("{text}\n[pipeline]\nring_size = 1000\n")),
        "fwd.toml: pipeline.ring_size: 1000 is not a power of two (allowed: powers of two in 64..=65536)"
    );
    assert_eq!(
        error(&format!("{text}\n[pipeline]\nring_size = 0\n")),
        "fwd.toml: pipeline.ring_size: 0 is not a power of two (allowed: powers of two in 64..=65536)"
    );
    assert_eq!(
        error(&format!(
            "{text}\n[pipeline]\nring_size = 64\nburst = 128\n"
        )),
        "fwd.toml: pipeline.burst: 128 is larger than pipeline.ring_size 64"
    );
    assert_eq!(
        error(&format!("{text}\n[pipeline]\nburst = 0\n")),
        "fwd.toml: pipeline.burst: 0 is out of range 1..=256"
    );
}

#[test]
fn pipeline_stage_queue_rules() {
    let worker_rx = edit(&[(
        BASE_LCORE,
        &PIPELINE_LCORES.replace(
            "role = \"worker\"",
            "role = \"worker\"\nrx = [\"port0/q1\"]",
        ),
    )]);
    assert_eq!(
        error(&format!("{worker_rx}\n[pipeline]\n")),
        "fwd.toml: lcores[1].rx: worker lcores poll no rx queues; remove rx"
    );
    let rx_tx = edit(&[(
        BASE_LCORE,
        &PIPELINE_LCORES.replace(
            "rx = [\"port0/q0\"]",
            "rx = [\"port0/q0\"]\ntx = [\"port1/q1\"]",
        ),
    )]);
    assert_eq!(
        error(&format!("{rx_tx}\n[pipeline]\n")),
        "fwd.toml: lcores[0].tx: rx lcores send on no tx queues; remove tx"
    );
    let no_tx = edit(&[(
        BASE_LCORE,
        &PIPELINE_LCORES.replace("tx = [\"port1/q0\"]", "tx = []"),
    )]);
    assert_eq!(
        error(&format!("{no_tx}\n[pipeline]\n")),
        "fwd.toml: lcores[2].tx: missing or empty: tx lcores send on at least one tx queue"
    );
    let uncovered = edit(&[(
        BASE_LCORE,
        &PIPELINE_LCORES.replace("tx = [\"port1/q0\"]", "tx = [\"port0/q0\"]"),
    )]);
    assert_eq!(
        error(&format!("{uncovered}\n[pipeline]\n")),
        "fwd.toml: lcores[0].rx: port0/q0 forwards to port1, but no tx lcore has a queue on port1"
    );
}
