//! The AsyncAPI 3.0 document of a catalogue: the stream as the server, one channel per topic
//! template, one message per event.

use serde_json::{json, Map, Value};

use super::catalogue::{Catalogue, EventInfo};
use crate::auth::Authorize;
use crate::topic::syntax;
use crate::wire::rules::{parse_template, TemplatePart};

/// Where the stream is, and how the document names the API, for [`Catalogue::asyncapi`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StreamServer {
    /// `info.title`.
    pub title: String,
    /// `info.version`: the version of your API.
    pub version: String,
    /// `http` or `https`.
    pub protocol: String,
    /// `host[:port]`.
    pub host: String,
    /// The stream's path, like `/api/sse/stream`.
    pub path: String,
    /// AsyncAPI security schemes, by name, of the credentials the stream accepts for private
    /// topics (any one of them): see [`StreamServer::authorized_by`]. Empty: the document
    /// advertises none.
    pub security: Map<String, Value>,
}

impl StreamServer {
    /// The stream at `protocol://host{path}`, titled "Server-Sent Events", version `0.0.0`,
    /// without security schemes.
    pub fn new(protocol: &str, host: &str, path: &str) -> Self {
        Self {
            title: "Server-Sent Events".to_owned(),
            version: "0.0.0".to_owned(),
            protocol: protocol.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
            security: Map::new(),
        }
    }

    /// Sets `info.title` and `info.version`.
    pub fn titled(mut self, title: &str, version: &str) -> Self {
        title.clone_into(&mut self.title);
        version.clone_into(&mut self.version);
        self
    }

    /// Advertises the credentials `authorizer` reads
    /// ([`Authorize::security_schemes`]), as the served document does for the authorizer set
    /// on the broadcaster:
    ///
    /// ```
    /// # #[cfg(feature = "jwt")] {
    /// use sse_core::{auth::JwtAuth, contract::StreamServer};
    ///
    /// let auth = JwtAuth::hs256(b"a secret of at least 32 bytes, please");
    /// let server = StreamServer::new("https", "api.example.com", "/api/sse/stream")
    ///     .authorized_by(&auth);
    /// assert!(server.security.contains_key("bearer"));
    /// # }
    /// ```
    pub fn authorized_by(mut self, authorizer: &(impl Authorize + ?Sized)) -> Self {
        self.security = authorizer.security_schemes();
        self
    }
}

const ABOUT_EVENTS: &str = "\
Server-Sent Events (`text/event-stream`), read with `GET` on the server's path. Each event has an \
`id:` line (`<epoch>-<seq>`), an `event:` line (the message name) and `data:` lines (the payload as \
JSON).";

const ABOUT_RESUMING: &str = "\
To resume, reconnect with the `Last-Event-ID` header (or `?lastEventId=`) set to the last id seen: \
every event after it is replayed in order, then live events. When that is impossible, an \
`sse-reset` event (`{\"reason\": ...}`) tells the client to refetch its state.";

/// `info.description`: the wire format, the selector syntax (from the parser's own table of
/// examples), resuming, and private events.
fn description(server: &StreamServer) -> String {
    let private = if server.security.is_empty() {
        "Private events reach only subscribers whose credentials allow their topic."
    } else {
        "Private events reach only subscribers whose credentials (see the security schemes) \
         allow their topic: a private topic selector is refused with 401 without credentials, \
         with 403 when they do not allow it."
    };
    format!(
        "{ABOUT_EVENTS}\n\n{}\n\n{ABOUT_RESUMING}\n\n{private}",
        syntax::describe()
    )
}

impl Catalogue {
    /// The AsyncAPI 3.0 document of these events, served at `{path}/asyncapi.json` by
    /// [`Broadcaster::service`](crate::Broadcaster::service). Each payload schema is defined
    /// once under `components.schemas`, which messages reference; security schemes are those
    /// of `server` (see [`StreamServer::authorized_by`]).
    pub fn asyncapi(&self, server: &StreamServer) -> Value {
        let mut channels = Map::new();
        let mut operations = Map::new();
        let mut messages = Map::new();
        let mut schemas = Map::new();
        let security: Vec<Value> = server
            .security
            .keys()
            .map(|name| json!({ "$ref": format!("#/components/securitySchemes/{name}") }))
            .collect();
        for event in self.distinct() {
            let channel_id = channel_id(event.topic_template());
            let channel = channels
                .entry(channel_id.clone())
                .or_insert_with(|| channel(event.topic_template()));
            channel["messages"][event.name] =
                json!({ "$ref": format!("#/components/messages/{}", event.name) });
            messages.insert(event.name.to_owned(), message(event, &mut schemas));
            let mut operation = json!({
                "action": "receive",
                "channel": { "$ref": format!("#/channels/{channel_id}") },
                "messages": [{ "$ref": format!("#/channels/{channel_id}/messages/{}", event.name) }],
                "summary": format!("`{}` events from {}", event.name, event.origin),
            });
            if event.private && !security.is_empty() {
                operation["security"] = Value::Array(security.clone());
            }
            operations.insert(format!("receive_{}", event.name), operation);
        }
        let mut components = json!({ "messages": messages, "schemas": schemas });
        if !server.security.is_empty() {
            components["securitySchemes"] = Value::Object(server.security.clone());
        }
        json!({
            "asyncapi": "3.0.0",
            "info": {
                "title": server.title,
                "version": server.version,
                "description": description(server),
            },
            "defaultContentType": "application/json",
            "servers": {
                "stream": {
                    "host": server.host,
                    "protocol": server.protocol,
                    "pathname": server.path,
                    "description": "The event stream: `GET` with `Accept: text/event-stream`.",
                }
            },
            "channels": channels,
            "operations": operations,
            "components": components,
        })
    }
}

