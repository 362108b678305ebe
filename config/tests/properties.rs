//! Property tests: random valid configs survive render → parse unchanged, and random queue
//! maps are accepted exactly when no rx queue has two pollers.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use proptest::prelude::*;
use sluice_config::Config;

/// A random config that satisfies every rule, as TOML text.
///
/// Ports: `pairs` in-memory pairs plus `virtio` virtio ports, all with `queues` queues. A
/// permutation of the ports gives each forwarded port a distinct destination, so default tx
/// queues (same index on the destination) never collide; every queue of a forwarded port is
/// polled by one of the lcores, which get distinct cores.
#[derive(Debug, Clone)]
struct Spec {
    pairs: usize,
    virtio: usize,
    queues: u16,
    rx_log2: u32,
    tx_log2: u32,
    cache: u16,
    hugepages: &'static str,
    burst: u16,
    destination: Vec<usize>,
    forwarded: Vec<bool>,
    modes: Vec<u8>,
    macs: Vec<Option<[u8; 5]>>,
    owner: Vec<usize>,
    cores: Vec<u32>,
    explicit_tx: bool,
    helpers: Option<(u32, u16, u64)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (1usize..=3, 0usize..=2, 1u16..=4)
        .prop_flat_map(|(pairs, virtio, queues)| {
            let ports = pairs * 2 + virtio;
            let queue_count = ports * usize::from(queues);
            (
                (
                    Just(pairs),
                    Just(virtio),
                    Just(queues),
                    6u32..=12,
                    6u32..=12,
                    0u16..=512,
                ),
                (
                    prop::sample::select(vec!["2M", "1G", "none"]),
                    1u16..=256,
                    Just((0..ports).collect::<Vec<_>>()).prop_shuffle(),
                    prop::collection::vec(any::<bool>(), ports),
                    prop::collection::vec(0u8..3, ports),
                    prop::collection::vec(prop::option::of(any::<[u8; 5]>()), ports),
                ),
                (
                    prop::collection::vec(0usize..4, queue_count),
                    Just((2u32..64).collect::<Vec<_>>()).prop_shuffle(),
                    any::<bool>(),
                    prop::option::of((0u32..2, 64u16..=2052, 0u64..10_000_000)),
                ),
            )
        })
        .prop_map(
            |(
                (pairs, virtio, queues, rx_log2, tx_log2, cache),
                (hugepages, burst, destination, forwarded, modes, macs),
                (owner, cores, explicit_tx, helpers),
            )| Spec {
                pairs,
                virtio,
                queues,
                rx_log2,
                tx_log2,
                cache,
                hugepages,
                burst,
                destination,
                forwarded,
                modes,
                macs,
                owner,
                cores,
                explicit_tx,
                helpers,
            },
        )
}

impl Spec {
    fn render(&self) -> String {
        let ports = self.pairs * 2 + self.virtio;
        let name = |i: usize| format!("p{i}");
        let mut t = String::new();
        let rx_desc = 1u32 << self.rx_log2;
        let tx_desc = 1u32 << self.tx_log2;
        let buffers = (self.virtio as u32 * u32::from(self.queues) * rx_desc)
            .max(2 * u32::from(self.cache))
            .max(1024);
        writeln!(t, "burst = {}", self.burst).unwrap();
        writeln!(
            t,
            "[[mempools]]\nname = \"pkt\"\nbuffers = {buffers}\nbuffer_size = 2048\n\
             cache_size = {}\nhugepages = \"{}\"",
            self.cache, self.hugepages
        )
        .unwrap();
        for i in 0..ports {
            write!(t, "[[ports]]\nname = \"{}\"\n", name(i)).unwrap();
            if i < self.pairs * 2 {
                write!(t, "driver = \"ring\"\npeer = \"{}\"\n", name(i ^ 1)).unwrap();
            } else {
                write!(t, "driver = \"virtio\"\npci = \"00:{:02x}.0\"\n", i + 1).unwrap();
            }
            write!(
                t,
                "queues = {}\nrx_descriptors = {rx_desc}\ntx_descriptors = {tx_desc}\n",
                self.queues
            )
            .unwrap();
            if let Some(m) = self.macs[i] {
                writeln!(
                    t,
                    "mac = \"02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"",
                    m[0], m[1], m[2], m[3], m[4]
                )
                .unwrap();
            }
        }
        // Helpers get a ring pair of their own, outside the forwarding map.
        if let Some((core, frame, rate)) = self.helpers {
            for (me, peer) in [("hg", "hs"), ("hs", "hg")] {
                writeln!(
                    t,
                    "[[ports]]\nname = \"{me}\"\ndriver = \"ring\"\npeer = \"{peer}\""
                )
                .unwrap();
            }
            writeln!(
                t,
                "[generator]\nport = \"hg\"\ncore = {core}\nframe_size = {frame}\nrate_pps = {rate}\n\
                 [sink]\nport = \"hs\"\ncore = 0"
            )
            .unwrap();
        }
        let mut polled: Vec<Vec<String>> = vec![Vec::new(); 4];
        let mut sent: Vec<Vec<String>> = vec![Vec::new(); 4];
        for p in (0..ports).filter(|p| self.forwarded[*p]) {
            let to = self.destination[p];
            let mode = match (self.modes[p], p == to) {
                (0, false) => "mode = \"io\"".to_owned(),
                (0 | 1, _) => "mode = \"mac-swap\"".to_owned(),
                _ => "mode = \"l2\"\ndst_mac = \"ff:ff:ff:ff:ff:ff\"\nsrc_mac = \"02:00:00:00:00:01\""
                    .to_owned(),
            };
            writeln!(
                t,
                "[[forward]]\nfrom = \"{}\"\nto = \"{}\"\n{mode}",
                name(p),
                name(to)
            )
            .unwrap();
            for q in 0..usize::from(self.queues) {
                let lcore = self.owner[p * usize::from(self.queues) + q];
                polled[lcore].push(format!("\"{}/q{q}\"", name(p)));
                sent[lcore].push(format!("\"{}/q{q}\"", name(to)));
            }
        }
        // Keep only the lcores that poll something; cores 0 and 1 are the helpers'.
        for (i, rx) in polled.iter().enumerate().filter(|(_, rx)| !rx.is_empty()) {
            writeln!(
                t,
                "[[lcores]]\ncore = {}\nrole = \"rtc\"\nrx = [{}]",
                self.cores[i],
                rx.join(", ")
            )
            .unwrap();
            if self.explicit_tx {
                writeln!(t, "tx = [{}]", sent[i].join(", ")).unwrap();
            }
            if self.cores[i] % 2 == 1 {
                writeln!(t, "tx_policy = \"lossless\"").unwrap();
            }
        }
        t
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A valid config rendered back to TOML reads back equal, and rendering is a fixed point.
    #[test]
    fn valid_configs_round_trip(spec in spec()) {
        let text = spec.render();
        let config = Config::from_str_named(&text, "gen.toml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let rendered = config.to_toml();
        let again = Config::from_str_named(&rendered, "gen.toml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{rendered}")))?;
        prop_assert_eq!(&config, &again);
        prop_assert_eq!(rendered, again.to_toml());
        // Every queue of a forwarded port has exactly one poller.
        for rule in config.forward() {
            for queue in 0..config.port(rule.from).queues {
                let q = sluice_config::QueueRef { port: rule.from, queue };
                prop_assert_eq!(config.lcores().iter().filter(|l| l.rx.contains(&q)).count(), 1);
            }
        }
    }

