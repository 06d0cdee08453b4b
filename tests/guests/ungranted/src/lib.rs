//! A plugin that imports an interface no manifest can grant (`usp:forbidden/shell`), for the
//! runtime's "ungranted import fails at load, naming it" test.

use usp_sdk::{Fault, Object, ObjectPath, Param, Plugin, Schema, Type, Values};

wit_bindgen::generate!({
    inline: "
        package usp:forbidden;
        interface shell { run: func(command: string) -> string; }
        world forbidden { import shell; }
    ",
    world: "forbidden",
});

struct Ungranted;

impl Plugin for Ungranted {
    fn schema(&self) -> Schema {
        Schema::new()
            .object(Object::new("Device.X_TEST_Ungranted.").param(Param::new("Out", Type::String)))
    }

    fn get(&self, object: &ObjectPath) -> Result<Values, Fault> {
        let _ = object;
        Ok(Values::new().with("Out", usp::forbidden::shell::run("id")))
    }
}

usp_sdk::export_plugin!(Ungranted);
