//! Walking a bucket's key interval stretch by stretch, whichever servers own which ranges.
//!
//! A partition server answers a listing call (ListObjects, ListObjectVersions,
//! ListMultipartUploads, CountObjects) only for the contiguous run of ranges it serves from the
//! call's `from` key on, and says how far that run reached (`covered_until`, or
//! `covered_to_end` for +infinity). A server may serve ranges 1 and 3 while range 2 lives
//! elsewhere: its run then stops at range 2's low, and the walk goes on there. The walk routes
//! each call by its `from` key; after an answer that was not truncated it continues at
//! `covered_until` (on whichever server owns that key), after a truncated one at the caller's
//! own next position; it ends when the caller has enough or the interval ends, and makes at
//! most [`HOPS_MAX`] calls. Positions are keys, never range ids, so a walk (and a continuation
//! token, a marker) stays correct while ranges split, merge or move: at worst a call meets
//! NotOwner or Loading and the router retries on a fresher map.

use crate::error::FrontendError;
use strata_proto::partition::{
    CountObjectsResponse, ListMultipartUploadsResponse, ListObjectVersionsResponse,
    ListObjectsResponse,
};

/// Bound on partition calls one walk makes.
pub const HOPS_MAX: usize = 10_000;

/// How far a listing answer covered the key space.
pub trait Covered {
    fn covered_until(&self) -> &[u8];
    fn covered_to_end(&self) -> bool;
}

macro_rules! covered {
    ($($response:ty),*) => {
        $(impl Covered for $response {
            fn covered_until(&self) -> &[u8] {
                &self.covered_until
            }
            fn covered_to_end(&self) -> bool {
                self.covered_to_end
            }
        })*
    };
}

covered!(
    ListObjectsResponse,
    ListObjectVersionsResponse,
    ListMultipartUploadsResponse,
    CountObjectsResponse
);

/// The state of one walk over `[start, end)`.
#[derive(Debug)]
pub struct Stretches {
    next: Option<Vec<u8>>,
    /// Exclusive; empty = +infinity.
    end: Vec<u8>,
    hops: usize,
}

impl Stretches {
    /// A walk over `[start, end)` (`end` empty = +infinity).
    pub fn new(start: Vec<u8>, end: Vec<u8>) -> Self {
        Self {
            next: Some(start),
            end,
            hops: 0,
        }
    }

    fn within(&self, key: &[u8]) -> bool {
        self.end.is_empty() || key < self.end.as_slice()
    }

    /// The `from` key of the next call (route it to that key's owner), None when the walk is
    /// over; an error after [`HOPS_MAX`] calls.
    pub fn next_from(&mut self) -> Result<Option<Vec<u8>>, FrontendError> {
        let Some(from) = self.next.take() else {
            return Ok(None);
        };
        if !self.within(&from) {
            return Ok(None);
        }
        if self.hops >= HOPS_MAX {
            return Err(FrontendError::Unavailable(format!(
                "a listing needed more than {HOPS_MAX} partition calls"
            )));
        }
        self.hops += 1;
        Ok(Some(from))
    }

    /// After an answer that was not truncated: on at the end of the run it covered, or at
    /// `at_least` (the caller's own next position) when that is later.
    pub fn covered(
        &mut self,
        response: &impl Covered,
        at_least: Option<Vec<u8>>,
    ) -> Result<(), FrontendError> {
        if response.covered_to_end() {
            self.next = None;
            return Ok(());
        }
        let until = response.covered_until().to_vec();
        if until.is_empty() {
            return Err(FrontendError::Protocol(
                "a listing answer that was not truncated named no covered_until".into(),
            ));
        }
        self.next = Some(match at_least {
            Some(at_least) => until.max(at_least),
            None => until,
        });
        Ok(())
    }

    /// After a truncated answer: on at `key`, the first key after what the caller has.
    pub fn resume_at(&mut self, key: Vec<u8>) {
        self.next = Some(key);
    }

    /// The number of calls made so far.
    pub fn hops(&self) -> usize {
        self.hops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(until: &[u8], to_end: bool) -> CountObjectsResponse {
        CountObjectsResponse {
            count: 0,
            covered_until: until.to_vec(),
            covered_to_end: to_end,
        }
    }

    #[test]
    fn walks_runs_until_the_end_of_the_interval() {
        let mut walk = Stretches::new(b"b".to_vec(), b"p".to_vec());
        assert_eq!(walk.next_from().unwrap(), Some(b"b".to_vec()));
        walk.covered(&answer(b"f", false), None).unwrap();
        assert_eq!(walk.next_from().unwrap(), Some(b"f".to_vec()));
        // The caller's own position wins when it is later (a common prefix past the run).
        walk.covered(&answer(b"k", false), Some(b"m".to_vec()))
            .unwrap();
        assert_eq!(walk.next_from().unwrap(), Some(b"m".to_vec()));
        walk.resume_at(b"n".to_vec());
        assert_eq!(walk.next_from().unwrap(), Some(b"n".to_vec()));
        // A run reaching past the interval's end ends the walk.
        walk.covered(&answer(b"q", false), None).unwrap();
        assert_eq!(walk.next_from().unwrap(), None);
        assert_eq!(walk.hops(), 4);

        let mut to_end = Stretches::new(b"b".to_vec(), Vec::new());
        assert!(to_end.next_from().unwrap().is_some());
        to_end.covered(&answer(b"", true), None).unwrap();
        assert_eq!(to_end.next_from().unwrap(), None);

        let mut broken = Stretches::new(b"b".to_vec(), Vec::new());
        broken.next_from().unwrap();
        assert!(broken.covered(&answer(b"", false), None).is_err());
    }

    #[test]
    fn the_number_of_calls_is_bounded() {
        let mut walk = Stretches::new(b"a".to_vec(), Vec::new());
        for _ in 0..HOPS_MAX {
            assert!(walk.next_from().unwrap().is_some());
            walk.resume_at(b"a".to_vec());
        }
        assert!(walk.next_from().is_err());
    }
}