    /// Random rx lists over two self-forwarding ports with four queues each: accepted exactly
    /// when no queue appears twice, otherwise rejected at the first repeat, naming the earlier
    /// poller by its core.
    #[test]
    fn double_polled_queues_never_validate(
        lists in prop::collection::vec(prop::collection::vec((0u8..2, 0u16..4), 1..4), 1..5)
    ) {
        let mut text = String::from(
            "[[mempools]]\nname = \"pkt\"\nbuffers = 4095\nbuffer_size = 2048\n\
             [[ports]]\nname = \"p0\"\ndriver = \"ring\"\npeer = \"p1\"\nqueues = 4\n\
             [[ports]]\nname = \"p1\"\ndriver = \"ring\"\npeer = \"p0\"\nqueues = 4\n",
        );
        let used: BTreeSet<u8> = lists.iter().flatten().map(|(p, _)| *p).collect();
        for p in &used {
            writeln!(text, "[[forward]]\nfrom = \"p{p}\"\nto = \"p{p}\"\nmode = \"mac-swap\"").unwrap();
        }
        for (i, list) in lists.iter().enumerate() {
            let rx: Vec<String> = list.iter().map(|(p, q)| format!("\"p{p}/q{q}\"")).collect();
            writeln!(text, "[[lcores]]\ncore = {}\nrole = \"rtc\"\nrx = [{}]", i + 10, rx.join(", ")).unwrap();
        }

        // The model: the first repeat, in file order.
        let mut owner: HashMap<(u8, u16), usize> = HashMap::new();
        let mut expected = None;
        'outer: for (i, list) in lists.iter().enumerate() {
            for (k, &(p, q)) in list.iter().enumerate() {
                if list[..k].contains(&(p, q)) {
                    expected = Some(format!("x.toml: lcores[{i}].rx: p{p}/q{q} is listed twice"));
                    break 'outer;
                }
                if let Some(core) = owner.get(&(p, q)) {
                    expected = Some(format!(
                        "x.toml: lcores[{i}].rx: p{p}/q{q} is already polled by lcore {core}"
                    ));
                    break 'outer;
                }
            }
            owner.extend(list.iter().map(|&pq| (pq, i + 10)));
        }

        match (Config::from_str_named(&text, "x.toml"), expected) {
            (Ok(config), None) => {
                for ((p, q), core) in owner {
                    let port = config.port_id(&format!("p{p}")).unwrap();
                    let lcore = config.rx_owner(sluice_config::QueueRef { port, queue: q }).unwrap();
                    prop_assert_eq!(lcore.core as usize, core);
                }
            }
            (Err(e), Some(message)) => prop_assert_eq!(e.to_string(), message),
            (got, want) => prop_assert!(false, "got {:?}, expected {:?}\n{}", got.map(|_| ()), want, text),
        }
    }
}
