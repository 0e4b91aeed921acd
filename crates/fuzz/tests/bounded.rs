//! The bounded fuzz run CI does: every target over its checked-in corpus and regression
//! inputs, then seeded mutations, capped by count and time (`STRATA_FUZZ_SECS`, default 15 s
//! a target; `STRATA_FUZZ_SEED` replays another seed). A failure names the saved input.
//! Also: the signing seeds of the SigV4 target really get past authentication (else the
//! target would only ever fuzz the refusal), and the checked-in seeds are the current ones.

use std::time::Duration;
use strata_fuzz::run::{corpus_dir, run_bounded, Budget};
use strata_fuzz::{seeds, target};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn bounded(name: &str, mutations_max: usize) {
    let target = target(name).expect("known target");
    let budget = Budget {
        seed: env_u64("STRATA_FUZZ_SEED", 20_260_101),
        mutations_max,
        time_max: Duration::from_secs(env_u64("STRATA_FUZZ_SECS", 15)),
    };
    let report = run_bounded(target, budget);
    println!("{name}: {report:?}");
    assert!(report.seeds > 0, "{name} has no corpus");
}

#[test]
fn sigv4_bounded() {
    bounded("sigv4", 200_000);
}

#[test]
fn s3_xml_bounded() {
    bounded("s3_xml", 500_000);
}

#[test]
fn extent_records_bounded() {
    bounded("extent_records", 100_000);
}

#[test]
fn log_records_bounded() {
    bounded("log_records", 500_000);
}

#[test]
fn signed_seeds_get_past_authentication() {
    for name in ["seed-get", "seed-presign-get", "seed-virtual-host"] {
        let bytes = std::fs::read(corpus_dir("sigv4").join(name)).expect("seed");
        // The sink answers NotImplemented for these: s3s only calls it once authenticated.
        let (status, body) = strata_fuzz::sigv4::answer(&bytes).expect("a request");
        assert!(
            body.contains("<Code>NotImplemented</Code>"),
            "{name}: {status} {body}"
        );
    }
    for name in [
        "seed-put",
        "seed-put-signed-chunks",
        "seed-put-trailer",
        "seed-upload-part-signed-chunks",
    ] {
        let bytes = std::fs::read(corpus_dir("sigv4").join(name)).expect("seed");
        let (status, body) = strata_fuzz::sigv4::answer(&bytes).expect("a request");
        assert_eq!(status, 200, "{name}: {body}");
    }
}

#[test]
fn checked_in_seeds_are_current() {
    for target in strata_fuzz::TARGETS {
        for (name, bytes) in seeds::seeds(target.name) {
            let path = corpus_dir(target.name).join(&name);
            let stored = std::fs::read(&path).unwrap_or_default();
            assert!(
                stored == bytes,
                "{} is stale: run `cargo test -p strata-fuzz -- --ignored write_seed_corpus`",
                path.display()
            );
        }
    }
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*; run by hand after changing seeds.rs"]
fn write_seed_corpus() {
    for target in strata_fuzz::TARGETS {
        let dir = corpus_dir(target.name);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in seeds::seeds(target.name) {
            std::fs::write(dir.join(name), bytes).expect("seed written");
        }
    }
}
