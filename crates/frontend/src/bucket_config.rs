//! Bucket configurations kept in the bucket record: tags (Put/Get/DeleteBucketTagging) and CORS
//! rules (Put/Get/DeleteBucketCors; answering browsers with them is `cors.rs`).
//!
//! Each Put replaces one configuration on the record's owner in one commit (UpdateBucket), so
//! concurrent updates of different configurations never undo one another; Get reads the record.

use crate::error::{FrontendError, Refusal};
use crate::frontend::Frontend;
use s3s::dto::{CORSConfiguration, CORSRule};
use s3s::S3Result;
use strata_proto::common::{BucketMeta, CorsRule};
use strata_proto::partition::{update_bucket_request, CorsRules, UpdateBucketRequest};
use strata_types::keys;

pub use strata_types::limits::CORS_RULES_MAX;
const CORS_METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// CORS rules from a PutBucketCors body, checked as S3 checks them.
pub fn cors_rules_of(config: &CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    if config.cors_rules.is_empty() || config.cors_rules.len() > CORS_RULES_MAX {
        return Err(FrontendError::refused(
            Refusal::MalformedXml,
            "A CORS configuration has 1 to 100 rules.",
        )
        .into());
    }
    config
        .cors_rules
        .iter()
        .map(|rule| {
            if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
                let message = "Each CORSRule needs an AllowedOrigin and an AllowedMethod.";
                return Err(FrontendError::refused(Refusal::MalformedXml, message).into());
            }
            for method in &rule.allowed_methods {
                if !CORS_METHODS.contains(&method.as_str()) {
                    let message = format!("Found unsupported HTTP method in CORS config. Unsupported method is {method}");
                    return Err(FrontendError::refused(Refusal::InvalidRequest, message).into());
                }
            }
            let wildcards = |values: &[String]| values.iter().any(|v| v.matches('*').count() > 1);
            let headers = rule.allowed_headers.clone().unwrap_or_default();
            if wildcards(&rule.allowed_origins) || wildcards(&headers) {
                let message = "AllowedOrigin and AllowedHeader can have at most one * wildcard.";
                return Err(FrontendError::refused(Refusal::InvalidRequest, message).into());
            }
            // -1 stands for "absent" in the stored rule: a negative value would be stored and
            // then vanish from GetBucketCors (found by fuzzing).
            if rule.max_age_seconds.is_some_and(|secs| secs < 0) {
                let message = "MaxAgeSeconds must be a non-negative integer.";
                return Err(FrontendError::refused(Refusal::MalformedXml, message).into());
            }
            Ok(CorsRule {
                id: rule.id.clone().unwrap_or_default(),
                allowed_origins: rule.allowed_origins.clone(),
                allowed_methods: rule.allowed_methods.clone(),
                allowed_headers: headers,
                expose_headers: rule.expose_headers.clone().unwrap_or_default(),
                max_age_seconds: rule.max_age_seconds.unwrap_or(-1),
            })
        })
        .collect()
}

/// Stored CORS rules as the XML answer of GetBucketCors.
pub fn cors_xml(rules: &[CorsRule]) -> Vec<CORSRule> {
    rules
        .iter()
        .map(|rule| CORSRule {
            id: (!rule.id.is_empty()).then(|| rule.id.clone()),
            allowed_origins: rule.allowed_origins.clone(),
            allowed_methods: rule.allowed_methods.clone(),
            allowed_headers: (!rule.allowed_headers.is_empty())
                .then(|| rule.allowed_headers.clone()),
            expose_headers: (!rule.expose_headers.is_empty()).then(|| rule.expose_headers.clone()),
            max_age_seconds: (rule.max_age_seconds >= 0).then_some(rule.max_age_seconds),
        })
        .collect()
}

impl Frontend {
    /// Applies one configuration change to the bucket record; returns the new record.
    pub(crate) async fn update_bucket(
        &self,
        bucket: &str,
        change: update_bucket_request::Change,
    ) -> S3Result<BucketMeta> {
        let request = UpdateBucketRequest {
            name: bucket.to_string(),
            change: Some(change),
        };
        let result = self
            .router
            .call(&keys::bucket_key(bucket), false, |mut client, _| {
                let request = request.clone();
                async move { client.update_bucket(request).await.map(|r| r.into_inner()) }
            })
            .await;
        // Forgotten whatever the answer: a failed call may still have been applied.
        self.buckets.invalidate(bucket);
        let (response, _) = result?;
        response.bucket.ok_or_else(|| {
            FrontendError::Protocol("UpdateBucket answered without the bucket".into()).into()
        })
    }

    pub(crate) async fn put_bucket_cors_rules(
        &self,
        bucket: &str,
        rules: Vec<CorsRule>,
    ) -> S3Result<()> {
        self.update_bucket(
            bucket,
            update_bucket_request::Change::Cors(CorsRules { rules }),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str]) -> CORSRule {
        CORSRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn cors_rules_are_checked() {
        let good = CORSConfiguration {
            cors_rules: vec![rule(&["https://*.example.com"], &["GET", "PUT"])],
        };
        let rules = cors_rules_of(&good).unwrap();
        assert_eq!(rules[0].max_age_seconds, -1);
        assert_eq!(cors_xml(&rules)[0].allowed_methods, ["GET", "PUT"]);
        for bad in [
            vec![rule(&["*"], &["PATCH"])],
            vec![rule(&[], &["GET"])],
            vec![rule(&["http://*.*.com"], &["GET"])],
            vec![CORSRule {
                max_age_seconds: Some(-2),
                ..rule(&["*"], &["GET"])
            }],
            vec![],
        ] {
            assert!(cors_rules_of(&CORSConfiguration { cors_rules: bad }).is_err());
        }
    }
}
