//! A well-behaved plugin for benchmarks: `Device.X_TEST_Bench.` with 100 read-only
//! `unsignedInt` parameters `P1`..`P100` (value = its number).

use usp_sdk::{Fault, Object, ObjectPath, Param, Plugin, Schema, Type, Values};

const COUNT: u32 = 100;

struct Wide;

impl Plugin for Wide {
    fn schema(&self) -> Schema {
        let mut object = Object::new("Device.X_TEST_Bench.");
        for number in 1..=COUNT {
            object = object.param(Param::new(&format!("P{number}"), Type::UnsignedInt));
        }
        Schema::new().object(object)
    }

    fn get(&self, object: &ObjectPath) -> Result<Values, Fault> {
        if object.matches::<0>("Device.X_TEST_Bench.").is_none() {
            return Err(Fault::invalid_path(object));
        }
        let mut values = Values::new();
        for number in 1..=COUNT {
            values.put(&format!("P{number}"), number);
        }
        Ok(values)
    }
}

usp_sdk::export_plugin!(Wide);
