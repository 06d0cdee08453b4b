//! Reads through the façade: instance numbers, subtree expansion (R-GET.5 depth) and batched
//! parameter reads, one provider call per provider per request, with write-only values blanked.

use std::collections::{BTreeMap, HashMap};

use super::{DataModel, ReadRequest, ResolvedObject};
use crate::error::DmError;
use crate::provider::{GetRequest, ParamValues};
use crate::registry::ProviderId;
use crate::schema::{ObjectDef, ParamAccess};

impl DataModel {
    /// Instance numbers of a concrete table path (`Device.IP.Interface.`), ascending.
    pub async fn instances(&self, table: &str, supported: &str) -> Result<Vec<u32>, DmError> {
        let provider = self.owner_of(supported)?;
        let mut numbers = provider
            .instances(table)
            .await
            .map_err(|error| DmError::provider(table, error))?;
        numbers.sort_unstable();
        numbers.dedup();
        Ok(numbers)
    }

    /// Whether instance `number` of the concrete table path exists.
    pub async fn has_instance(
        &self,
        table: &str,
        supported: &str,
        number: u32,
    ) -> Result<bool, DmError> {
        let provider = self.owner_of(supported)?;
        provider
            .has_instance(table, number)
            .await
            .map_err(|error| DmError::provider(table, error))
    }

    /// The objects of a subtree, in path order: `start` itself (or, for a table, its
    /// instances) and the sub-objects and instances below, down to `max_depth` levels
    /// (R-GET.5: 0 = unlimited, 1 = only the object itself, 2 = plus its children, ...).
    pub async fn subtree(
        &self,
        start: &ResolvedObject,
        max_depth: u32,
    ) -> Result<Vec<ResolvedObject>, DmError> {
        let max_depth = if max_depth == 0 { u32::MAX } else { max_depth };
        let mut out = Vec::new();
        let mut stack: Vec<(ResolvedObject, u32)> = Vec::new();
        if start.table {
            let numbers = self.instances(&start.path, &start.supported).await?;
            for number in numbers.into_iter().rev() {
                stack.push((
                    ResolvedObject::object(format!("{}{number}.", start.path), &start.supported),
                    1,
                ));
            }
        } else {
            stack.push((start.clone(), 1));
        }
        while let Some((object, depth)) = stack.pop() {
            let children = self.registry.children(&object.supported);
            let mut below = Vec::new();
            if depth < max_depth {
                for child in children {
                    let name_part = &child[object.supported.len()..];
                    if let Some(name) = name_part.strip_suffix(".{i}.") {
                        let table = format!("{}{name}.", object.path);
                        let numbers = self.instances(&table, child).await?;
                        for number in numbers {
                            below.push(ResolvedObject::object(format!("{table}{number}."), child));
                        }
                    } else {
                        below.push(ResolvedObject::object(
                            format!("{}{name_part}", object.path),
                            child,
                        ));
                    }
                }
            }
            out.push(object);
            for child in below.into_iter().rev() {
                stack.push((child, depth + 1));
            }
        }
        Ok(out)
    }

