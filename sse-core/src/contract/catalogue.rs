//! The event catalogue: every event the binary can publish, registered at link time by
//! `#[emit_event]` and `declare_event!`, with its payload type, schema, topic and flags.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::wire::rules::{parse_template, topic_text_problem, TemplatePart};
use crate::wire::validate_event_name;

/// Not public API: one event registration, made by the code `#[emit_event]` and
/// `declare_event!` generate.
#[doc(hidden)]
pub struct Registration {
    pub name: &'static str,
    pub topic: Option<&'static str>,
    pub private: bool,
    pub to_others: bool,
    /// `my_app::users::update` for a handler, the module for `declare_event!`.
    pub origin: &'static str,
    pub file: &'static str,
    pub line: u32,
    pub column: u32,
    /// Called when the catalogue is read, never at registration.
    pub payload: fn() -> PayloadInfo,
}

inventory::collect!(Registration);

/// Not public API: what is known of an event's payload type where it is registered.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct PayloadInfo {
    /// `std::any::type_name` of the payload; `None` where the macro cannot name it (a generic
    /// handler, a return type without one payload type).
    pub type_path: Option<&'static str>,
    /// Its JSON Schema (feature `schema`, payload types that implement `JsonSchema`).
    pub schema: Option<Value>,
}

/// One event in the [`Catalogue`]: what is published, where it goes, and where in the code it
/// is declared.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EventInfo {
    /// The event name (`event:` on the wire).
    pub name: &'static str,
    /// The payload type's path (`my_app::UserPublic`), if the macro could name it.
    pub payload_type: Option<&'static str>,
    /// The payload's JSON Schema (draft 7, serialization side), with feature `schema` for
    /// payload types that derive `schemars::JsonSchema`. References point to
    /// `#/components/schemas/<Name>`, defined under the schema's own `components.schemas`.
    pub schema: Option<Value>,
    /// The topic template (`users/{id}`); `None`: the topic is the event name.
    pub topic: Option<&'static str>,
    /// Only for subscribers authorized for the topic.
    pub private: bool,
    /// Not echoed to the stream of the client that made the request.
    pub to_others: bool,
    /// The handler (`my_app::users::update`), or the module of a `declare_event!`.
    pub origin: &'static str,
    /// Where the `#[emit_event]` or `declare_event!` is: `file:line:column`.
    pub location: Location,
}

/// A place in the source code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// As `file!()` gives it.
    pub file: &'static str,
    /// 1-based.
    pub line: u32,
    /// 1-based.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl EventInfo {
    /// The topic the event is published to: its template, or its name.
    pub fn topic_template(&self) -> &'static str {
        self.topic.unwrap_or(self.name)
    }

    /// The payload type's own name, without its module path (`UserPublic`), from the schema's
    /// title or the type path.
    pub fn payload_name(&self) -> Option<String> {
        if let Some(title) = self
            .schema
            .as_ref()
            .and_then(|s| s.get("title"))
            .and_then(Value::as_str)
        {
            return Some(title.to_owned());
        }
        self.payload_type.map(short_type_name)
    }
}

/// Every event this binary can publish: each `#[emit_event]` handler and each
/// `declare_event!` linked into it, sorted by event name, then by location.
///
/// ```
/// use sse_core::contract::Catalogue;
///
/// for event in Catalogue::linked().events() {
///     println!("{} on {} from {}", event.name, event.topic_template(), event.location);
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    events: Vec<EventInfo>,
}

impl Catalogue {
    /// Every event linked into this binary. The catalogue is made at link time, so it covers
    /// every handler, whichever `App` mounts it.
    pub fn linked() -> Catalogue {
        Catalogue::collect_once().clone()
    }

