//! The six kinds of configuration, one module each, defined once for server and browser.
//!
//! Each record type is what an export file holds for one entity (ContextForge's field
//! names, plus what a lossless round trip needs). The same types are the REST API's
//! request and response bodies. Required fields are `Option` so that a parse reports
//! every missing field at once ([`crate::validation::parse_all`]); [`Entity::validate`]
//! checks presence and every rule, normalises, and leaves the record ready to store.

pub mod auth;
pub mod common;
pub mod federation;
pub mod gateway;
pub mod keys;
pub mod limits;
pub mod prompt;
pub mod resource;
pub mod root;
pub mod server;
pub mod tool;

use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

pub use common::{AuthType, JsonObject, Tag, Timestamp, Visibility};
pub use federation::{Origin, federated_name};
pub use gateway::Gateway;
pub use prompt::Prompt;
pub use resource::Resource;
pub use root::Root;
pub use server::Server;
pub use tool::Tool;

use crate::{
    model::EntityKind,
    validation::{Code, Errors, FieldError, parse_partial},
};

/// What every entity type offers to the generic store, REST and UI code.
pub trait Entity:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + Unpin + std::fmt::Debug + 'static
{
    const KIND: EntityKind;
    /// The top-level fields that hold credentials (encrypted): never shown, only said to
    /// be set or changed.
    const SECRET_FIELDS: &'static [&'static str] = &["auth_value", "auth_query_params"];

    /// The unique key within the type: the name, or the URI for resources and roots.
    fn key(&self) -> &str;
    fn name(&self) -> &str;
    /// Gives the entity a new key (its name, or its URI for resources and roots).
    fn set_key(&mut self, key: String);
    fn id(&self) -> Option<Uuid>;
    fn set_id(&mut self, id: Option<Uuid>);
    fn tags(&self) -> &[Tag];
    fn is_active(&self) -> bool;
    fn timestamps(&self) -> (Option<Timestamp>, Option<Timestamp>);
    fn set_timestamps(&mut self, created: Timestamp, updated: Timestamp);
    /// The id and the timestamps, to set aside (see [`same_record`]).
    fn meta_mut(&mut self) -> Meta<'_>;
    /// One line for lists: the fields that tell entities of this type apart.
    fn summary(&self) -> String;
    /// Checks every rule (all problems reported, pointers under `base`) and normalises.
    fn validate(&mut self, base: &str, errors: &mut Errors);

    /// The encrypted credential, for types that carry one.
    fn credential(&self) -> Option<(AuthType, &str)> {
        None
    }
    /// Replaces the credential (or clears it with `None`).
    fn set_credential(&mut self, _credential: Option<(AuthType, String)>) {}
    /// Every encrypted value the entity carries, with its pointer below the entity:
    /// `/auth_value`, and ContextForge's `/auth_query_params/{param}` and
    /// `/headers/{name}` envelopes. Import re-encrypts them all.
    fn blobs_mut(&mut self) -> Vec<(String, &mut String)> {
        Vec::new()
    }
    /// The HTTP headers sent upstream with their values (a tool's `headers`), for types
    /// that carry them: the server encrypts the sensitive ones into envelopes.
    fn headers_mut(&mut self) -> Option<&mut serde_json::Map<String, serde_json::Value>> {
        None
    }
    /// Plaintext credentials sent with a request, to be encrypted by the server.
    fn take_auth_input(&mut self) -> Option<auth::AuthInput> {
        None
    }
    /// The entities this one references, by their keys (a server's tools, prompts, resources).
    fn links(&self) -> Vec<(EntityKind, &[String])> {
        Vec::new()
    }
    /// Takes the references out (they are stored as links, not in the record).
    fn take_links(&mut self) -> Vec<(EntityKind, Vec<String>)> {
        Vec::new()
    }
    /// Puts references read from the links back.
    fn set_links(&mut self, _kind: EntityKind, _keys: Vec<String>) {}
    /// Where a discovered tool, prompt or resource came from; `None` for local entities.
    fn federation(&self) -> Option<&Origin> {
        None
    }
    /// Marks the entity as discovered (or local with `None`), for types discovery stores.
    fn set_federation(&mut self, _origin: Option<Origin>) {}
}

/// An entity's id, `created_at` and `updated_at`.
pub type Meta<'a> = (
    &'a mut Option<Uuid>,
    &'a mut Option<Timestamp>,
    &'a mut Option<Timestamp>,
);

/// True when `a` and `b` are equal but for their ids and timestamps (both are left as
/// they were).
pub fn same_record<E: Entity>(a: &mut E, b: &mut E) -> bool {
    fn set_aside(
        (id, created, updated): Meta<'_>,
    ) -> (Option<Uuid>, Option<Timestamp>, Option<Timestamp>) {
        (id.take(), created.take(), updated.take())
    }
    fn put_back(
        (id, created, updated): Meta<'_>,
        saved: (Option<Uuid>, Option<Timestamp>, Option<Timestamp>),
    ) {
        (*id, *created, *updated) = saved;
    }
    let (saved_a, saved_b) = (set_aside(a.meta_mut()), set_aside(b.meta_mut()));
    let same = a == b;
    put_back(a.meta_mut(), saved_a);
    put_back(b.meta_mut(), saved_b);
    same
}

