//! ContextForge 1.1.0 exports the prompts and resources its gateways discovered as if
//! they were local (its own export leaves discovered tools out, but not these): three
//! peers' `greet` prompts come as three prompts called `greet`. Reading such a file, they
//! are attributed to their gateways and imported as discovered items under their
//! federated keys, so that the gateway's discovery later replaces them instead of
//! adding a duplicate.
//!
//! The rules, and their limits (each attribution is also told as an import warning):
//! - Only in files that do not name this project's key fingerprint
//!   (`encryption_key_fingerprint`): our own exports never carry discovered items, so
//!   nothing of theirs is reinterpreted.
//! - A resource is discovered when its URI's authority (`mini://alpha/info` → `alpha`)
//!   is the slug of exactly one gateway of the file, or that slug's last `-` word
//!   (`seed-gw-alpha`). A local resource whose URI happens to name a gateway so is
//!   taken for discovered (its URI is kept; only its origin is added).
//! - A prompt is discovered when the file gives its name exactly once per gateway, with
//!   two gateways or more. The k-th such prompt belongs to the k-th gateway: ContextForge
//!   lists gateways and prompts newest first, and registering a gateway discovers its
//!   prompts at once, so both lists come in registration order. (The file's resources,
//!   attributed by URI, come in the same order, which confirms it for the real file.) A
//!   prompt only some peers offer, or one edited or re-discovered after a later gateway
//!   was registered, cannot be told apart this way: it is read as local, as before.

use std::collections::HashMap;

use uuid::Uuid;

use super::skim::Skim;
use crate::{
    entities::{Entity, Origin, federated_name, federation::slugify},
    model::EntityKind,
    validation::{Code, FieldError},
};

/// Attributes ContextForge's discovered prompts and resources as they are read.
#[derive(Default)]
pub struct Attribution {
    /// How many prompts with each attributable name have been read so far.
    seen: HashMap<Box<str>, usize>,
}

impl Attribution {
    /// Marks `entity` (at `pointer`) as discovered when a rule of the module holds; the
    /// warning that says so. The origin's `gateway_id` is nil: the import resolves it.
    pub fn attribute<E: Entity>(
        &mut self,
        skim: &Skim,
        entity: &mut E,
        pointer: &str,
    ) -> Option<FieldError> {
        let gateways = skim.gateways();
        let (gateway, how) = match E::KIND {
            EntityKind::Prompt => (self.by_position(skim, entity.key())?, "by position"),
            EntityKind::Resource => (by_uri(gateways, entity.key())?, "by the name in its URI"),
            _ => return None,
        };
        let remote = entity.key().to_owned();
        if E::KIND == EntityKind::Prompt {
            entity.set_key(federated_name(&gateway, &remote));
        }
        let message = format!(
            "{} `{remote}` is taken for one that ContextForge discovered on gateway `{gateway}` \
             ({how}; see the import's attribution rules): imported as discovered `{}`, which the gateway's \
             discovery replaces",
            E::KIND.singular(),
            entity.key()
        );
        entity.set_federation(Some(Origin {
            gateway_id: Uuid::nil(),
            gateway,
            remote_name: remote,
        }));
        Some(FieldError::new(pointer, Code::AttributedToGateway, message))
    }

    /// The gateway of the k-th prompt named `key`, when the file has as many as gateways.
    fn by_position(&mut self, skim: &Skim, key: &str) -> Option<String> {
        let gateways = skim.gateways();
        let n = gateways.len();
        if n < 2 || skim.count(EntityKind::Prompt, key) as usize != n {
            return None;
        }
        let k = self.seen.entry(key.into()).or_insert(0);
        let gateway = gateways.get(*k)?;
        *k += 1;
        Some(gateway.to_string())
    }
}

/// The one gateway whose slug, or the slug's last `-` word, is `uri`'s authority.
fn by_uri(gateways: &[Box<str>], uri: &str) -> Option<String> {
    let authority = uri.split_once("://")?.1.split('/').next()?;
    let authority = slugify(authority);
    if authority.is_empty() {
        return None;
    }
    let mut matching = gateways.iter().filter(|g| {
        let slug = slugify(g);
        slug == authority || slug.rsplit('-').next() == Some(authority.as_str())
    });
    let first = matching.next()?;
    matching.next().is_none().then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_names_one_gateway_or_none() {
        let gateways: Vec<Box<str>> = vec!["seed-gw-alpha".into(), "seed-gw-beta".into()];
        assert_eq!(
            by_uri(&gateways, "mini://alpha/info").as_deref(),
            Some("seed-gw-alpha")
        );
        assert_eq!(
            by_uri(&gateways, "mini://seed-gw-beta/x").as_deref(),
            Some("seed-gw-beta")
        );
        assert_eq!(by_uri(&gateways, "seed://resources/doc01.txt"), None);
        assert_eq!(by_uri(&gateways, "file:///etc/alpha"), None);
        let twins: Vec<Box<str>> = vec!["a-alpha".into(), "b-alpha".into()];
        assert_eq!(by_uri(&twins, "mini://alpha/info"), None);
    }
}
