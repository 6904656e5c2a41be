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
//! - Resources are discovered when, with two gateways or more, the file has one per
//!   gateway that differ only in their URI's authority, each naming its gateway
//!   (`mini://alpha/info`, `mini://beta/info`: the authority is the slug of one
//!   gateway, or that slug's last `-` word, `seed-gw-alpha`). Local resources that
//!   happen to follow this pattern are taken for discovered (URIs kept; only their
//!   origin is added); a resource only some peers offer is read as local.
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
    /// The discovered resources' gateways by URI, worked out at the first resource.
    resources: Option<HashMap<String, String>>,
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
        let (gateway, how) = match E::KIND {
            EntityKind::Prompt => (self.by_position(skim, entity.key())?, "by position"),
            EntityKind::Resource => {
                let owners = self.resources.get_or_insert_with(|| resource_owners(skim));
                (owners.get(entity.key())?.clone(), "by the name in its URI")
            }
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

/// The gateway of each resource of a set, one per gateway, that differ only in their
/// URIs' authorities, each naming its gateway (see the module documentation).
fn resource_owners(skim: &Skim) -> HashMap<String, String> {
    let gateways = skim.gateways();
    let mut groups: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
    if gateways.len() < 2 {
        return HashMap::new();
    }
    let index = SlugIndex::new(gateways);
    for uri in skim.keys(EntityKind::Resource) {
        let Some((scheme, rest)) = uri.split_once("://") else {
            continue;
        };
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        if let Some(gateway) = index.by_uri(uri) {
            let group = groups
                .entry((scheme.to_owned(), path.to_owned()))
                .or_default();
            group.push((uri.to_owned(), gateway));
        }
    }
    let mut owners = HashMap::new();
    for group in groups.into_values() {
        let mut named: Vec<&str> = group.iter().map(|(_, g)| g.as_str()).collect();
        named.sort_unstable();
        named.dedup();
        if group.len() == gateways.len() && named.len() == gateways.len() {
            owners.extend(group);
        }
    }
    owners
}

/// The gateways by slug and by their slug's last `-` word, slugified once for all of a
/// file's resource URIs (once per URI and gateway, 20,000 resources and 5,000 gateways
/// were most of an import's time).
struct SlugIndex<'g> {
    by_word: HashMap<String, Vec<&'g str>>,
}

impl<'g> SlugIndex<'g> {
    fn new(gateways: &'g [Box<str>]) -> SlugIndex<'g> {
        let mut by_word: HashMap<String, Vec<&'g str>> = HashMap::new();
        for gateway in gateways {
            let slug = slugify(gateway);
            let last = slug.rsplit('-').next().unwrap_or_default().to_owned();
            if last != slug {
                by_word.entry(last).or_default().push(gateway);
            }
            by_word.entry(slug).or_default().push(gateway);
        }
        SlugIndex { by_word }
    }

    /// The one gateway whose slug, or the slug's last `-` word, is `uri`'s authority.
    fn by_uri(&self, uri: &str) -> Option<String> {
        let authority = uri.split_once("://")?.1.split('/').next()?;
        let authority = slugify(authority);
        if authority.is_empty() {
            return None;
        }
        match self.by_word.get(&authority)?.as_slice() {
            [one] => Some((*one).to_owned()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_names_one_gateway_or_none() {
        let gateways: Vec<Box<str>> = vec!["seed-gw-alpha".into(), "seed-gw-beta".into()];
        let by_uri = |gateways, uri| SlugIndex::new(gateways).by_uri(uri);
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
