//! Secrets out of logs: URLs (of the database, of Redis) with their password hidden.

/// `url` with its password, if any, replaced by `***`: fit for logs and error messages.
///
/// Covers the user-info part (`postgres://user:secret@host/db`, `redis://:secret@host`) and a
/// `password=` query parameter, the places a database or Redis URL can carry one.
pub fn redacted(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if let Some((user_info, host)) = authority.rsplit_once('@') {
            if let Some((user, _password)) = user_info.split_once(':') {
                let tail = &rest[authority.len()..];
                out = format!("{scheme}://{user}:***@{host}{tail}");
            }
        }
    }
    if let Some((base, query)) = out.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}?{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        for (url, shown) in [
            ("sse-demo.db", "sse-demo.db"),
            (
                "sqlite://data/app.db?mode=rwc",
                "sqlite://data/app.db?mode=rwc",
            ),
            ("postgres://ada@db:5432/app", "postgres://ada@db:5432/app"),
            (
                "postgres://ada:s3cr%40t@db:5432/app?sslmode=require",
                "postgres://ada:***@db:5432/app?sslmode=require",
            ),
            ("postgres://ada:p@ss@db/app", "postgres://ada:***@db/app"),
            (
                "redis://:s3cret@127.0.0.1:6379",
                "redis://:***@127.0.0.1:6379",
            ),
            (
                "postgresql://db/app?user=ada&password=x&x=1",
                "postgresql://db/app?user=ada&password=***&x=1",
            ),
        ] {
            assert_eq!(redacted(url), shown);
        }
    }
}
