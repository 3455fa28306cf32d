//! Strings compared on hot paths: map keys and context parts.
//!
//! An empty `String` or `Box<str>` — and the literal `""` — points at a
//! dangling address, and glibc's AVX-512 `memcmp`, which comparing two
//! `str`s calls even for length 0, issues a masked load there whose
//! suppressed fault costs 80–130 ns on our machines (measured in isolation).
//! It doubled the cost of fingerprinting a bare message in one version and
//! made logs without a version replay 30 % slower through the per-line rate
//! lookups (docs/benchmarks.md). Every hot comparison that can meet an empty
//! string goes through here.

/// `a == b`, lengths first, so an empty string never reaches `memcmp`.
pub fn eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// An owned copy of `s` for a map searched by `Ord` on the hot path: one
/// byte of capacity gives an empty key a real address.
pub fn owned(s: &str) -> String {
    let mut k = String::with_capacity(s.len().max(1));
    k.push_str(s);
    k
}

/// `s` to look up in such a map: an empty `s` becomes an empty slice at a
/// real address.
pub fn lookup(s: &str) -> &str {
    if s.is_empty() { &" "[..0] } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_keys_compare_equal_and_have_real_addresses() {
        assert!(eq("", String::new().as_str()));
        assert!(eq("api", "api"));
        assert!(!eq("api", "apx"));
        assert!(!eq("", "a"));
        assert!(owned("").capacity() >= 1);
        assert_eq!(owned("1.2"), "1.2");
        assert!(!std::ptr::eq(lookup("").as_ptr(), "".as_ptr()));
        assert_eq!(lookup(""), "");
        assert_eq!(lookup("1.2"), "1.2");
    }
}