    /// Reads parameters of many objects: one provider call per provider, answers in request
    /// order. Parameters not in the schema are dropped and write-only ones read as "".
    pub async fn read(&self, requests: &[ReadRequest]) -> Vec<Result<ParamValues, DmError>> {
        let mut answers: Vec<Option<Result<ParamValues, DmError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut batches: BTreeMap<ProviderId, Vec<usize>> = BTreeMap::new();
        // Searches read thousands of instances of the same object: look each supported path
        // up once.
        let mut routes: HashMap<&str, Option<(ProviderId, &ObjectDef)>> = HashMap::new();
        for (index, request) in requests.iter().enumerate() {
            let route = *routes.entry(request.supported.as_str()).or_insert_with(|| {
                let def = self.registry.object(&request.supported)?;
                let (id, _) = self.registry.owner(&request.supported)?;
                Some((id, def))
            });
            match route {
                Some((id, def)) if !def.params.is_empty() => {
                    batches.entry(id).or_default().push(index)
                }
                // Virtual objects (no definition) and objects without parameters.
                _ => answers[index] = Some(Ok(ParamValues::new())),
            }
        }
        for (id, indices) in batches {
            let Some(provider) = self.registry.provider(id) else {
                continue;
            };
            let calls: Vec<GetRequest> = indices
                .iter()
                .map(|index| GetRequest {
                    object: requests[*index].object.clone(),
                    params: requests[*index].params.clone(),
                })
                .collect();
            let mut results = provider.get(&calls).await.into_iter();
            for index in indices {
                let request = &requests[index];
                let def = routes
                    .get(request.supported.as_str())
                    .copied()
                    .flatten()
                    .map(|(_, def)| def);
                let answer = match (results.next(), def) {
                    (Some(Ok(values)), Some(def)) => Ok(filter_read(def, &request.params, values)),
                    (Some(Ok(_)), None) => Ok(ParamValues::new()),
                    (Some(Err(error)), _) => Err(DmError::provider(&request.object, error)),
                    (None, _) => Err(DmError::provider(
                        &request.object,
                        crate::provider::ProviderError::new(
                            usp_codec::UspErrorCode::InternalError,
                            format!("provider \"{}\" returned too few answers", provider.name()),
                        ),
                    )),
                };
                answers[index] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Ok(ParamValues::new())))
            .collect()
    }

    /// Reads the same parameters of many objects that share one supported path (the
    /// instances a search expression tests): one route lookup, one provider call, the object
    /// paths moved into the call rather than copied.
    pub(crate) async fn read_objects(
        &self,
        supported: &str,
        objects: Vec<String>,
        params: &[String],
    ) -> Vec<Result<ParamValues, DmError>> {
        let count = objects.len();
        let def = match self.registry.object(supported) {
            Some(def) if !def.params.is_empty() => def,
            _ => return (0..count).map(|_| Ok(ParamValues::new())).collect(),
        };
        let provider = match self.owner_of(supported) {
            Ok(provider) => provider,
            Err(error) => return (0..count).map(|_| Err(error.clone())).collect(),
        };
        let calls: Vec<GetRequest> = objects
            .into_iter()
            .map(|object| GetRequest {
                object,
                params: params.to_vec(),
            })
            .collect();
        let mut results = provider.get(&calls).await.into_iter();
        calls
            .iter()
            .map(|call| match results.next() {
                Some(Ok(values)) => Ok(filter_read(def, params, values)),
                Some(Err(error)) => Err(DmError::provider(&call.object, error)),
                None => Err(DmError::provider(
                    &call.object,
                    crate::provider::ProviderError::new(
                        usp_codec::UspErrorCode::InternalError,
                        format!("provider \"{}\" returned too few answers", provider.name()),
                    ),
                )),
            })
            .collect()
    }

    /// Reads one parameter of one object.
    pub async fn read_param(
        &self,
        object: &ResolvedObject,
        param: &str,
    ) -> Result<String, DmError> {
        let request = ReadRequest {
            object: object.path.clone(),
            supported: object.supported.clone(),
            params: vec![param.to_string()],
        };
        let mut answers = self.read(std::slice::from_ref(&request)).await;
        match answers.pop() {
            Some(Ok(mut values)) => Ok(values.remove(param).unwrap_or_default()),
            Some(Err(error)) => Err(error),
            None => Ok(String::new()),
        }
    }
}

/// Keeps the schema's parameters (and only those asked for) and blanks write-only values.
fn filter_read(def: &ObjectDef, params: &[String], values: ParamValues) -> ParamValues {
    values
        .into_iter()
        .filter_map(|(name, value)| {
            let param = def.param(&name)?;
            if !params.is_empty() && !params.contains(&name) {
                return None;
            }
            let value = if param.access == ParamAccess::WriteOnly {
                String::new()
            } else {
                value
            };
            Some((name, value))
        })
        .collect()
}
