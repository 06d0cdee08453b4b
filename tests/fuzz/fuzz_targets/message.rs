//! Record decoding plus message handling: bytes from an MTP go through `record::classify` and,
//! when they hold a Msg, through `usp_agent::messages::handle` against the agent's built-in
//! data model (`Device.`, `DeviceInfo.`, `LocalAgent.` and its stored tables), as the agent's
//! actor would run it. No panic, no hang; a request always gets an answer with its msg_id.
#![no_main]

use std::sync::Arc;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;
use usp_agent::builtin::ReadOnly;
use usp_agent::builtin::device::DeviceProvider;
use usp_agent::builtin::device_info::DeviceInfoProvider;
use usp_agent::builtin::local_agent::{self, LocalAgentProvider};
use usp_agent::config::DeviceInfoConfig;
use usp_agent::messages::{self, RequestContext};
use usp_codec::msg;
use usp_codec::record::{Inbound, classify};
use usp_dm::{CommitHook, DataModel, Provider};

const AGENT: &str = "proto::agent";

/// A fresh data model per input, so every crash reproduces from its input alone.
fn data_model() -> DataModel {
    let mut dm = DataModel::default();
    let hook: CommitHook = Arc::new(|_| {});
    let tables = local_agent::tables(hook).expect("built-in tables");
    let (actions, _) = mpsc::unbounded_channel();
    let providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(DeviceProvider::new(actions).expect("Device.")),
        Arc::new(ReadOnly(
            DeviceInfoProvider::new(DeviceInfoConfig::default(), Instant::now())
                .expect("DeviceInfo."),
        )),
        Arc::new(ReadOnly(
            LocalAgentProvider::new(
                AGENT.to_string(),
                "0.0.0".to_string(),
                "WebSocket".to_string(),
                Instant::now(),
                tables.clone(),
            )
            .expect("LocalAgent."),
        )),
        Arc::new(tables),
    ];
    for provider in providers {
        dm.register(provider).expect("register");
    }
    dm
}

fuzz_target!(|data: &[u8]| {
    let Inbound::Msg { from_id, msg } = classify(data, AGENT) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut dm = data_model();
        let ctx = RequestContext::new(from_id);
        let request_id = msg::is_request(&msg).then(|| msg::msg_id(&msg).map(str::to_string));
        let answer = messages::handle(&mut dm, &ctx, msg).await;
        if let (Some(Some(id)), Some(answer)) = (request_id, answer) {
            assert_eq!(msg::msg_id(&answer), Some(id.as_str()));
        }
    });
});
