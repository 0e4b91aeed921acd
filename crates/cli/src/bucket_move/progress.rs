//! What a bucket move shows. While it runs, on stderr: on a terminal one live line (the pass,
//! rows and bytes so far) and the notes of each step above it; elsewhere (a log, a test) one
//! plain line per pass and per step, so the output stays small. At the end, on stdout, the
//! [`Summary`] (as text, or as one JSON object).

use super::sync::PassCounts;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::time::Duration;

/// How often the live line redraws.
const TICK_MS: u64 = 200;

pub struct Progress {
    /// None when stderr is not a terminal.
    bar: Option<ProgressBar>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(TICK_MS));
            bar
        });
        Progress { bar }
    }

    /// The live line (terminal only).
    pub fn update(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }

    /// A line that stays: a finished pass, a step taken.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What the run did, printed at the end.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub bucket: String,
    pub from: String,
    pub to: String,
    pub move_id: String,
    /// "moved", "already-moved" (only the steps after the switch ran) or "aborted".
    pub outcome: &'static str,
    /// Copy passes, the final one under the fence included (not the verification).
    pub passes: u32,
    pub rows_copied: u64,
    /// Rows the passes removed from the target, and the copy removed after the switch (the
    /// source's) or an abort (the target's).
    pub rows_removed: u64,
    pub bytes_copied: u64,
    /// From FENCE sent to SERVE answered: how long the bucket took no writes.
    pub fence_ms: Option<u64>,
    pub total_s: f64,
}

impl Summary {
    pub fn add(&mut self, counts: &PassCounts) {
        self.rows_copied += counts.rows_copied;
        self.rows_removed += counts.rows_removed;
        self.bytes_copied += counts.bytes_copied;
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        let verb = match self.outcome {
            "aborted" => "stopped the move of",
            "already-moved" => "already moved; finished moving",
            _ => "moved",
        };
        println!(
            "{verb} bucket {} from {} to {}",
            self.bucket, self.from, self.to
        );
        println!("  move id       {}", self.move_id);
        println!("  passes        {}", self.passes);
        println!("  rows copied   {}", self.rows_copied);
        println!("  rows removed  {}", self.rows_removed);
        let bytes = indicatif::HumanBytes(self.bytes_copied);
        println!("  bytes copied  {} ({bytes})", self.bytes_copied);
        if let Some(fence_ms) = self.fence_ms {
            println!("  fence         {fence_ms} ms");
        }
        println!("  total         {:.1} s", self.total_s);
        Ok(())
    }
}
