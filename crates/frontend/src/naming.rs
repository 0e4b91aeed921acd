//! S3 bucket naming rules (general purpose buckets): 3-63 characters of lowercase letters,
//! digits, dots and hyphens; starting and ending with a letter or digit; no two adjacent dots;
//! not formatted as an IPv4 address.

pub fn is_valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if !(3..=63).contains(&bytes.len()) {
        return false;
    }
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-';
    if !bytes.iter().all(allowed) {
        return false;
    }
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alphanumeric(bytes[0]) || !alphanumeric(bytes[bytes.len() - 1]) {
        return false;
    }
    if name.contains("..") {
        return false;
    }
    name.parse::<std::net::Ipv4Addr>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_name_table() {
        let table: &[(&str, bool)] = &[
            ("abc", true),
            ("my-bucket.photos", true),
            ("a1b", true),
            ("1bucket", true),
            (&"a".repeat(63), true),
            ("ab", false),
            (&"a".repeat(64), false),
            ("", false),
            ("MyBucket", false),
            ("my_bucket", false),
            ("-bucket", false),
            ("bucket-", false),
            (".bucket", false),
            ("bucket.", false),
            ("my..bucket", false),
            ("192.168.5.4", false),
            ("192.168.5.256", true),
            ("bücket", false),
            ("a b", false),
            ("a/b", false),
        ];
        for (name, valid) in table {
            assert_eq!(is_valid_bucket_name(name), *valid, "{name:?}");
        }
    }
}