    /// The catalogue, read once: registrations do not change after the program starts.
    pub(super) fn collect_once() -> &'static Catalogue {
        static CATALOGUE: std::sync::OnceLock<Catalogue> = std::sync::OnceLock::new();
        CATALOGUE.get_or_init(Catalogue::collect)
    }

    fn collect() -> Self {
        let mut events: Vec<EventInfo> = inventory::iter::<Registration>
            .into_iter()
            .map(|r| {
                let payload = (r.payload)();
                EventInfo {
                    name: r.name,
                    payload_type: payload.type_path,
                    schema: payload.schema,
                    topic: r.topic,
                    private: r.private,
                    to_others: r.to_others,
                    origin: r.origin,
                    location: Location {
                        file: r.file,
                        line: r.line,
                        column: r.column,
                    },
                }
            })
            .collect();
        events.sort_by(|a, b| (a.name, a.location).cmp(&(b.name, b.location)));
        Self { events }
    }

    /// A catalogue of these events, for tests of code that reads catalogues.
    pub fn from_events(mut events: Vec<EventInfo>) -> Self {
        events.sort_by(|a, b| (a.name, a.location).cmp(&(b.name, b.location)));
        Self { events }
    }

    /// The events, sorted by name then location; an event published from several places is
    /// listed once per place.
    pub fn events(&self) -> &[EventInfo] {
        &self.events
    }

    /// One entry per event name: the first place it is published from.
    pub fn distinct(&self) -> impl Iterator<Item = &EventInfo> {
        let mut last = None;
        self.events.iter().filter(move |e| {
            let new = last != Some(e.name);
            last = Some(e.name);
            new
        })
    }

    /// Only the events for which `keep` is true (say, those of one module).
    pub fn filter(mut self, keep: impl Fn(&EventInfo) -> bool) -> Self {
        self.events.retain(keep);
        self
    }

    /// What is wrong with the catalogue: an event name published with two different payloads
    /// or both privately and publicly, an invalid event name or topic template (from
    /// `declare_event!`, which cannot check them at compile time), a topic template
    /// naming a field its payload's schema does not have, and, with feature `schema`, a
    /// payload type without a schema. Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut by_name: BTreeMap<&str, Vec<&EventInfo>> = BTreeMap::new();
        for event in &self.events {
            by_name.entry(event.name).or_default().push(event);
            if let Err(err) = validate_event_name(event.name) {
                problems.push(format!("{} ({}): {err}", event.name, event.location));
            }
            if let Some(problem) = schema_problem(event) {
                problems.push(format!(
                    "event `{}` ({}): {problem}",
                    event.name, event.location
                ));
            }
            if let Some(problem) = topic_problem(event) {
                problems.push(format!(
                    "event `{}` ({}): topic template {:?}: {problem}",
                    event.name,
                    event.location,
                    event.topic_template()
                ));
            }
        }
        for (name, events) in by_name {
            let first = events[0];
            for other in &events[1..] {
                if !same_payload(first, other) {
                    problems.push(format!(
                        "event `{name}` is published with two different payloads:\n  {} at {}: {}\n  {} at {}: {}",
                        first.origin,
                        first.location,
                        describe_payload(first),
                        other.origin,
                        other.location,
                        describe_payload(other),
                    ));
                }
                if first.private != other.private {
                    let privacy = |e: &EventInfo| if e.private { "private" } else { "public" };
                    problems.push(format!(
                        "event `{name}` is {} at {} ({}) but {} at {} ({})",
                        privacy(first),
                        first.location,
                        first.origin,
                        privacy(other),
                        other.location,
                        other.origin,
                    ));
                }
            }
        }
        problems
    }
}

/// Two registrations publish the same payload when their schemas are equal, or, without
/// schemas, their payload types.
fn same_payload(a: &EventInfo, b: &EventInfo) -> bool {
    match (&a.schema, &b.schema) {
        (Some(x), Some(y)) => x == y,
        _ => match (a.payload_type, b.payload_type) {
            (Some(x), Some(y)) => x == y,
            // One side unknown: nothing to compare.
            _ => true,
        },
    }
}

fn describe_payload(event: &EventInfo) -> String {
    let ty = event.payload_type.unwrap_or("(payload type unknown)");
    match &event.schema {
        Some(schema) => format!("{ty}, schema {schema}"),
        None => ty.to_owned(),
    }
}

/// With feature `schema`, a payload type without a schema: the documents can only call it
/// `unknown`, and its topic template cannot be checked. Said nowhere else: the probe falls
/// back silently so that turning the feature on never breaks a build.
fn schema_problem(event: &EventInfo) -> Option<String> {
    if !cfg!(feature = "schema") || event.schema.is_some() {
        return None;
    }
    // A payload the macro cannot name (a custom `EventPayload`) has nothing to derive on.
    let ty = event.payload_type?;
    Some(format!(
        "the payload `{ty}` has no JSON Schema, so the AsyncAPI document and events.d.ts call \
         it `unknown` and its topic template cannot be checked: derive \
         `schemars::JsonSchema` on it, from schemars 1.x (a derive from schemars 0.8 \
         implements another trait, which is not seen)"
    ))
}

