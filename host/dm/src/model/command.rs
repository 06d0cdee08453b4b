//! Commands through the façade: [`DataModel::operate`] checks a command's input arguments
//! against its definition, then hands the call to the provider serving the object.

use super::{DataModel, ResolvedObject};
use crate::error::DmError;
use crate::provider::{Args, OperateOutcome};

impl DataModel {
    /// Runs a command on one object after checking its arguments (R-OPR.5: missing mandatory
    /// input → 7027; R-OPR.6: unknown inputs are dropped; inputs are type-checked).
    pub async fn operate(
        &self,
        object: &ResolvedObject,
        command: &str,
        command_key: &str,
        input: &Args,
    ) -> Result<OperateOutcome, DmError> {
        let path = format!("{}{command}", object.path);
        let def = self
            .registry
            .object(&object.supported)
            .and_then(|def| def.command(command))
            .ok_or_else(|| DmError::NotSupported { path: path.clone() })?;
        let mut checked = Args::new();
        for arg in &def.input {
            match input.get(&arg.name) {
                Some(value) => {
                    let value = crate::value::check(arg.value_type, &arg.constraints, value)
                        .map_err(|error| DmError::InvalidArguments {
                            path: path.clone(),
                            reason: format!("argument {}: {error}", arg.name),
                        })?;
                    checked.insert(arg.name.clone(), value);
                }
                None if arg.mandatory => {
                    return Err(DmError::InvalidArguments {
                        path,
                        reason: format!("mandatory argument {} is missing", arg.name),
                    });
                }
                None => {}
            }
        }
        // Table-valued arguments (`Rule.{i}.Name`) are passed through as given.
        for (name, value) in input {
            if name.contains('.') && !checked.contains_key(name) {
                checked.insert(name.clone(), value.clone());
            }
        }
        let provider = self.owner_of(&object.supported)?;
        provider
            .operate(&path, command_key, checked)
            .await
            .map_err(|error| DmError::provider(path, error))
    }
}