/// A channel id: the template's runs of characters other than letters, digits, `-` and `_`
/// made one `_` (`users/{id}/private` → `users_id_private`).
fn channel_id(template: &str) -> String {
    let mut id = String::with_capacity(template.len());
    for c in template.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('_') {
            id.push('_');
        }
    }
    id.trim_end_matches('_').to_owned()
}

/// A channel for a topic template; `{a.b}` becomes the parameter `a_b`.
fn channel(template: &str) -> Value {
    let mut address = String::new();
    let mut parameters = Map::new();
    for part in parse_template(template).unwrap_or_default() {
        match part {
            TemplatePart::Literal(text) => address.push_str(text),
            TemplatePart::Field(path) => {
                let name = path.replace('.', "_");
                address.push_str(&format!("{{{name}}}"));
                parameters.insert(
                    name,
                    json!({ "description": format!("The payload's `{path}` field.") }),
                );
            }
        }
    }
    let mut channel = json!({
        "address": address,
        "description": format!("Topic `{template}`: subscribe with `?topic=` and a selector \
                                matching it."),
        "messages": {},
    });
    if !parameters.is_empty() {
        channel["parameters"] = Value::Object(parameters);
    }
    channel
}

fn message(event: &EventInfo, schemas: &mut Map<String, Value>) -> Value {
    let mut message = json!({
        "name": event.name,
        "contentType": "application/json",
        "summary": format!(
            "{} event{}",
            if event.private { "A private" } else { "A public" },
            if event.to_others { ", not echoed to the client that caused it" } else { "" },
        ),
    });
    if let Some(title) = event.payload_name() {
        message["title"] = Value::String(title);
    }
    if let Some(payload) = payload(event, schemas) {
        message["payload"] = payload;
    }
    message
}

/// The event's payload schema for its message: a `$ref` to its one definition under
/// `components.schemas` (added there, with the definitions it refers to), or the schema
/// itself when nothing names it.
fn payload(event: &EventInfo, schemas: &mut Map<String, Value>) -> Option<Value> {
    let mut schema = event.schema.clone()?;
    // Definitions are shared by the whole document, under the path their `$ref`s use.
    if let Some(Value::Object(defs)) = schema
        .as_object_mut()
        .and_then(|o| o.remove("components"))
        .and_then(|mut c| c.as_object_mut().and_then(|c| c.remove("schemas")))
    {
        for (name, def) in defs {
            schemas.entry(name).or_insert(def);
        }
    }
    let Some(base) = event.payload_name().map(|n| component_name(&n)) else {
        return Some(schema);
    };
    // Two payload types of one name but different schemas (`a::User`, `b::User`) each get
    // their own entry; the same schema from several events, one.
    let mut name = base.clone();
    for n in 2.. {
        match schemas.get(&name) {
            None => {
                schemas.insert(name.clone(), schema);
                break;
            }
            Some(existing) if *existing == schema => break,
            Some(_) => name = format!("{base}_{n}"),
        }
    }
    Some(json!({ "$ref": format!("#/components/schemas/{name}") }))
}

