//! A plugin that misbehaves on request, for the runtime's fault tests. It serves
//! `Device.X_TEST_Faults.` (or the root named by its `root` config value). Reading the object
//! `<root><Fault>.` (`Trap`, `Panic`, `Loop`, `MemoryBomb`, `Recursion`, `Huge`, `Leak`) triggers that
//! fault; the root's `Ok` answers normally, `Calls` counts the reads this instance served (so a
//! test sees a re-instantiation), `Stored` is written through the key-value store, and the async
//! command `Work()` fires `Worked!` and completes at once.

use std::cell::Cell;

use usp_sdk::{
    Arg, Args, AsyncCommands, Fault, Object, ObjectPath, Outcome, Param, Plugin, Schema,
    Transaction, Type, Values, host,
};

struct Faulty {
    root: String,
    calls: Cell<u32>,
    commands: AsyncCommands,
}

impl Default for Faulty {
    fn default() -> Self {
        Faulty {
            root: host::config("root").unwrap_or_else(|| "Device.X_TEST_Faults.".to_string()),
            calls: Cell::new(0),
            commands: AsyncCommands::new(),
        }
    }
}

const FAULTS: [&str; 7] = [
    "Trap",
    "Panic",
    "Loop",
    "MemoryBomb",
    "Recursion",
    "Huge",
    "Leak",
];

#[inline(never)]
fn recurse(depth: u64, pad: &mut [u8; 256]) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    pad[(depth % 256) as usize] = depth as u8;
    let mut inner = *pad;
    recurse(depth + 1, &mut inner) + u64::from(inner[0])
}

fn misbehave(param: &str) -> Option<String> {
    match param {
        "Trap" => std::process::abort(),
        "Panic" => panic!("the faulty plugin panicked on purpose"),
        "Loop" => loop {
            std::hint::black_box(());
        },
        "MemoryBomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "Recursion" => Some(recurse(0, &mut [0u8; 256]).to_string()),
        "Huge" => Some("x".repeat(100 * 1024 * 1024)),
        // Each call makes the host hold one more stream handle that is never dropped.
        "Leak" => loop {
            std::mem::forget(wasip2::cli::stdout::get_stdout());
        },
        _ => None,
    }
}

impl Plugin for Faulty {
    fn schema(&self) -> Schema {
        let mut schema = Schema::new().object(
            Object::new(&self.root)
                .param(Param::new("Ok", Type::String))
                .param(Param::new("Calls", Type::UnsignedInt))
                .param(Param::new("Stored", Type::String).writable())
                .command("Work()", true, vec![], vec![Arg::new("Key", Type::String)])
                .event("Worked!", vec![Arg::new("Key", Type::String)]),
        );
        for fault in FAULTS {
            schema = schema.object(
                Object::new(&format!("{}{fault}.", self.root))
                    .param(Param::new("Value", Type::String)),
            );
        }
        schema
    }

    fn get(&self, object: &ObjectPath) -> Result<Values, Fault> {
        let Some(rest) = object.as_str().strip_prefix(self.root.as_str()) else {
            return Err(Fault::invalid_path(object));
        };
        if !rest.is_empty() {
            return match misbehave(rest.trim_end_matches('.')) {
                Some(value) => Ok(Values::new().with("Value", value)),
                None => Err(Fault::invalid_path(object)),
            };
        }
        self.calls.set(self.calls.get() + 1);
        Ok(Values::new()
            .with("Ok", "fine".to_string())
            .with("Calls", self.calls.get())
            .with("Stored", host::kv::get_string("Stored").unwrap_or_default()))
    }

    fn operate(
        &self,
        object: &ObjectPath,
        name: &str,
        key: &str,
        _input: &Args,
    ) -> Result<Outcome, Fault> {
        if name != "Work()" {
            return Err(Fault::invalid_path(object.param(name)));
        }
        let pending = self.commands.start();
        let token = pending.token();
        host::emit_event(
            &self.root,
            "Worked!",
            &Args::from([("Key".to_string(), key.to_string())]),
        );
        pending.complete(Ok(Args::from([("Key".to_string(), key.to_string())])));
        Ok(Outcome::Started(token))
    }

    fn begin(&self) -> Box<dyn Transaction> {
        Box::new(Store {
            root: self.root.clone(),
            staged: None,
        })
    }
}

struct Store {
    root: String,
    staged: Option<String>,
}

impl Transaction for Store {
    fn set(&mut self, object: &ObjectPath, param: &str, value: &str) -> Result<(), Fault> {
        if param != "Stored" {
            return Err(Fault::read_only(object.param(param)));
        }
        self.staged = Some(value.to_string());
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), Fault> {
        if let Some(value) = self.staged {
            host::kv::set("Stored", value.as_bytes())?;
            // Pushed on purpose although the agent reports committed values itself: the
            // fault tests check that pushes reach the sink.
            host::notify_value_changed(&format!("{}Stored", self.root), &value);
        }
        Ok(())
    }
}

usp_sdk::export_plugin!(Faulty::default());
