//! Authentication, access and addressing hooks plugged into s3s.
//!
//! - [`KeyAuth`]: s3s's `SimpleAuth` with one key pair; an unknown access key answers
//!   `InvalidAccessKeyId` (SimpleAuth alone says `NotSignedUp`). s3s itself verifies SigV4
//!   (header, presigned query, aws-chunked) and answers `SignatureDoesNotMatch`.
//! - [`DenyAnonymous`]: every request must be signed (403 AccessDenied otherwise); it also
//!   records the resolved operation name for the request metrics. Once a request is
//!   authenticated it refuses headers promising protections Strata does not give
//!   ([`crate::perimeter::check_protection_headers`]) and takes the request's in-flight slot
//!   ([`RequestSlot`]): a stranger's request never holds one.
//! - [`DomainHost`]: virtual-hosted-style addressing under one base domain, port ignored, so
//!   `bucket.localhost:9000` names bucket `bucket`; any other host name is path-style.

use crate::error::{FrontendError, Refusal};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey, SimpleAuth};
use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct KeyAuth {
    inner: SimpleAuth,
}

impl KeyAuth {
    pub fn new(access_key: &str, secret_key: &str) -> Self {
        Self {
            inner: SimpleAuth::from_single(access_key, secret_key),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.inner.lookup(access_key) {
            Some(secret) => Ok(secret.clone()),
            None => Err(FrontendError::refused(
                Refusal::UnknownAccessKey,
                "The AWS Access Key Id you provided does not exist in our records.",
            )
            .into()),
        }
    }
}

/// Slot in the request extensions where the access check writes the operation name.
#[derive(Clone, Default)]
pub struct OperationSlot(pub Arc<Mutex<Option<String>>>);

impl OperationSlot {
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|guard| guard.clone())
    }
}

/// The front-end's in-flight request slots, and the one this request took (put in the request
/// extensions by `server::app`; taken by the access check, after authentication). The app keeps
/// the slot until the response body is sent.
#[derive(Clone)]
pub struct RequestSlot {
    slots: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl RequestSlot {
    pub fn new(slots: Arc<Semaphore>) -> Self {
        Self {
            slots,
            held: Arc::default(),
        }
    }

    /// Takes a slot for this request; false when every slot is held.
    fn take(&self) -> bool {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return false;
        };
        if let Ok(mut held) = self.held.lock() {
            *held = Some(permit);
        }
        true
    }

    /// The slot this request took, if it got that far.
    pub fn into_held(self) -> Option<OwnedSemaphorePermit> {
        self.held.lock().ok().and_then(|mut held| held.take())
    }
}

pub struct DenyAnonymous;

#[async_trait::async_trait]
impl S3Access for DenyAnonymous {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let name = cx.s3_op().name().to_string();
        if let Some(slot) = cx.extensions_mut().get::<OperationSlot>().cloned() {
            if let Ok(mut guard) = slot.0.lock() {
                *guard = Some(name);
            }
        }
        if cx.credentials().is_none() {
            return Err(FrontendError::refused(Refusal::AccessDenied, "Access Denied").into());
        }
        crate::perimeter::check_protection_headers(cx.headers())?;
        if let Some(slot) = cx.extensions_mut().get::<RequestSlot>() {
            if !slot.take() {
                return Err(FrontendError::refused(
                    Refusal::Overloaded,
                    "Please reduce your request rate.",
                )
                .into());
            }
        }
        Ok(())
    }
}

pub struct DomainHost {
    domain: String,
}

impl DomainHost {
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
        }
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl DomainHost {
    /// The bucket a Host header names as a virtual host under the domain (`photos.<domain>`);
    /// None for the domain itself or any other name (path-style addressing).
    pub fn bucket_of(&self, host: &str) -> Option<String> {
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        let bucket = name
            .strip_suffix(self.domain.as_str())?
            .strip_suffix('.')
            .filter(|bucket| !bucket.is_empty())?;
        Some(bucket.to_string())
    }
}

impl S3Host for DomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        if let Some(bucket) = self.bucket_of(host) {
            return Ok(VirtualHost::new(self.domain.as_str()).with_bucket(bucket));
        }
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        if name == self.domain {
            return Ok(VirtualHost::new(self.domain.as_str()));
        }
        // Another name for this host (a container name, a load balancer): path-style.
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosts_under_the_domain() {
        let host = DomainHost::new("localhost");
        let cases = [
            ("localhost", None),
            ("localhost:9000", None),
            ("bucket.localhost:9000", Some("bucket")),
            ("my.dotted.bucket.localhost", Some("my.dotted.bucket")),
            ("frontend-1:9000", None),
            ("s3.example.com", None),
        ];
        for (header, bucket) in cases {
            let parsed = host.parse_host_header(header).unwrap();
            assert_eq!(parsed.bucket(), bucket, "{header}");
        }
    }
}
