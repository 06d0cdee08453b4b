use super::*;
use crate::memory::{MemoryProvider, Snapshot};
use crate::provider::{
    Args, GetRequest, GetResponse, OperateOutcome, ParamValues, ProviderError, Transaction,
};
use crate::schema::{Constraints, ListFacet, ObjectAccess, ParamAccess};
use crate::value::ValueType;
use async_trait::async_trait;
use usp_codec::UspErrorCode;
use usp_codec::path::Path;

fn rw(name: &str, value_type: ValueType) -> ParamDef {
    ParamDef::new(name, value_type).access(ParamAccess::ReadWrite)
}

fn schema() -> Schema {
    let mut item = ObjectDef::new("Device.X.Item.{i}.");
    item.access = ObjectAccess::AddDelete;
    item.unique_keys = vec![vec!["Name".into()]];
    item.params = vec![
        rw("Name", ValueType::String),
        rw("Value", ValueType::UnsignedInt),
        rw("Enable", ValueType::Boolean),
        rw("When", ValueType::DateTime),
        rw("Peers", ValueType::String).constraints(Constraints {
            list: Some(ListFacet::default()),
            ..Constraints::default()
        }),
    ];
    [ObjectDef::new("Device.X."), item].into_iter().collect()
}

/// Rows stored in non-canonical forms on purpose, as a plugin might report them.
fn data() -> Snapshot {
    let mut snapshot = Snapshot::default();
    let rows = [
        (
            "a",
            "0123",
            "1",
            "2021-06-06T10:00:00+02:00",
            "Device.X.Item.2,Device.X.Item.3",
        ),
        ("b", "5", "false", "0001-01-01T00:00:00Z", ""),
        ("c", "+7", "true", "2030-01-01T00:00:00Z", "Device.X.Item.1"),
    ];
    for (index, (name, value, enable, when, peers)) in rows.into_iter().enumerate() {
        let object = format!("Device.X.Item.{}.", index + 1);
        for (param, text) in [
            ("Name", name),
            ("Value", value),
            ("Enable", enable),
            ("When", when),
            ("Peers", peers),
        ] {
            snapshot
                .params
                .push((format!("{object}{param}"), text.to_string()));
        }
        snapshot.instances.push(object);
    }
    snapshot
}

fn model() -> (DataModel, MemoryProvider) {
    let provider = MemoryProvider::new("x", schema());
    provider.restore(&data());
    let mut dm = DataModel::default();
    dm.register(Arc::new(provider.clone()))
        .unwrap_or_else(|error| panic!("{error}"));
    (dm, provider)
}

async fn paths(dm: &DataModel, text: &str) -> Vec<String> {
    match dm.resolve_str(text).await {
        Ok(resolution) => resolution.objects.into_iter().map(|o| o.path).collect(),
        Err(error) => panic!("{text}: {error}"),
    }
}