/// Parses and validates one entity from JSON; every error at once, under `base`.
pub fn parse_entity<E: Entity>(
    value: serde_json::Value,
    base: &str,
) -> Result<(E, Vec<FieldError>), Vec<FieldError>> {
    let (entity, mut type_errors) = parse_partial::<E>(value, base);
    let Some(mut entity) = entity else {
        return Err(type_errors);
    };
    let mut errors = Errors::default();
    entity.validate(base, &mut errors);
    if type_errors.is_empty() {
        let warnings = std::mem::take(&mut errors.warnings);
        return errors.into_result((entity, warnings));
    }
    // A field left out for its type must not also be reported as missing.
    let reported: Vec<String> = type_errors.iter().map(|e| e.pointer.clone()).collect();
    type_errors.extend(
        errors
            .list
            .into_iter()
            .filter(|e| !reported.contains(&e.pointer)),
    );
    Err(type_errors)
}

/// Implements the metadata accessors shared by every record type.
macro_rules! entity_common {
    () => {
        fn id(&self) -> Option<uuid::Uuid> {
            self.id
        }
        fn set_id(&mut self, id: Option<uuid::Uuid>) {
            self.id = id;
        }
        fn tags(&self) -> &[$crate::entities::Tag] {
            &self.tags
        }
        fn is_active(&self) -> bool {
            self.is_active
        }
        fn timestamps(
            &self,
        ) -> (
            Option<$crate::entities::Timestamp>,
            Option<$crate::entities::Timestamp>,
        ) {
            (self.created_at, self.updated_at)
        }
        fn set_timestamps(
            &mut self,
            created: $crate::entities::Timestamp,
            updated: $crate::entities::Timestamp,
        ) {
            self.created_at = Some(created);
            self.updated_at = Some(updated);
        }
        fn meta_mut(&mut self) -> $crate::entities::Meta<'_> {
            (&mut self.id, &mut self.created_at, &mut self.updated_at)
        }
    };
}
pub(crate) use entity_common;

/// Implements `key` and `name` for a type keyed by its name, or (`uri`) by its URI.
macro_rules! entity_key {
    (name) => {
        fn key(&self) -> &str {
            self.name.as_deref().unwrap_or_default()
        }
        fn set_key(&mut self, key: String) {
            self.name = Some(key);
        }
        fn name(&self) -> &str {
            self.key()
        }
    };
    (uri) => {
        fn key(&self) -> &str {
            self.uri.as_deref().unwrap_or_default()
        }
        fn set_key(&mut self, key: String) {
            self.uri = Some(key);
        }
        fn name(&self) -> &str {
            self.name.as_deref().unwrap_or_default()
        }
    };
}
pub(crate) use entity_key;

/// Implements the credential accessors for types with `auth_type`/`auth_value`/`auth`.
macro_rules! entity_credentials {
    () => {
        fn credential(&self) -> Option<($crate::entities::AuthType, &str)> {
            match (self.auth_type, self.auth_value.as_deref()) {
                (Some(t), Some(v)) if !v.is_empty() => Some((t, v)),
                _ => None,
            }
        }
        fn set_credential(&mut self, credential: Option<($crate::entities::AuthType, String)>) {
            self.auth_type = credential.as_ref().map(|c| c.0);
            self.auth_value = credential.map(|c| c.1);
        }
        fn take_auth_input(&mut self) -> Option<$crate::entities::auth::AuthInput> {
            self.auth.take()
        }
    };
}
pub(crate) use entity_credentials;

/// Checks `auth_type`/`auth_value`/`auth` together: a plaintext `auth` wins; a blob needs its type.
pub(crate) fn check_credentials(
    auth_type: Option<AuthType>,
    auth_value: Option<&str>,
    auth: Option<&auth::AuthInput>,
    base: &str,
    errors: &mut Errors,
) {
    use crate::validation::join;
    if let Some(input) = auth {
        input.check(&join(base, "auth"), errors);
        return;
    }
    match (auth_type, auth_value) {
        (None, Some(v)) if !v.is_empty() => errors.add(join(base, "auth_type"), Code::Required, "required when auth_value is given"),
        (Some(_), Some(v)) if !v.is_empty() && !looks_like_blob(v) => errors.add(
            join(base, "auth_value"),
            Code::InvalidCiphertext,
            "must be an encrypted value (URL-safe base64 of nonce, ciphertext and tag); send plaintext credentials in `auth` instead",
        ),
        _ => {}
    }
}

/// `/auth_value` when it holds a value.
pub(crate) fn auth_value_blob(auth_value: &mut Option<String>) -> Vec<(String, &mut String)> {
    auth_value
        .as_mut()
        .filter(|v| !v.is_empty())
        .map(|v| ("/auth_value".to_owned(), v))
        .into_iter()
        .collect()
}

/// URL-safe or standard base64 of at least 28 bytes (nonce + tag).
pub(crate) fn looks_like_blob(v: &str) -> bool {
    let body = v.trim_end_matches('=');
    body.len() >= 38
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+/".contains(c))
}