/// A template that cannot be parsed, or names a field its payload's schema lacks.
fn topic_problem(event: &EventInfo) -> Option<String> {
    let template = event.topic?;
    if let Some(problem) = topic_text_problem(template) {
        return Some(problem.describe("the topic template"));
    }
    let fields = match parse_template(template) {
        Ok(parts) => parts.into_iter().filter_map(|part| match part {
            TemplatePart::Field(path) => Some(path),
            TemplatePart::Literal(_) => None,
        }),
        Err(err) => return Some(err.to_string()),
    };
    let schema = event.schema.as_ref()?;
    fields.into_iter().find_map(|path| {
        let mut at = schema;
        for part in path.split('.') {
            match field(schema, at, part, 0) {
                Some(next) => at = next,
                None => {
                    return Some(format!(
                        "the payload ({}) has no field `{path}`: every event would fail to \
                         publish",
                        event.payload_name().unwrap_or_default()
                    ))
                }
            }
        }
        None
    })
}

/// The schema of the field `name` of what `schema` describes: one of its `properties`, or of
/// one of its `anyOf`/`oneOf`/`allOf` alternatives (an `Option` of a struct, an enum).
fn field<'v>(root: &'v Value, schema: &'v Value, name: &str, depth: u8) -> Option<&'v Value> {
    // Bounded: a schema that refers to itself through alternatives must not loop.
    if depth > 8 {
        return None;
    }
    let schema = resolve(root, schema);
    if let Some(found) = schema.get("properties").and_then(|p| p.get(name)) {
        return Some(found);
    }
    ["anyOf", "oneOf", "allOf"]
        .iter()
        .filter_map(|key| schema.get(*key).and_then(Value::as_array))
        .flatten()
        .find_map(|alternative| field(root, alternative, name, depth + 1))
}

/// Follows a local `$ref` (`#/components/schemas/X`) inside `root`.
pub(super) fn resolve<'v>(root: &'v Value, schema: &'v Value) -> &'v Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or(schema),
        None => schema,
    }
}

/// `my_app::users::UserPublic` → `UserPublic`; `alloc::vec::Vec<my_app::User>` → `Vec`.
pub(super) fn short_type_name(path: &str) -> String {
    let head = path.split('<').next().unwrap_or(path);
    head.rsplit("::").next().unwrap_or(head).to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(payload_type: Option<&'static str>, schema: Option<Value>) -> EventInfo {
        EventInfo {
            name: "user_updated",
            payload_type,
            schema,
            topic: Some("users/{id}/{owner.name}"),
            private: false,
            to_others: false,
            origin: "app::update",
            location: Location {
                file: "src/app.rs",
                line: 3,
                column: 1,
            },
        }
    }

    #[cfg(feature = "schema")]
    #[test]
    fn a_payload_without_a_schema_is_reported_with_a_hint() {
        let problems =
            Catalogue::from_events(vec![event(Some("app::UserPublic"), None)]).problems();
        let problem = problems
            .iter()
            .find(|p| p.contains("app::UserPublic"))
            .unwrap_or_else(|| panic!("not reported: {problems:#?}"));
        assert!(problem.contains("src/app.rs:3:1"), "{problem}");
        assert!(problem.contains("schemars::JsonSchema"), "{problem}");
        assert!(problem.contains("schemars 1"), "{problem}");
    }

    #[test]
    fn a_payload_of_unknown_type_is_not_reported() {
        // A custom `EventPayload` or an `Either` of payloads: nothing the user could derive.
        let problems = Catalogue::from_events(vec![event(None, None)]).problems();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_template_field_the_schema_lacks_is_reported() {
        let schema = json!({
            "title": "UserPublic",
            "type": "object",
            "properties": {
                "id": { "type": "integer" },
                "owner": { "$ref": "#/components/schemas/Owner" },
            },
            "components": { "schemas": {
                "Owner": { "type": "object", "properties": { "login": { "type": "string" } } },
            } },
        });
        let problems =
            Catalogue::from_events(vec![event(Some("app::UserPublic"), Some(schema))]).problems();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("no field `owner.name`"),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_template_field_behind_an_option_is_found() {
        // `Option<Owner>` in schemars 1: `anyOf` of the reference and `null`.
        let schema = json!({
            "title": "UserPublic",
            "type": "object",
            "properties": {
                "id": { "type": "integer" },
                "owner": { "anyOf": [{ "$ref": "#/components/schemas/Owner" }, { "type": "null" }] },
            },
            "components": { "schemas": {
                "Owner": { "type": "object", "properties": { "name": { "type": "string" } } },
            } },
        });
        let problems =
            Catalogue::from_events(vec![event(Some("app::UserPublic"), Some(schema))]).problems();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
