//! [`redact_url`]: connection URLs safe to show in logs, errors and `Debug` output.

use std::borrow::Cow;

use url::Url;

/// `url` with its password (`user:password@`, or a `pass`/`password` query parameter)
/// replaced by `***`, for logs, error messages and `Debug` output.
///
/// A password is hidden wherever it is, also when it holds `/`, `?`, `#` or `@` unescaped
/// (base64 passwords often hold `/`), and also when `url` does not parse: then, or when an `@`
/// after the host leaves it unclear where the user info ends, everything from the scheme to
/// the last `@` is hidden.
///
/// ```
/// assert_eq!(
///     sse_core::engine::redact_url("rediss://app:s3cret@cache.example:6380/0"),
///     "rediss://app:***@cache.example:6380/0"
/// );
/// assert_eq!(
///     sse_core::engine::redact_url("redis://:c2Vj/cmV0@cache.example"),
///     "redis://***@cache.example"
/// );
/// assert_eq!(sse_core::engine::redact_url("redis://127.0.0.1"), "redis://127.0.0.1");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    match Url::parse(url) {
        // An `@` after the host: it may end user info that the parser cut short at a `/`,
        // `?` or `#` of the password (`redis://u:12/34@h` parses as host `u`, port 12).
        Ok(parsed) if !has_at_after_authority(&parsed) => redact_parsed(url, parsed),
        _ => hide_userinfo(url),
    }
}

fn has_at_after_authority(url: &Url) -> bool {
    url.path().contains('@')
        || url.query().is_some_and(|q| q.contains('@'))
        || url.fragment().is_some_and(|f| f.contains('@'))
}

/// A URL whose parts are unambiguous: its password and secret query values replaced; `url`
/// itself when it holds neither (the parser's normal form is only shown when it must be).
fn redact_parsed(url: &str, mut parsed: Url) -> Cow<'_, str> {
    // User info without a password may be a secret itself: a NATS token
    // (`nats://TOKEN@host`), or `user:password@host` without a scheme, which parses as the
    // scheme `user` and the user name `//password`.
    if parsed.password().is_none() && !parsed.username().is_empty() {
        return hide_userinfo(url);
    }
    let mut changed = false;
    if parsed.password().is_some() {
        if parsed.set_password(Some("***")).is_err() {
            return hide_userinfo(url);
        }
        changed = true;
    }
    // The query and fragment together: an unescaped `#` in a query password would otherwise
    // leave the password's end in the fragment.
    let tail = match (parsed.query(), parsed.fragment()) {
        (None, None) => String::new(),
        (query, fragment) => {
            let query = query.map_or(String::new(), |q| format!("?{q}"));
            let fragment = fragment.map_or(String::new(), |f| format!("#{f}"));
            query + &fragment
        }
    };
    let tail = match redact_pairs(&tail) {
        Cow::Borrowed(_) if !changed => return Cow::Borrowed(url),
        Cow::Borrowed(_) => return Cow::Owned(parsed.into()),
        Cow::Owned(tail) => tail,
    };
    parsed.set_query(None);
    parsed.set_fragment(None);
    Cow::Owned(String::from(parsed) + &tail)
}

/// `url` with everything between its scheme's `://` (or its start) and its last `@` hidden:
/// for a URL that does not parse, or whose user info may hold `/`, `?` or `#`; no `@` can
/// follow a password, so whatever the URL meant, the password is not shown.
pub(crate) fn hide_userinfo(url: &str) -> Cow<'_, str> {
    let (scheme, rest) = url.split_at(authority_start(url));
    let Some(at) = rest.rfind('@') else {
        return redact_pairs(url);
    };
    let (hidden, shown) = (&rest[..at], &rest[at + 1..]);
    // The `@` may be inside a query password (`?pass=a@b`): what follows is its end.
    let last_pair = hidden.rsplit('&').next().unwrap_or(hidden);
    if matches!(redact_pairs(last_pair), Cow::Owned(_)) {
        return Cow::Owned(format!("{scheme}***"));
    }
    Cow::Owned(format!("{scheme}***@{}", redact_pairs(shown)))
}

/// Where the authority starts: after a `scheme://` prefix, or at 0.
fn authority_start(url: &str) -> usize {
    let Some(end) = url.find("://") else {
        return 0;
    };
    let scheme = &url[..end];
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        end + 3
    } else {
        0
    }
}

