//! The bounded, deterministic run `cargo test -p strata-fuzz` does (and CI with it): every
//! corpus file and regression input of a target, then seeded mutations of them until a count
//! or a time cap is reached. A panic (a parser crash or a broken invariant) is saved to a file
//! named in the failure, ready to be minimised and added to `fuzz/regressions/<target>/`.

use crate::mutate::mutate;
use crate::Target;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository's `fuzz/` directory (corpora and regressions).
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

pub fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

pub fn regressions_dir(target: &str) -> PathBuf {
    fuzz_dir().join("regressions").join(target)
}

/// The files of `dir`, sorted by name (none when it does not exist).
pub fn load_inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| std::fs::read(&path).ok().map(|bytes| (path, bytes)))
        .collect()
}

/// How much mutation a bounded run does.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub seed: u64,
    pub mutations_max: usize,
    pub time_max: Duration,
}

/// What a bounded run did.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    pub seeds: usize,
    pub regressions: usize,
    pub mutations: usize,
    pub elapsed: Duration,
}

/// Runs `target` on `input`; a panic is saved and reported with the input's origin.
fn run_one(target: Target, input: &[u8], origin: &str) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_ok() {
        return;
    }
    let digest = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, input);
    let saved = std::env::temp_dir().join(format!("strata-fuzz-{}-{digest:016x}", target.name));
    let note = match std::fs::write(&saved, input) {
        Ok(()) => format!("saved to {}", saved.display()),
        Err(err) => format!("not saved ({err}); hex {}", hex::encode(input)),
    };
    panic!(
        "fuzz target {} panicked on {origin} ({} bytes), {note}: minimise it, fix the parser \
         and add it to fuzz/regressions/{}/",
        target.name,
        input.len(),
        target.name
    );
}

/// The bounded run of one target (see the module doc).
pub fn run_bounded(target: Target, budget: Budget) -> Report {
    let started = Instant::now();
    let seeds = load_inputs(&corpus_dir(target.name));
    let regressions = load_inputs(&regressions_dir(target.name));
    for (path, bytes) in seeds.iter().chain(&regressions) {
        run_one(target, bytes, &path.display().to_string());
    }
    let pool: Vec<&[u8]> = seeds
        .iter()
        .chain(&regressions)
        .map(|(_, bytes)| bytes.as_slice())
        .collect();
    let mut rng = StdRng::seed_from_u64(budget.seed);
    let mut mutations = 0;
    while !pool.is_empty()
        && mutations < budget.mutations_max
        && started.elapsed() < budget.time_max
    {
        let input = pool[rng.gen_range(0..pool.len())];
        let other = pool[rng.gen_range(0..pool.len())];
        let mutated = mutate(&mut rng, input, other);
        let origin = format!("mutation {mutations} of seed {}", budget.seed);
        run_one(target, &mutated, &origin);
        mutations += 1;
    }
    Report {
        seeds: seeds.len(),
        regressions: regressions.len(),
        mutations,
        elapsed: started.elapsed(),
    }
}
