//! How xling stores an index in a Qdrant collection: point ids, payload fields, collection
//! metadata. The builder writes it and the backend reads it, so both use these names.

use std::collections::HashMap;

use qdrant_client::qdrant::{value::Kind, PointId, Value};
use sha2::{Digest, Sha256};
use xling_index::Passage;

/// Payload fields of every point.
pub const FIELD_ID: &str = "id";
pub const FIELD_LANGUAGE: &str = "language";
pub const FIELD_TITLE: &str = "title";
pub const FIELD_TEXT: &str = "text";

/// Collection metadata keys (Qdrant >= 1.16 stores arbitrary JSON per collection).
pub const META_MODEL_ID: &str = "xling_model_id";
pub const META_DIM: &str = "xling_dim";
pub const META_CORPUS_SHA256: &str = "xling_corpus_sha256";
pub const META_FORMAT: &str = "xling_format";
pub const META_ROUTING: &str = "xling_language_routing";
/// Bumped when the layout above changes.
pub const FORMAT: i64 = 1;

/// How a query's language filter reaches the passages of its languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// One set of shards; a keyword payload index on `language` with `is_tenant` (Qdrant's
    /// default advice), and a payload filter per query.
    Tenant,
    /// Custom sharding, one shard key per language: a filtered query reads only its
    /// languages' shards (`shard_key_selector`), with no payload filter.
    ShardKey,
}

impl Routing {
    pub fn name(self) -> &'static str {
        match self {
            Routing::Tenant => "tenant",
            Routing::ShardKey => "shard-key",
        }
    }

    pub fn parse(name: &str) -> Option<Routing> {
        [Routing::Tenant, Routing::ShardKey]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// Qdrant point ids are integers or UUIDs, passage ids are any string: the point id is a
/// UUID made of the first 16 bytes of the passage id's SHA-256 (a collision among 10^9 ids
/// has odds of about 10^-21), and the payload keeps the passage id itself.
pub fn point_id(passage_id: &str) -> PointId {
    let digest = Sha256::digest(passage_id.as_bytes());
    let h: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    PointId::from(uuid)
}

/// The payload a passage is stored with.
pub fn payload(passage: &Passage) -> HashMap<String, Value> {
    let mut payload = HashMap::from([
        (FIELD_ID.to_string(), Value::from(passage.id.clone())),
        (
            FIELD_LANGUAGE.to_string(),
            Value::from(passage.language.clone()),
        ),
        (FIELD_TEXT.to_string(), Value::from(passage.text.clone())),
    ]);
    if let Some(title) = &passage.title {
        payload.insert(FIELD_TITLE.to_string(), Value::from(title.clone()));
    }
    payload
}

/// The passage back from a payload; `None` when a required field is missing (a point not
/// written by xling).
pub fn passage(mut payload: HashMap<String, Value>) -> Option<Passage> {
    let mut take = |field: &str| match payload.remove(field)?.kind? {
        Kind::StringValue(s) => Some(s),
        _ => None,
    };
    Some(Passage {
        id: take(FIELD_ID)?,
        language: take(FIELD_LANGUAGE)?,
        text: take(FIELD_TEXT)?,
        title: take(FIELD_TITLE),
    })
}

pub fn string_value(value: Option<&Value>) -> Option<&str> {
    match value?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s),
        _ => None,
    }
}

pub fn integer_value(value: Option<&Value>) -> Option<i64> {
    match value?.kind.as_ref()? {
        Kind::IntegerValue(i) => Some(*i),
        Kind::DoubleValue(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_ids_are_stable_uuids() {
        let p = Passage {
            id: "de-0017".into(),
            text: "Der Mars ist rot.".into(),
            language: "de".into(),
            title: Some("Mars".into()),
        };
        assert_eq!(passage(payload(&p)), Some(p.clone()));
        let untitled = Passage { title: None, ..p };
        assert_eq!(passage(payload(&untitled)), Some(untitled));
        let id = format!("{:?}", point_id("de-0017"));
        assert_eq!(id, format!("{:?}", point_id("de-0017")));
        assert_ne!(id, format!("{:?}", point_id("de-0018")));
        let mut missing = payload(&Passage {
            id: "x".into(),
            text: "t".into(),
            language: "en".into(),
            title: None,
        });
        missing.remove(FIELD_TEXT);
        assert_eq!(passage(missing), None);
    }
}
