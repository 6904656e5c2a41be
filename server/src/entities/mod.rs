//! The entity service: create, update and delete any of the six types, with validation,
//! credential encryption, reference checks and audit. The REST API, the UI and the seed
//! command all come through here.

use app::validation::Code;
pub mod changes;
pub mod headers;
pub mod seed;
pub mod upgrade;

use app::{
    entities::{Entity, parse_entity},
    model::EntityKind,
    validation::FieldError,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{
    crypto::{Cipher, Plaintext},
    error::{Error, Result},
    federation::owned,
    store::{Store, audit::NewAuditEntry, entities::EntityError},
};

impl From<EntityError> for Error {
    fn from(e: EntityError) -> Error {
        match e {
            EntityError::Duplicate { .. } | EntityError::CaseTwin { .. } => {
                Error::Conflict(e.to_string())
            }
            EntityError::UnknownReferences(errors) => Error::Validation(errors),
            EntityError::InUse(servers) => Error::Conflict(format!(
                "still used by servers: {}; remove it from them first, or delete with ?force=true",
                servers.join(", ")
            )),
            EntityError::Database(e) => Error::from(e),
        }
    }
}

/// The parts of the gateway the service needs.
pub struct Entities<'a> {
    pub store: &'a Store,
    pub cipher: &'a Cipher,
    /// Who acts, for the audit log.
    pub actor: &'a str,
}

impl Entities<'_> {
    /// Validates and stores a new entity from its JSON form.
    pub async fn create<E: Entity>(&self, body: Value) -> Result<E> {
        let (mut entity, _warnings) = parse_entity::<E>(body, "").map_err(Error::Validation)?;
        if let Some(origin) = entity.federation() {
            return Err(Error::Validation(vec![owned::refused_origin(origin, "")]));
        }
        self.seal(&mut entity, "")?;
        self.store.check_links(&entity, "").await?;
        (self.store)
            .check_case_twin(E::KIND, entity.key(), None)
            .await?;
        let id = self.store.insert_entity(&mut entity).await?;
        self.audit::<E>("create", entity.key(), id).await?;
        changes::publish(self.store, E::KIND, vec![entity.key().to_owned()]);
        tracing::info!(entity.kind = E::KIND.plural(), entity.id = %id, "created {} {}", E::KIND.singular(), entity.key());
        Ok(entity)
    }

    /// Applies a JSON merge patch (RFC 7396) to a stored entity. Credentials not sent
    /// are kept; `"auth_type": null` removes them.
    pub async fn update<E: Entity>(&self, id: Uuid, patch: Value) -> Result<E> {
        let stored: E = self.store.get_entity(id).await?.ok_or(Error::NotFound)?;
        let Value::Object(patch) = patch else {
            return Err(Error::Validation(vec![FieldError {
                pointer: String::new(),
                code: Code::InvalidType,
                message: "a patch must be a JSON object".into(),
            }]));
        };
        let mut current = serde_json::to_value(&stored).map_err(anyhow::Error::from)?;
        let before = current.clone();
        merge_patch(&mut current, patch);
        if let (Some(origin), Value::Object(before), Value::Object(after)) =
            (stored.federation(), &before, &current)
        {
            let refused = owned::refused_edits(origin, before, after);
            if !refused.is_empty() {
                return Err(Error::Validation(refused));
            }
        }
        let (mut entity, _warnings) = parse_entity::<E>(current, "").map_err(Error::Validation)?;
        self.seal(&mut entity, "")?;
        self.store.check_links(&entity, "").await?;
        (self.store)
            .check_case_twin(E::KIND, entity.key(), Some(id))
            .await?;
        if !self.store.update_entity(id, &mut entity).await? {
            return Err(Error::NotFound);
        }
        self.audit::<E>("update", entity.key(), id).await?;
        // A rename changes both names' lists.
        let keys = vec![stored.key().to_owned(), entity.key().to_owned()];
        changes::publish(self.store, E::KIND, keys);
        Ok(entity)
    }

    /// Deletes an entity; see [`Store::delete_entity`] for `force`.
    /// A gateway's discovered tools, prompts and resources go with it (the database's
    /// cascade), and the change feed is told of them too.
    pub async fn delete<E: Entity>(&self, id: Uuid, force: bool) -> Result<()> {
        let stored: E = self.store.get_entity(id).await?.ok_or(Error::NotFound)?;
        let discovered = match E::KIND {
            EntityKind::Gateway => self.store.federated_keys(id).await?,
            _ => Vec::new(),
        };
        if !self.store.delete_entity(E::KIND, id, force).await? {
            return Err(Error::NotFound);
        }
        self.audit::<E>("delete", stored.key(), id).await?;
        changes::publish(self.store, E::KIND, vec![stored.key().to_owned()]);
        for (kind, keys) in discovered {
            changes::publish(self.store, kind, keys);
        }
        Ok(())
    }

    /// Encrypts plaintext credentials sent in `auth`, or checks that a given `auth_value`
    /// decrypts with this gateway's key; see [`seal`].
    pub fn seal<E: Entity>(&self, entity: &mut E, base: &str) -> Result<()> {
        seal(self.cipher, entity, base)
    }

    async fn audit<E: Entity>(&self, verb: &str, key: &str, id: Uuid) -> Result<()> {
        let action = format!("{}.{verb}", E::KIND.singular());
        let entry = NewAuditEntry {
            actor: self.actor,
            action: &action,
            target_type: Some(E::KIND.plural()),
            target_name: Some(key),
            details: serde_json::json!({ "id": id }),
        };
        Ok(self.store.record_audit(entry).await?)
    }
}

