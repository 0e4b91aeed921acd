//! A replicated version sent over the link between stamps (issue 16): a source partition
//! server `POST`s to [`APPLY_PATH`] on a front-end link of the destination's stamp a body of
//! `[u32 big-endian length][ApplyReplicaHeader][the version's bytes, when with_bytes]`, and
//! the front-end relays it to the destination key's owner as one `ApplyReplica` stream. The
//! answer is a `ReplicaLinkAnswer` (status 200); any other status is the link's own failure.

use prost::Message;

use crate::partition::ApplyReplicaHeader;

/// Where a front-end's link takes replicas (partition servers' certificates only).
pub const APPLY_PATH: &str = "/_strata/replica/apply";
/// Where a front-end registers a source with a destination homed on the link's stamp
/// (`ReplicaSourceRequest`; front-ends' certificates only).
pub const SOURCE_PATH: &str = "/_strata/replica/source";
/// Where a front-end asks a source bucket's watermark of its home stamp (`?bucket=NAME`,
/// answered with a `ReplicaWatermarkAnswer`; front-ends' certificates only).
pub const WATERMARK_PATH: &str = "/_strata/replica/watermark";
/// The content type of both bodies.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// Largest header accepted: a version's metadata and tags are far smaller.
pub const HEADER_BYTES_MAX: usize = 1024 * 1024;
/// Largest answer body read.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// The length prefix and the header, the start of a request body.
pub fn frame_header(header: &ApplyReplicaHeader) -> Vec<u8> {
    let encoded = header.encode_to_vec();
    let mut framed = Vec::with_capacity(4 + encoded.len());
    framed.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    framed.extend_from_slice(&encoded);
    framed
}

/// The header's length from a body's first four bytes, when within [`HEADER_BYTES_MAX`].
pub fn header_length(prefix: [u8; 4]) -> Option<usize> {
    let length = u32::from_be_bytes(prefix) as usize;
    (length <= HEADER_BYTES_MAX).then_some(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_header_reads_back_and_an_oversized_length_is_refused() {
        let header = ApplyReplicaHeader {
            bucket: "b".into(),
            key: "k".into(),
            version: None,
            with_bytes: true,
            geo_replica: false,
        };
        let framed = frame_header(&header);
        let length = header_length(framed[..4].try_into().unwrap()).unwrap();
        assert_eq!(length, framed.len() - 4);
        assert_eq!(ApplyReplicaHeader::decode(&framed[4..]).unwrap(), header);
        assert_eq!(
            header_length((HEADER_BYTES_MAX as u32 + 1).to_be_bytes()),
            None
        );
    }
}