/// `text` with the values of its `pass` and `password` parameters replaced. A key may start
/// the text or follow any `?` or `&` (so a query that begins inside hidden user info is still
/// read); a value runs to the next `&`, past any `?` or `#` it holds.
fn redact_pairs(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    // `text[..copied]` is in `out`.
    let mut copied = 0;
    let mut key = 0;
    loop {
        if let Some(len) = secret_key_len(&text[key..]) {
            let value = key + len;
            let end = text[value..].find('&').map_or(text.len(), |e| value + e);
            out.push_str(&text[copied..value]);
            out.push_str("***");
            copied = end;
            key = end;
        }
        match text[key..].find(['?', '&']) {
            Some(sep) => key += sep + 1,
            None => break,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The length of `pass=` or `password=` (any case) when `s` starts with one.
fn secret_key_len(s: &str) -> Option<usize> {
    ["pass=", "password="].into_iter().find_map(|key| {
        s.get(..key.len())
            .filter(|start| start.eq_ignore_ascii_case(key))
            .map(|_| key.len())
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::redact_url;

    #[test]
    fn passwords_are_hidden_and_the_rest_kept() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://u:p@h:1/2", "redis://u:***@h:1/2"),
            ("rediss://:p@h", "rediss://:***@h"),
            ("redis://u:p@ss@h/0?x=1", "redis://u:***@h/0?x=1"),
            (
                "postgres://app:s3cret@db.example:5432/app",
                "postgres://app:***@db.example:5432/app",
            ),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=p&user=u",
                "redis+unix:///tmp/r.sock?db=1&pass=***&user=u",
            ),
            ("redis://h?password=p", "redis://h?password=***"),
            ("redis://h?password=p#q&x=1", "redis://h?password=***&x=1"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_user_without_a_password_may_be_a_token_and_is_hidden() {
        for (url, shown) in [
            ("nats://s3cr3t-token@h:4222", "nats://***@h:4222"),
            ("redis://user@h", "redis://***@h"),
            // `user:password@host` without a scheme: `a` reads as the scheme.
            ("a://00==@127.0.0.1", "a://***@127.0.0.1"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn when_the_user_info_may_run_further_everything_up_to_the_last_at_is_hidden() {
        for (url, shown) in [
            ("redis://app:12/34@h:6379/0", "redis://***@h:6379/0"),
            ("u:p@h", "***@h"),
            ("redis://h/0#u:p@x", "redis://***@x"),
            (
                "redis://h/0?x=a@b&password=zz",
                "redis://***@b&password=***",
            ),
            (
                "redis://u:pa?ss@h/0?password=x",
                "redis://***@h/0?password=***",
            ),
            ("redis+unix:///tmp/r.sock?pass=a@b", "redis+unix://***"),
            ("redis://u:p@[::1/0", "redis://***@[::1/0"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_password_holding_a_slash_question_mark_or_hash_is_hidden() {
        for (url, secret) in [
            // Base64 passwords often hold `/`; a URL parser then ends the host at it.
            (
                "redis://:c2VjcmV0/K2x+Zm9v==@cache.example:6380/0",
                "K2x+Zm9v",
            ),
            ("redis://app:12/34@h:6379", "12/34"),
            ("redis://u:pa?ss@h", "pa?ss"),
            ("redis://u:pa#ss@h", "pa#ss"),
            ("redis://u:a@b/c@h", "b/c"),
            ("nats://u:6379?protocol=leak@h", "leak"),
            ("u:se/cret@h:6379", "se/cret"),
            ("redis+unix:///tmp/r.sock?pass=a@b", "a@b"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
        }
        // What is not secret is still shown.
        assert_eq!(
            redact_url("redis://:c2VjcmV0/K2x+Zm9v==@cache.example:6380/0"),
            "redis://***@cache.example:6380/0"
        );
    }

    /// Characters a hand-typed or generated password holds: the two base64 alphabets and
    /// those that end a URL's authority or user info.
    const PASSWORD: &str = "[A-Za-z0-9+/=_/?#@:%-]{6,24}";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_password_is_ever_shown(
            password in PASSWORD,
            user in "[a-z]{0,6}",
            scheme in prop::sample::select(vec!["redis", "rediss", "nats", "postgres", "tls"]),
            host in prop::sample::select(vec!["127.0.0.1", "cache.example", "[::1]"]),
            port in prop::option::of(1u16..),
            tail in prop::sample::select(vec!["", "/", "/0", "/app?sslmode=require", "?x=1#f"]),
            with_scheme in any::<bool>(),
        ) {
            let port = port.map_or(String::new(), |p| format!(":{p}"));
            let before = if with_scheme { format!("{scheme}://{user}:") } else { format!("{user}:") };
            let after = format!("@{host}{port}{tail}");
            // A password that the rest of the URL holds anyway is not told apart.
            prop_assume!(!before.contains(&password) && !after.contains(&password));
            let url = format!("{before}{password}{after}");
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&password), "{} shown as {}", url, shown);
        }

        #[test]
        fn no_query_password_is_ever_shown(
            password in "[A-Za-z0-9+/=_/?@:%-]{6,24}",
            key in prop::sample::select(vec!["pass", "password", "PASSWORD"]),
            before in prop::sample::select(vec!["", "db=1&"]),
            after in prop::sample::select(vec!["", "&user=u"]),
        ) {
            let url = format!("redis+unix:///tmp/r.sock?{before}{key}={password}{after}");
            prop_assume!(!url.replacen(&password, "", 1).contains(&password));
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&password), "{} shown as {}", url, shown);
        }
    }
}