#[tokio::test]
async fn comparisons_are_semantic_by_type() {
    let (dm, _) = model();
    assert_eq!(
        paths(&dm, "Device.X.Item.[Value==123].").await,
        ["Device.X.Item.1."]
    );
    assert_eq!(
        paths(&dm, "Device.X.Item.[Value>=+5&&Value<100].").await,
        ["Device.X.Item.2.", "Device.X.Item.3."]
    );
    assert_eq!(
        paths(&dm, "Device.X.Item.[Enable==true].").await,
        ["Device.X.Item.1.", "Device.X.Item.3."]
    );
    assert_eq!(
        paths(&dm, "Device.X.Item.[When==2021-06-06T08:00:00Z].").await,
        ["Device.X.Item.1."]
    );
    assert_eq!(
        paths(&dm, "Device.X.Item.[When!=0001-01-01T00:00:00Z].").await,
        ["Device.X.Item.1.", "Device.X.Item.3."]
    );
    assert_eq!(
        paths(&dm, r#"Device.X.Item.[Peers~="Device.X.Item.3"]."#).await,
        ["Device.X.Item.1."]
    );
}

#[tokio::test]
async fn type_misuse_in_expressions_is_a_syntax_error() {
    let (dm, _) = model();
    for text in [
        r#"Device.X.Item.[Enable=="true"]."#,
        r#"Device.X.Item.[Name==a]."#,
        r#"Device.X.Item.[Name<"a"]."#,
        r#"Device.X.Item.[Value=="5"]."#,
        r#"Device.X.Item.[Name~="a"]."#,
        "Device.X.Item.[When<0001-01-01T00:00:00Z].",
    ] {
        let error = dm.resolve_str(text).await.err();
        assert!(
            matches!(error, Some(DmError::BadExpression { .. })),
            "{text}: {error:?}"
        );
    }
    let error = dm.resolve_str("Device.X.Item.[Missing==1].").await.err();
    assert!(
        matches!(error, Some(DmError::NotSupported { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn references_are_followed_item_by_item() {
    let (dm, _) = model();
    assert_eq!(
        paths(&dm, "Device.X.Item.1.Peers+.").await,
        ["Device.X.Item.2."]
    );
    assert_eq!(
        paths(&dm, "Device.X.Item.1.Peers#2+.").await,
        ["Device.X.Item.3."]
    );
    let all = dm
        .resolve_str("Device.X.Item.1.Peers#*+.Name")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(all.search);
    assert_eq!(all.objects.len(), 2);
    assert_eq!(
        paths(&dm, r#"Device.X.Item.[Peers+.Name=="a"]."#).await,
        ["Device.X.Item.3."]
    );
    assert!(paths(&dm, "Device.X.Item.2.Peers+.").await.is_empty());
}

#[tokio::test]
async fn unique_key_addressing_is_not_a_search() {
    let (dm, _) = model();
    let found = dm
        .resolve_str(r#"Device.X.Item.[Name=="b"]."#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!found.search);
    let missing = dm.resolve_str(r#"Device.X.Item.[Name=="zz"]."#).await.err();
    assert!(
        matches!(missing, Some(DmError::NoSuchObject { .. })),
        "{missing:?}"
    );
    let search = dm
        .resolve_str(r#"Device.X.Item.[Name=="zz"&&Value==1]."#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(search.search && search.objects.is_empty());
}

#[tokio::test]
async fn unsupported_and_malformed_paths_are_rejected() {
    let (dm, _) = model();
    assert!(matches!(
        dm.resolve_str("Device.Y.").await,
        Err(DmError::NotSupported { .. })
    ));
    assert!(matches!(
        dm.resolve_str("Device.X.[Name==\"a\"].").await,
        Err(DmError::NotSupported { .. })
    ));
    assert!(matches!(
        dm.resolve_str("Device.X.Item.1.Nope").await,
        Err(DmError::UnknownParam { .. })
    ));
    assert!(matches!(dm.resolve_str("Device.X.Item.").await, Ok(r) if r.objects[0].table));
    assert!(matches!(
        dm.resolve_str("Device.X.Item.[].").await,
        Err(DmError::Syntax(_))
    ));
}

#[tokio::test]
async fn subscription_references_with_expressions_use_current_data() {
    let (dm, _) = model();
    let reference =
        Path::parse("Device.X.Item.[Enable==true].Value").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dm.reference_matches(&reference, "Device.X.Item.3.Value")
            .await
            .unwrap_or(false)
    );
    assert!(
        !dm.reference_matches(&reference, "Device.X.Item.2.Value")
            .await
            .unwrap_or(true)
    );
    let object = Path::parse("Device.X.").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dm.reference_matches(&object, "Device.X.Item.2.Name")
            .await
            .unwrap_or(false)
    );
}

/// Test provider (labelled stand-in for a plugin whose storage refuses to commit): its
/// transactions accept writes and fail at prepare.
struct RefusingProvider(MemoryProvider);

struct RefusingTransaction;

#[async_trait]
impl Transaction for RefusingTransaction {
    async fn set(&mut self, _: &str, _: &str, _: &str) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn add(&mut self, _: &str, _: &ParamValues) -> Result<u32, ProviderError> {
        Ok(1)
    }
    async fn delete(&mut self, _: &str) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn prepare(&mut self) -> Result<(), ProviderError> {
        Err(ProviderError::new(UspErrorCode::InternalError, "disk full"))
    }
    async fn commit(self: Box<Self>) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[async_trait]
impl Provider for RefusingProvider {
    fn name(&self) -> &str {
        "refusing"
    }
    fn schema(&self) -> Arc<Schema> {
        self.0.schema()
    }
    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        self.0.instances(table).await
    }
    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        self.0.get(requests).await
    }
    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        Ok(Box::new(RefusingTransaction))
    }
    async fn operate(
        &self,
        command: &str,
        _: &str,
        _: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        Err(ProviderError::new(UspErrorCode::CommandFailure, command))
    }
}

#[tokio::test]
async fn a_refused_prepare_commits_nothing_anywhere() {
    let (mut dm, provider) = model();
    let mut other = ObjectDef::new("Device.Z.");
    other.params = vec![rw("Level", ValueType::Int)];
    let refusing = RefusingProvider(MemoryProvider::new("z", [other].into_iter().collect()));
    dm.register(Arc::new(refusing))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tx = dm.begin();
    let item = ResolvedObject::object("Device.X.Item.2.", "Device.X.Item.{i}.");
    tx.set(&item, "Value", "9")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let z = ResolvedObject::object("Device.Z.", "Device.Z.");
    tx.set(&z, "Level", "-3")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(tx.commit().await, Err(DmError::Provider { .. })));
    assert_eq!(
        provider.value("Device.X.Item.2.Value").as_deref(),
        Some("5")
    );
}

#[tokio::test]
async fn deleting_an_instance_reports_its_nested_instances_deleted_too() {
    let mut item = ObjectDef::new("Device.X.Item.{i}.");
    item.access = ObjectAccess::AddDelete;
    let mut part = ObjectDef::new("Device.X.Item.{i}.Part.{i}.");
    part.access = ObjectAccess::AddDelete;
    let schema = [ObjectDef::new("Device.X."), item, part]
        .into_iter()
        .collect();
    let provider = MemoryProvider::new("x", schema);
    let mut snapshot = Snapshot::default();
    for object in [
        "Device.X.Item.1.",
        "Device.X.Item.1.Part.1.",
        "Device.X.Item.1.Part.2.",
        "Device.X.Item.2.",
        "Device.X.Item.2.Part.1.",
    ] {
        snapshot.instances.push(object.to_string());
    }
    provider.restore(&snapshot);
    let mut dm = DataModel::default();
    dm.register(Arc::new(provider))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tx = dm.begin();
    tx.delete(&ResolvedObject::object(
        "Device.X.Item.1.",
        "Device.X.Item.{i}.",
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let deleted: Vec<String> = tx
        .commit()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter_map(|change| match change {
            Change::ObjectDeleted { path } => Some(path),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        [
            "Device.X.Item.1.",
            "Device.X.Item.1.Part.1.",
            "Device.X.Item.1.Part.2."
        ]
    );
}

#[tokio::test]
async fn unregistering_makes_paths_unsupported() {
    let (mut dm, _) = model();
    let id = dm
        .owner_id("Device.X.Item.{i}.")
        .unwrap_or_else(|e| panic!("{e}"));
    dm.unregister(id).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        dm.resolve_str("Device.X.Item.1.").await,
        Err(DmError::NotSupported { .. })
    ));
}

#[tokio::test]
async fn subtree_respects_depth_and_tables() {
    let (dm, _) = model();
    let root = ResolvedObject::object("Device.X.", "Device.X.");
    assert_eq!(dm.subtree(&root, 1).await.map(|v| v.len()).ok(), Some(1));
    assert_eq!(dm.subtree(&root, 0).await.map(|v| v.len()).ok(), Some(4));
    let table = dm
        .resolve_str("Device.X.Item.")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dm.subtree(&table.objects[0], 1).await.map(|v| v.len()).ok(),
        Some(3)
    );
}

#[tokio::test]
async fn writes_are_validated_before_the_provider() {
    let (dm, _) = model();
    let item = ResolvedObject::object("Device.X.Item.1.", "Device.X.Item.{i}.");
    let mut tx = dm.begin();
    assert!(matches!(
        tx.set(&item, "Value", "-1").await,
        Err(DmError::Value { .. })
    ));
    assert!(matches!(
        tx.set(&item, "Nope", "1").await,
        Err(DmError::UnknownParam { .. })
    ));
    let table = ResolvedObject {
        path: "Device.X.Item.".into(),
        supported: "Device.X.Item.{i}.".into(),
        table: true,
    };
    let bad = ParamValues::from([("Enable".to_string(), "maybe".to_string())]);
    assert!(matches!(
        tx.add(&table, &bad).await,
        Err(DmError::Value { .. })
    ));
    assert!(matches!(
        tx.delete(&table).await,
        Err(DmError::NotATable { .. })
    ));
}
