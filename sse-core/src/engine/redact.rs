//! [`redact_url`]: connection URLs safe to show in logs, errors and `Debug` output.

use std::borrow::Cow;

/// `url` with its password (`user:password@`, or a `pass`/`password` query parameter)
/// replaced by `***`, for logs, error messages and `Debug` output.
///
/// ```
/// assert_eq!(
///     sse_core::engine::redact_url("rediss://app:s3cret@cache.example:6380/0"),
///     "rediss://app:***@cache.example:6380/0"
/// );
/// assert_eq!(sse_core::engine::redact_url("redis://127.0.0.1"), "redis://127.0.0.1");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let (before, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    // The last `@`: a password may hold an unescaped one, a host never does.
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => Cow::Owned(format!("{user}:***@{host}")),
            None => Cow::Borrowed(authority),
        },
        None => Cow::Borrowed(authority),
    };
    let path = redact_query(path);
    if matches!((&authority, &path), (Cow::Borrowed(_), Cow::Borrowed(_))) {
        return Cow::Borrowed(url);
    }
    Cow::Owned(format!("{before}{authority}{path}"))
}

/// `path?query#fragment` with the values of `pass` and `password` replaced.
fn redact_query(path: &str) -> Cow<'_, str> {
    let Some((path_only, query)) = path.split_once('?') else {
        return Cow::Borrowed(path);
    };
    let (query, fragment) = match query.find('#') {
        Some(i) => query.split_at(i),
        None => (query, ""),
    };
    let secret = |pair: &str| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        key.eq_ignore_ascii_case("pass") || key.eq_ignore_ascii_case("password")
    };
    if !query.split('&').any(secret) {
        return Cow::Borrowed(path);
    }
    let query: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if secret(pair) => Cow::Owned(format!("{key}=***")),
            _ => Cow::Borrowed(pair),
        })
        .collect();
    Cow::Owned(format!("{path_only}?{}{fragment}", query.join("&")))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_and_the_rest_kept() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://u:p@h:1/2", "redis://u:***@h:1/2"),
            ("rediss://:p@h", "rediss://:***@h"),
            ("redis://user@h", "redis://user@h"),
            ("redis://u:p@ss@h/0?x=1", "redis://u:***@h/0?x=1"),
            ("redis://h/0#u:p@x", "redis://h/0#u:p@x"),
            ("u:p@h", "u:***@h"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=p&user=u",
                "redis+unix:///tmp/r.sock?db=1&pass=***&user=u",
            ),
            ("redis://h?password=p", "redis://h?password=***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