/// A key of `components.schemas`, which AsyncAPI limits to letters, digits, `.`, `-` and `_`.
fn component_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{syntax, TopicSelector};

    fn description() -> String {
        let server = StreamServer::new("http", "example.test", "/events");
        let doc = Catalogue::default().asyncapi(&server);
        doc["info"]["description"]
            .as_str()
            .expect("a description")
            .to_owned()
    }

    /// The words between backticks in `text`.
    fn quoted(text: &str) -> Vec<&str> {
        text.split('`').skip(1).step_by(2).collect()
    }

    /// A client that follows the document must get what it reads: every selector shown as
    /// valid parses and matches the topics shown with it, and none shown as refused parses.
    #[test]
    fn the_selectors_the_document_shows_are_the_parsers() {
        let text = description();
        let paragraphs: Vec<&str> = text.split("\n\n").collect();
        let at = paragraphs
            .iter()
            .position(|p| p.contains("?topic="))
            .expect("a paragraph on `?topic=`");
        let valid = paragraphs[at];
        let refused = paragraphs
            .get(at + 1)
            .filter(|p| p.starts_with("Refused"))
            .copied()
            .unwrap_or_default();
        for token in quoted(valid) {
            if token.contains(['*', '{', '}']) {
                assert!(
                    TopicSelector::parse(token).is_ok(),
                    "the document shows `{token}` as a selector, but the parser refuses it:\n{valid}"
                );
            }
        }
        for line in valid.lines().filter(|l| l.starts_with("- `")) {
            let selector = TopicSelector::parse(quoted(line)[0]).expect("parses");
            let (_, claims) = line.split_once(" matches ").expect("`matches`");
            let (hits, misses) = claims.split_once("; not ").unwrap_or((claims, ""));
            for topic in quoted(hits) {
                assert!(selector.matches(topic), "{line}: {topic}");
            }
            for topic in quoted(misses) {
                assert!(!selector.matches(topic), "{line}: {topic}");
            }
        }
        for line in refused.lines().filter(|l| l.starts_with("- `")) {
            let token = quoted(line)[0];
            assert!(TopicSelector::parse(token).is_err(), "`{token}` parses");
        }
    }

    #[test]
    fn the_selector_syntax_is_described_from_the_parsers_table() {
        let text = description();
        assert!(
            text.contains(&syntax::describe()),
            "the description does not show the selector table:\n{text}"
        );
    }

    fn event(name: &'static str, private: bool, schema: Value) -> EventInfo {
        EventInfo {
            name,
            payload_type: None,
            schema: Some(schema),
            topic: Some("users/{id}"),
            private,
            to_others: false,
            origin: "app::handler",
            location: crate::contract::Location {
                file: "src/app.rs",
                line: 1,
                column: 1,
            },
        }
    }

    fn user_public() -> Value {
        json!({
            "title": "UserPublic",
            "description": "the public fields",
            "type": "object",
            "properties": { "id": { "type": "integer" }, "home": { "$ref": "#/components/schemas/Address" } },
            "required": ["id"],
            "components": { "schemas": { "Address": { "type": "string", "description": "an address" } } },
        })
    }

    #[test]
    fn each_payload_schema_is_defined_once_in_components_and_referenced() {
        let catalogue = Catalogue::from_events(vec![
            event("user_created", false, user_public()),
            event("user_updated", false, user_public()),
            event("user_renamed", false, user_public()),
        ]);
        let doc = catalogue.asyncapi(&StreamServer::new("http", "example.test", "/events"));
        let text = doc.to_string();
        assert_eq!(text.matches("the public fields").count(), 1, "{text}");
        assert_eq!(text.matches("an address").count(), 1, "{text}");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["UserPublic"]["properties"]["id"]["type"], "integer");
        assert!(schemas["UserPublic"].get("components").is_none());
        assert_eq!(schemas["Address"]["type"], "string");
        for name in ["user_created", "user_updated", "user_renamed"] {
            assert_eq!(
                doc["components"]["messages"][name]["payload"],
                json!({ "$ref": "#/components/schemas/UserPublic" }),
            );
        }
    }

    #[test]
    fn no_security_scheme_is_advertised_without_an_authorizer() {
        let catalogue = Catalogue::from_events(vec![event("email_changed", true, user_public())]);
        let doc = catalogue.asyncapi(&StreamServer::new("http", "example.test", "/events"));
        assert!(
            doc["components"].get("securitySchemes").is_none(),
            "{doc:#}"
        );
        let operation = &doc["operations"]["receive_email_changed"];
        assert!(operation.get("security").is_none(), "{operation:#}");
    }

    #[test]
    fn two_payloads_of_one_name_keep_their_own_schemas() {
        let other = json!({ "title": "UserPublic", "type": "object", "properties": {} });
        let catalogue = Catalogue::from_events(vec![
            event("a_user", false, user_public()),
            event("b_user", false, other.clone()),
        ]);
        let doc = catalogue.asyncapi(&StreamServer::new("http", "example.test", "/events"));
        let messages = &doc["components"]["messages"];
        assert_eq!(
            messages["b_user"]["payload"],
            json!({ "$ref": "#/components/schemas/UserPublic_2" })
        );
        assert_eq!(doc["components"]["schemas"]["UserPublic_2"], other);
    }
}