/// Encrypts plaintext credentials sent in `auth`, and sensitive headers sent in
/// plaintext, with `cipher`; checks that every encrypted value given (`auth_value`,
/// `auth_query_params`, header envelopes) decrypts with it.
pub fn seal<E: Entity>(cipher: &Cipher, entity: &mut E, base: &str) -> Result<()> {
    if let Some(input) = entity.take_auth_input() {
        let blob = cipher.encrypt(&Plaintext(input.plaintext()));
        entity.set_credential(Some((input.auth_type(), blob)));
    }
    let errors: Vec<FieldError> = entity
        .blobs_mut()
        .into_iter()
        .filter_map(|(pointer, blob)| {
            cipher.decrypt(blob).err().map(|e| FieldError {
                pointer: format!("{base}{pointer}"),
                code: Code::Undecryptable,
                message: format!("the credential {e}"),
            })
        })
        .collect();
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    headers::seal_plain_headers(cipher, entity);
    Ok(())
}

/// RFC 7396, except that `"auth_value": null` and a header sent as `*****` keep the
/// stored credential (responses never carry them, so a client echoing a response back
/// must not erase them).
fn merge_patch(target: &mut Value, patch: Map<String, Value>) {
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        match value {
            Value::Null if key == "auth_value" => {}
            masked if headers::keeps_envelope(target.get(&key), &masked) => {}
            Value::Null if key == "auth_type" => {
                target.remove("auth_type");
                target.remove("auth_value");
            }
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) if target.get(&key).is_some_and(Value::is_object) => {
                merge_patch(target.get_mut(&key).expect("checked"), inner);
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

/// The entity as the API and UI show it: `auth_value` replaced by `auth_set`, encrypted
/// headers by `*****`.
pub fn view<E: Entity>(entity: &E) -> Value {
    let auth_set = entity.credential().is_some();
    let mut value = serde_json::to_value(entity).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for field in E::SECRET_FIELDS {
            map.remove(*field);
        }
        headers::mask_headers(map);
        if map.contains_key("auth_type") || auth_set {
            map.insert("auth_set".into(), Value::Bool(auth_set));
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_keeps_credentials_unless_auth_type_is_nulled() {
        let mut doc = json!({"name": "a", "auth_type": "bearer", "auth_value": "blob", "annotations": {"x": 1, "y": 2}});
        merge_patch(
            &mut doc,
            json!({"auth_value": null, "annotations": {"y": null}, "description": "d"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(
            doc,
            json!({"name": "a", "auth_type": "bearer", "auth_value": "blob", "annotations": {"x": 1}, "description": "d"})
        );
        merge_patch(
            &mut doc,
            json!({"auth_type": null}).as_object().unwrap().clone(),
        );
        assert!(doc.get("auth_value").is_none());
    }

    #[test]
    fn a_header_sent_back_as_the_mask_keeps_its_envelope() {
        let envelope = json!({app::entities::tool::HEADER_ENVELOPE: "A".repeat(40)});
        let mut doc = json!({"headers": {"Authorization": envelope, "Accept": "a"}});
        merge_patch(
            &mut doc,
            json!({"headers": {"Authorization": "*****", "Accept": "*****", "X-New": "n"}})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(
            doc,
            json!({"headers": {"Authorization": envelope, "Accept": "*****", "X-New": "n"}})
        );
    }
}
