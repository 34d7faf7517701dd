//! The AsyncAPI 3.0 document of a catalogue: the stream as the server, one channel per topic
//! template, one message per event.

use serde_json::{json, Map, Value};

use super::catalogue::{Catalogue, EventInfo};
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
}

impl StreamServer {
    /// The stream at `protocol://host{path}`, titled "Server-Sent Events", version `0.0.0`.
    pub fn new(protocol: &str, host: &str, path: &str) -> Self {
        Self {
            title: "Server-Sent Events".to_owned(),
            version: "0.0.0".to_owned(),
            protocol: protocol.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
        }
    }

    /// Sets `info.title` and `info.version`.
    pub fn titled(mut self, title: &str, version: &str) -> Self {
        title.clone_into(&mut self.title);
        version.clone_into(&mut self.version);
        self
    }
}

const DESCRIPTION: &str = "\
Server-Sent Events (`text/event-stream`), read with `GET` on the server's path. Each event has an \
`id:` line (`<epoch>-<seq>`), an `event:` line (the message name) and `data:` lines (the payload as \
JSON). Choose topics with `?topic=<selector>` (repeatable; `*` matches one segment, `**` the rest); \
without one, every public event arrives. To resume, reconnect with the `Last-Event-ID` header (or \
`?lastEventId=`) set to the last id seen: every event after it is replayed in order, then live \
events. When that is impossible, an `sse-reset` event (`{\"reason\": ...}`) tells the client to \
refetch its state. Private events need a bearer token allowing their topic.";

impl Catalogue {
    /// The AsyncAPI 3.0 document of these events, served at `{path}/asyncapi.json` by
    /// [`Broadcaster::service`](crate::Broadcaster::service).
    pub fn asyncapi(&self, server: &StreamServer) -> Value {
        let mut channels = Map::new();
        let mut operations = Map::new();
        let mut messages = Map::new();
        let mut schemas = Map::new();
        let any_private = self.distinct().any(|e| e.private);
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
            if event.private {
                operation["security"] = json!([{ "$ref": "#/components/securitySchemes/bearer" }]);
            }
            operations.insert(format!("receive_{}", event.name), operation);
        }
        let mut components = json!({ "messages": messages, "schemas": schemas });
        if any_private {
            components["securitySchemes"] = json!({
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Needed for private events: the token must allow the \
                                    event's topic. Without it, a private topic selector is \
                                    refused with 401, and private events are not sent.",
                }
            });
        }
        json!({
            "asyncapi": "3.0.0",
            "info": {
                "title": server.title,
                "version": server.version,
                "description": DESCRIPTION,
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
    if let Some(schema) = &event.schema {
        let mut schema = schema.clone();
        // Definitions are shared by the whole document, under the path their `$ref`s use.
        if let Some(Value::Object(defs)) = schema
            .as_object_mut()
            .and_then(|o| o.remove("components"))
            .and_then(|mut c| c.as_object_mut().and_then(|c| c.remove("schemas")))
        {
            schemas.extend(defs);
        }
        message["payload"] = schema;
    }
    message
}
