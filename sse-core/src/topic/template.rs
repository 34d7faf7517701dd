//! Topic templates: `users/{id}` filled from an event's payload.

use serde_json::Value;

use super::selector::validate_topic;
use crate::error::InvalidTopic;
use crate::wire::rules::{parse_template, TemplatePart};

/// Fills a topic template such as `users/{id}` or `orders/{order.id}/items` from a payload.
/// `{field}` parts name a field of the payload, `{a.b}` a nested one; the value must be a
/// string, number or boolean, and a string must be non-empty and without `/`.
pub(crate) fn render(template: &str, payload: &Value) -> Result<String, InvalidTopic> {
    let parts = parse_template(template).map_err(|err| InvalidTopic::new(err.to_string()))?;
    let mut out = String::with_capacity(template.len() + 16);
    for part in parts {
        let path = match part {
            TemplatePart::Literal(text) => {
                out.push_str(text);
                continue;
            }
            TemplatePart::Field(path) => path,
        };
        let value = lookup(payload, path)
            .ok_or_else(|| InvalidTopic::new(format!("the payload has no field `{path}`")))?;
        match value {
            Value::String(s) if s.is_empty() || s.contains('/') => {
                return Err(InvalidTopic::new(format!(
                    "field `{path}` is {s:?}: a topic part must be non-empty and without `/`"
                )))
            }
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            other => {
                let kind = match other {
                    Value::Null => "null",
                    Value::Array(_) => "an array",
                    _ => "an object",
                };
                return Err(InvalidTopic::new(format!(
                    "field `{path}` is {kind}: a topic part must be a string, number or boolean"
                )));
            }
        }
    }
    validate_topic(&out)?;
    Ok(out)
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Whether a template has `{field}` parts (and so needs the payload as a JSON value).
pub(crate) fn has_fields(template: &str) -> bool {
    template.contains('{')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn templates() {
        let p = json!({"id": 42, "name": "ada", "order": {"id": "o-1"}, "ok": true, "n": null});
        assert_eq!(render("users/{id}", &p).unwrap(), "users/42");
        assert_eq!(render("o/{order.id}/{ok}", &p).unwrap(), "o/o-1/true");
        assert_eq!(render("static", &p).unwrap(), "static");
        for bad in ["users/{missing}", "{n}", "{order}", "a/{id", "a}", "{}"] {
            assert!(render(bad, &p).is_err(), "{bad}");
        }
        assert!(render("u/{name}", &json!({"name": "a/b"})).is_err());
    }
}
