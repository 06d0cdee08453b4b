//! The Notifier's behaviour, driven through its public API over a real data model.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
use std::sync::{Arc, Mutex};
use std::time::Duration;

use usp_codec::usp_proto::usp::body::MsgBody;
use usp_codec::usp_proto::usp::notify::Notification;
use usp_codec::usp_proto::usp::request::ReqType;
use usp_dm::{Args, Change, ChangeSink, CommitHook, DmError, ParamValues, Snapshot};

use super::*;
use crate::builtin::controller_trust::ControllerTrustProvider;
use crate::builtin::local_agent::{self, CONTROLLER_TABLE};
use crate::messages::notify::{self as build, Envelope};

const FULL: &str = "Device.LocalAgent.ControllerTrust.Role.1";
const RECIPIENT: &str = "Device.LocalAgent.Controller.1";

struct Fx {
    dm: DataModel,
    tables: MemoryProvider,
    changes: Arc<Mutex<Vec<Change>>>,
    notifier: Notifier,
}

impl Fx {
    /// A data model with the LocalAgent tables and ControllerTrust, and Controller.1
    /// (`ctrl`) holding `roles`.
    async fn new(roles: &str) -> Fx {
        let changes: Arc<Mutex<Vec<Change>>> = Arc::default();
        let sink = Arc::clone(&changes);
        let mut dm = DataModel::new(ChangeSink::new(move |change| {
            sink.lock().unwrap().push(change)
        }));
        let hook: CommitHook = Arc::new(|_| {});
        let tables = local_agent::tables(hook.clone()).unwrap();
        let trust = ControllerTrustProvider::new(&Snapshot::default(), tables.clone(), hook)
            .await
            .unwrap();
        dm.register(Arc::new(tables.clone())).unwrap();
        dm.register(Arc::new(trust.clone())).unwrap();
        let controller: ParamValues = [
            ("EndpointID", "ctrl"),
            ("Enable", "true"),
            ("AssignedRole", roles),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        tables.add_instance(CONTROLLER_TABLE, &controller).unwrap();
        let mut notifier = Notifier::new(tables.clone(), trust.trust());
        notifier.load().await;
        let fx = Fx {
            dm,
            tables,
            changes,
            notifier,
        };
        fx.changes.lock().unwrap().clear();
        fx
    }

    /// Feeds every pushed change to the notifier.
    async fn pump(&mut self, now: Instant) -> Vec<Outbound> {
        let changes = std::mem::take(&mut *self.changes.lock().unwrap());
        let mut out = Vec::new();
        for change in changes {
            out.extend(self.notifier.on_change(&self.dm, &change, now).await);
        }
        out
    }

    async fn add(&mut self, table: &str, params: &[(&str, &str)]) -> Result<u32, DmError> {
        let resolution = self.dm.resolve_str(table).await.unwrap();
        let params: ParamValues = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut tx = self.dm.begin();
        let number = tx.add(&resolution.objects[0], &params).await?;
        tx.commit().await?;
        Ok(number)
    }

    async fn set(&mut self, object: &str, name: &str, value: &str) {
        let resolution = self.dm.resolve_str(object).await.unwrap();
        let mut tx = self.dm.begin();
        tx.set(&resolution.objects[0], name, value).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn subscribe(
        &mut self,
        id: &str,
        notif_type: &str,
        references: &str,
        extra: &[(&str, &str)],
    ) -> Vec<Outbound> {
        let mut params = vec![
            ("Enable", "true"),
            ("ID", id),
            ("Recipient", RECIPIENT),
            ("NotifType", notif_type),
            ("ReferenceList", references),
        ];
        params.extend_from_slice(extra);
        self.add(SUBSCRIPTION_TABLE, &params).await.unwrap();
        self.pump(Instant::now()).await
    }
}

fn notify_of(out: &Outbound) -> usp::Notify {
    let Some(MsgBody::Request(request)) = out.msg.body.clone().and_then(|b| b.msg_body) else {
        panic!("not a request: {:?}", out.msg);
    };
    let Some(ReqType::Notify(notify)) = request.req_type else {
        panic!("not a Notify: {request:?}");
    };
    notify
}

fn msg_id(out: &Outbound) -> String {
    out.msg.header.as_ref().unwrap().msg_id.clone()
}

#[tokio::test]
async fn tp_1_57_object_creation_names_the_instance_and_its_unique_keys() {
    let mut fx = Fx::new(FULL).await;
    let out = fx
        .subscribe(
            "sub-1",
            "ObjectCreation",
            "Device.LocalAgent.Subscription.",
            &[],
        )
        .await;
    // The subscription's own creation happened before it existed: nothing to report.
    assert!(out.is_empty());
    let out = fx
        .subscribe("sub-2", "ValueChange", "Device.LocalAgent.EndpointID", &[])
        .await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].endpoint_id, "ctrl");
    let notify = notify_of(&out[0]);
    assert_eq!(notify.subscription_id, "sub-1");
    assert!(!notify.send_resp);
    let Some(Notification::ObjCreation(creation)) = notify.notification else {
        panic!("expected ObjectCreation: {notify:?}");
    };
    assert_eq!(creation.obj_path, "Device.LocalAgent.Subscription.2.");
    assert_eq!(
        creation.unique_keys.get("ID").map(String::as_str),
        Some("sub-2")
    );
    assert_eq!(
        creation.unique_keys.get("Recipient").map(String::as_str),
        Some(RECIPIENT)
    );
}

#[tokio::test]
async fn tp_1_54_value_change_is_retried_in_the_spec_windows_until_answered() {
    let mut fx = Fx::new(FULL).await;
    fx.subscribe(
        "vc",
        "ValueChange",
        "Device.LocalAgent.Controller.1.ProvisioningCode",
        &[("NotifRetry", "true")],
    )
    .await;
    let start = Instant::now();
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "abc")
        .await;
    let out = fx.pump(start).await;
    assert_eq!(out.len(), 1, "{out:?}");
    let notify = notify_of(&out[0]);
    assert!(notify.send_resp);
    let Some(Notification::ValueChange(change)) = &notify.notification else {
        panic!("expected ValueChange: {notify:?}");
    };
    assert_eq!(
        change.param_path,
        "Device.LocalAgent.Controller.1.ProvisioningCode"
    );
    assert_eq!(change.param_value, "abc");
    let first_id = msg_id(&out[0]);

    let first_retry = fx.notifier.next_deadline().unwrap() - start;
    assert!(
        (5.0..=10.0).contains(&first_retry.as_secs_f64()),
        "{first_retry:?}"
    );
    assert!(
        fx.notifier
            .due(&fx.dm, start + Duration::from_secs(4))
            .await
            .is_empty()
    );
    let at = start + first_retry;
    let retried = fx.notifier.due(&fx.dm, at).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(msg_id(&retried[0]), first_id, "a retry reuses the msg_id");

    let second_retry = fx.notifier.next_deadline().unwrap() - at;
    assert!(
        (10.0..=20.0).contains(&second_retry.as_secs_f64()),
        "{second_retry:?}"
    );
    fx.notifier.on_notify_resp(&first_id);
    assert_eq!(fx.notifier.awaiting_response(), 0);
    assert!(
        fx.notifier
            .due(&fx.dm, at + Duration::from_secs(3600))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn notif_expiration_stops_the_retries() {
    let mut fx = Fx::new(FULL).await;
    fx.subscribe(
        "vc",
        "ValueChange",
        "Device.LocalAgent.Controller.*.ProvisioningCode",
        &[("NotifRetry", "true"), ("NotifExpiration", "12")],
    )
    .await;
    let start = Instant::now();
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
        .await;
    assert_eq!(fx.pump(start).await.len(), 1);
    let late = start + Duration::from_secs(12);
    assert!(fx.notifier.due(&fx.dm, late).await.is_empty());
    assert_eq!(fx.notifier.awaiting_response(), 0);
}

#[tokio::test]
async fn search_expression_references_follow_the_data() {
    let mut fx = Fx::new(FULL).await;
    fx.subscribe(
        "vc",
        "ValueChange",
        r#"Device.LocalAgent.Controller.[EndpointID=="ctrl"].ProvisioningCode"#,
        &[],
    )
    .await;
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "one")
        .await;
    assert_eq!(fx.pump(Instant::now()).await.len(), 1);
    fx.set("Device.LocalAgent.Controller.1.", "EndpointID", "other")
        .await;
    fx.pump(Instant::now()).await;
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "two")
        .await;
    assert!(fx.pump(Instant::now()).await.is_empty());
}

#[tokio::test]
async fn notifications_need_the_recipients_notify_permission() {
    let mut fx = Fx::new(FULL).await;
    // A role that reads everything and may be notified of nothing.
    fx.add(
        "Device.LocalAgent.ControllerTrust.Role.",
        &[("Enable", "true"), ("Name", "Reader")],
    )
    .await
    .unwrap();
    fx.add(
        "Device.LocalAgent.ControllerTrust.Role.3.Permission.",
        &[
            ("Enable", "true"),
            ("Targets", "Device."),
            ("Param", "r---"),
            ("Obj", "r---"),
            ("InstantiatedObj", "r---"),
            ("CommandEvent", "r---"),
        ],
    )
    .await
    .unwrap();
    fx.set(
        "Device.LocalAgent.Controller.1.",
        "AssignedRole",
        "Device.LocalAgent.ControllerTrust.Role.3",
    )
    .await;
    fx.pump(Instant::now()).await;
    fx.subscribe("vc", "ValueChange", "Device.LocalAgent.Controller.1.", &[])
        .await;
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
        .await;
    assert!(fx.pump(Instant::now()).await.is_empty());

    fx.set(
        "Device.LocalAgent.ControllerTrust.Role.3.Permission.1.",
        "Param",
        "r--n",
    )
    .await;
    fx.pump(Instant::now()).await;
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "y")
        .await;
    assert_eq!(fx.pump(Instant::now()).await.len(), 1);
}

#[tokio::test]
async fn object_deletion_and_disabled_subscriptions() {
    let mut fx = Fx::new(FULL).await;
    fx.subscribe(
        "del",
        "ObjectDeletion",
        "Device.LocalAgent.Subscription.*.",
        &[],
    )
    .await;
    fx.subscribe("other", "ValueChange", "Device.LocalAgent.EndpointID", &[])
        .await;
    fx.tables
        .delete_instance("Device.LocalAgent.Subscription.2.")
        .unwrap();
    let out = fx.pump(Instant::now()).await;
    assert_eq!(out.len(), 1);
    let Some(Notification::ObjDeletion(deletion)) = notify_of(&out[0]).notification else {
        panic!("expected ObjectDeletion");
    };
    assert_eq!(deletion.obj_path, "Device.LocalAgent.Subscription.2.");

    fx.set("Device.LocalAgent.Subscription.1.", "Enable", "false")
        .await;
    fx.pump(Instant::now()).await;
    assert_eq!(fx.notifier.subscriptions(), 0);
    fx.tables
        .add_instance(SUBSCRIPTION_TABLE, &ParamValues::new())
        .unwrap();
    fx.tables
        .delete_instance("Device.LocalAgent.Subscription.3.")
        .unwrap();
    assert!(fx.pump(Instant::now()).await.is_empty());
}

#[tokio::test]
async fn boot_event_carries_each_recipients_parameter_map() {
    let mut fx = Fx::new(FULL).await;
    fx.tables
        .add_instance(
            "Device.LocalAgent.Controller.1.BootParameter.",
            &[
                ("Enable".to_string(), "true".to_string()),
                (
                    "ParameterName".to_string(),
                    "Device.LocalAgent.Controller.*.EndpointID".to_string(),
                ),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap();
    fx.subscribe("boot", "Event", "Device.Boot!", &[]).await;
    let args = Args::from([("Cause".to_string(), "LocalReboot".to_string())]);
    let out = fx
        .notifier
        .on_event(&fx.dm, "Device.", "Boot!", args, Instant::now())
        .await;
    assert_eq!(out.len(), 1);
    let Some(Notification::Event(event)) = notify_of(&out[0]).notification else {
        panic!("expected an Event");
    };
    assert_eq!(
        (event.obj_path.as_str(), event.event_name.as_str()),
        ("Device.", "Boot!")
    );
    assert_eq!(event.params["Cause"], "LocalReboot");
    assert_eq!(
        event.params["ParameterMap"],
        r#"{"Device.LocalAgent.Controller.1.EndpointID":"ctrl"}"#
    );
}

#[tokio::test]
async fn periodic_event_fires_every_interval() {
    let mut fx = Fx::new(FULL).await;
    fx.set(
        "Device.LocalAgent.Controller.1.",
        "PeriodicNotifInterval",
        "60",
    )
    .await;
    fx.pump(Instant::now()).await;
    fx.subscribe("p", "Event", "Device.LocalAgent.Periodic!", &[])
        .await;
    let start = Instant::now();
    assert!(fx.notifier.due(&fx.dm, start).await.is_empty());
    let first = fx.notifier.next_deadline().unwrap();
    let wait = first - start;
    assert!(
        wait <= Duration::from_secs(60) && wait > Duration::from_secs(55),
        "{wait:?}"
    );
    let out = fx.notifier.due(&fx.dm, first).await;
    assert_eq!(out.len(), 1);
    let Some(Notification::Event(event)) = notify_of(&out[0]).notification else {
        panic!("expected Periodic!");
    };
    assert_eq!(event.event_name, "Periodic!");
    let second = fx.notifier.next_deadline().unwrap() - first;
    assert!((56..=64).contains(&second.as_secs()), "{second:?}");
}

#[tokio::test]
async fn a_periodic_subscription_schedules_its_first_event_without_other_work() {
    let mut fx = Fx::new(FULL).await;
    fx.set(
        "Device.LocalAgent.Controller.1.",
        "PeriodicNotifInterval",
        "2",
    )
    .await;
    fx.pump(Instant::now()).await;
    assert_eq!(fx.notifier.next_deadline(), None);
    let before = Instant::now();
    fx.subscribe("p", "Event", "Device.LocalAgent.Periodic!", &[])
        .await;
    let first = fx.notifier.next_deadline().expect("a Periodic! fire time");
    assert!(
        first > before && first <= Instant::now() + Duration::from_secs(2),
        "{:?}",
        first - before
    );
    fx.tables
        .delete_instance("Device.LocalAgent.Subscription.1.")
        .unwrap();
    fx.pump(Instant::now()).await;
    assert_eq!(fx.notifier.next_deadline(), None);
}

fn identity() -> DeviceIdentity {
    DeviceIdentity {
        oui: "00D09E".into(),
        product_class: "Box".into(),
        serial_number: "42".into(),
    }
}

#[tokio::test]
async fn on_board_request_is_retried_on_the_controllers_schedule_until_answered() {
    let mut fx = Fx::new(FULL).await;
    let row = "Device.LocalAgent.Controller.1.";
    fx.set(row, "USPNotifRetryMinimumWaitInterval", "2").await;
    fx.set(row, "USPNotifRetryIntervalMultiplier", "1500").await;
    fx.pump(Instant::now()).await;
    let start = Instant::now();
    let out = fx
        .notifier
        .on_board_request(RECIPIENT, &identity(), start)
        .unwrap();
    assert_eq!(out.endpoint_id, "ctrl");
    let notify = notify_of(&out);
    assert!(
        notify.send_resp,
        "R-NOT.6a: an OnBoardRequest wants a NotifyResp"
    );
    assert_eq!(notify.subscription_id, "", "R-NOT.7");
    let Some(Notification::OnBoardReq(request)) = &notify.notification else {
        panic!("expected OnBoardRequest: {notify:?}");
    };
    assert_eq!(
        (
            request.oui.as_str(),
            request.product_class.as_str(),
            request.serial_number.as_str()
        ),
        ("00D09E", "Box", "42")
    );
    let id = msg_id(&out);

    // m = 2 s, k = 1.5: the 1st retry waits 2–3 s, the 2nd 3–4.5 s.
    let first = fx.notifier.next_deadline().unwrap() - start;
    assert!((2.0..=3.0).contains(&first.as_secs_f64()), "{first:?}");
    let at = start + first;
    let retried = fx.notifier.due(&fx.dm, at).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(msg_id(&retried[0]), id, "a retry reuses the msg_id");
    let second = fx.notifier.next_deadline().unwrap() - at;
    assert!((3.0..=4.5).contains(&second.as_secs_f64()), "{second:?}");

    // R-NOT.6a: it never expires; a week later it is still retried.
    let week = start + Duration::from_secs(7 * 86_400);
    assert_eq!(fx.notifier.due(&fx.dm, week).await.len(), 1);
    assert_eq!(fx.notifier.awaiting_response(), 1);
    // Nor does a restart end it: the next run takes it back.
    let (saved, _) = fx.notifier.take_journal();
    let mut next = Notifier::new(fx.tables.clone(), fx.notifier.trust.clone());
    next.load().await;
    next.restore(saved, week);
    assert_eq!(next.awaiting_response(), 1);
    assert_eq!(msg_id(&next.due(&fx.dm, week).await[0]), id);
    fx.notifier.on_notify_resp(&id);
    assert_eq!(fx.notifier.awaiting_response(), 0);
    assert_eq!(fx.notifier.next_deadline(), None);
}

#[tokio::test]
async fn retries_stop_when_the_controller_is_disabled() {
    let mut fx = Fx::new(FULL).await;
    let start = Instant::now();
    fx.notifier
        .on_board_request(RECIPIENT, &identity(), start)
        .unwrap();
    fx.set("Device.LocalAgent.Controller.1.", "Enable", "false")
        .await;
    fx.pump(start).await;
    let due = fx.notifier.next_deadline().unwrap();
    assert!(fx.notifier.due(&fx.dm, due).await.is_empty());
    assert_eq!(fx.notifier.awaiting_response(), 0);
}

#[tokio::test]
async fn notifys_of_persistent_subscriptions_are_journaled_and_restored() {
    let mut fx = Fx::new(FULL).await;
    let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
    let kept = [
        ("NotifRetry", "true"),
        ("Persistent", "true"),
        ("NotifExpiration", "3600"),
    ];
    fx.subscribe("kept", "ValueChange", reference, &kept).await;
    fx.subscribe(
        "volatile",
        "ValueChange",
        reference,
        &[("NotifRetry", "true")],
    )
    .await;
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
        .await;
    let out = fx.pump(Instant::now()).await;
    assert_eq!(out.len(), 2);
    let kept = out
        .iter()
        .find(|out| notify_of(out).subscription_id == "kept")
        .unwrap();
    let (saved, removed) = fx.notifier.take_journal();
    assert!(removed.is_empty());
    assert_eq!(saved.len(), 1, "only the persistent subscription's Notify");
    assert_eq!(saved[0].msg_id, msg_id(kept));
    assert_eq!(saved[0].endpoint_id, "ctrl");
    let give_up = saved[0].give_up.unwrap() - unix_now();
    assert!((3599..=3600).contains(&give_up), "{give_up}");

    // The next run takes it back and resends it at once, with the same msg_id.
    let mut next = Notifier::new(fx.tables.clone(), fx.notifier.trust.clone());
    next.load().await;
    let boot = Instant::now();
    next.restore(saved, boot);
    assert_eq!(next.next_deadline(), Some(boot));
    let resent = next.due(&fx.dm, boot).await;
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].msg, kept.msg);
    let (saved, _) = next.take_journal();
    assert_eq!(saved[0].retries, 1, "the retry count is kept up to date");

    // The Controller turns up: no waiting for the retry window.
    let contact = boot + Duration::from_millis(200);
    assert!(next.next_deadline().unwrap() > contact);
    next.reachable("other", contact);
    assert!(next.next_deadline().unwrap() > contact);
    next.reachable("ctrl", contact);
    assert_eq!(next.next_deadline(), Some(contact));
    next.on_notify_resp(&msg_id(kept));
    assert_eq!(next.take_journal(), (vec![], vec![msg_id(kept)]));
    assert_eq!(next.awaiting_response(), 0);
}

#[tokio::test]
async fn retries_stop_when_their_subscription_is_deleted_disabled_or_stops_retrying() {
    let mut fx = Fx::new(FULL).await;
    let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
    let retry = [("NotifRetry", "true"), ("Persistent", "true")];
    for id in ["deleted", "disabled", "quiet", "kept"] {
        fx.subscribe(id, "ValueChange", reference, &retry).await;
    }
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
        .await;
    assert_eq!(fx.pump(Instant::now()).await.len(), 4);
    assert_eq!(fx.notifier.awaiting_response(), 4);
    fx.notifier.take_journal();

    let row = |id: &str| format!("{SUBSCRIPTION_TABLE}[ID==\"{id}\"].");
    fx.set(&row("disabled"), "Enable", "false").await;
    fx.set(&row("quiet"), "NotifRetry", "false").await;
    let resolution = fx.dm.resolve_str(&row("deleted")).await.unwrap();
    let mut tx = fx.dm.begin();
    tx.delete(&resolution.objects[0]).await.unwrap();
    tx.commit().await.unwrap();
    fx.pump(Instant::now()).await;

    assert_eq!(fx.notifier.awaiting_response(), 1);
    let (saved, removed) = fx.notifier.take_journal();
    assert!(saved.is_empty());
    assert_eq!(removed.len(), 3, "the store forgets them too");
    let later = Instant::now() + Duration::from_secs(3600);
    let retried = fx.notifier.due(&fx.dm, later).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(notify_of(&retried[0]).subscription_id, "kept");
}

#[tokio::test]
async fn stored_notifys_of_a_subscription_deleted_meanwhile_are_dropped() {
    let mut fx = Fx::new(FULL).await;
    let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
    let retry = [("NotifRetry", "true"), ("Persistent", "true")];
    fx.subscribe("gone", "ValueChange", reference, &retry).await;
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
        .await;
    let sent = fx.pump(Instant::now()).await;
    let (saved, _) = fx.notifier.take_journal();
    assert_eq!(saved.len(), 1);
    // The row goes while the agent is down: the next run must not resend its Notify.
    let row = format!("{SUBSCRIPTION_TABLE}[ID==\"gone\"].");
    let resolution = fx.dm.resolve_str(&row).await.unwrap();
    fx.tables
        .delete_instance(&resolution.objects[0].path)
        .unwrap();

    let mut next = Notifier::new(fx.tables.clone(), fx.notifier.trust.clone());
    next.load().await;
    next.restore(saved, Instant::now());
    assert_eq!(next.awaiting_response(), 0);
    assert_eq!(next.take_journal(), (vec![], vec![msg_id(&sent[0])]));
}

#[tokio::test]
async fn trigger_action_config_asks_for_its_settings_instead_of_notifying() {
    let mut fx = Fx::new(FULL).await;
    let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
    let settings = "Device.LocalAgent.Controller.1.PeriodicNotifInterval=600";
    fx.subscribe(
        "config",
        "ValueChange",
        reference,
        &[
            ("TriggerAction", "Config"),
            ("TriggerConfigSettings", settings),
        ],
    )
    .await;
    fx.subscribe(
        "both",
        "ValueChange",
        reference,
        &[
            ("TriggerAction", "NotifyAndConfig"),
            ("TriggerConfigSettings", settings),
        ],
    )
    .await;
    fx.notifier.take_trigger_writes();
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
        .await;
    let out = fx.pump(Instant::now()).await;
    assert_eq!(out.len(), 1, "Config alone sends no Notify");
    assert_eq!(notify_of(&out[0]).subscription_id, "both");
    let writes = fx.notifier.take_trigger_writes();
    assert_eq!(writes.len(), 2);
    assert!(writes.iter().all(|write| write.settings
        == vec![(
            "Device.LocalAgent.Controller.1.PeriodicNotifInterval".to_string(),
            "600".to_string()
        )]));
}

#[tokio::test]
async fn trigger_settings_the_recipient_may_not_write_are_left_out() {
    let mut fx = Fx::new(FULL).await;
    // Role.1 minus write access to the Controller table's PeriodicNotifInterval.
    fx.add(
        "Device.LocalAgent.ControllerTrust.Role.1.Permission.",
        &[
            ("Enable", "true"),
            ("Order", "50"),
            (
                "Targets",
                "Device.LocalAgent.Controller.1.PeriodicNotifInterval",
            ),
            ("Param", "r--n"),
        ],
    )
    .await
    .unwrap();
    fx.subscribe(
        "config",
        "ValueChange",
        "Device.LocalAgent.Controller.1.ProvisioningCode",
        &[
            ("TriggerAction", "Config"),
            (
                "TriggerConfigSettings",
                "Device.LocalAgent.Controller.1.PeriodicNotifInterval=600,Device.LocalAgent.Controller.1.ControllerCode=\"c\"",
            ),
        ],
    )
    .await;
    fx.notifier.take_trigger_writes();
    fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
        .await;
    fx.pump(Instant::now()).await;
    let writes = fx.notifier.take_trigger_writes();
    assert_eq!(
        writes[0].settings,
        vec![(
            "Device.LocalAgent.Controller.1.ControllerCode".to_string(),
            "c".to_string()
        )]
    );
}

#[tokio::test]
async fn stored_notifys_past_their_expiration_or_undecodable_are_dropped() {
    let fx = Fx::new(FULL).await;
    let mut notifier = Notifier::new(fx.tables.clone(), fx.notifier.trust.clone());
    let envelope = Envelope {
        msg_id: "old".into(),
        subscription_id: "s".into(),
        send_resp: true,
    };
    let expired = StoredNotify {
        msg_id: "old".into(),
        recipient: RECIPIENT.into(),
        endpoint_id: "ctrl".into(),
        msg: prost::Message::encode_to_vec(&build::object_deletion(&envelope, "Device.X.1.")),
        retries: 3,
        give_up: Some(unix_now() - 1),
    };
    let garbage = StoredNotify {
        msg_id: "bad".into(),
        msg: vec![0xff; 4],
        give_up: None,
        ..expired.clone()
    };
    notifier.restore(vec![expired, garbage], Instant::now());
    assert_eq!(notifier.awaiting_response(), 0);
    assert_eq!(
        notifier.take_journal(),
        (vec![], vec!["bad".to_string(), "old".to_string()])
    );
}

#[tokio::test]
async fn parameters_marked_value_change_ignored_are_never_notified() {
    let mut fx = Fx::new(FULL).await;
    let mut object = usp_dm::ObjectDef::new("Device.X_Test.");
    object.params = vec![
        usp_dm::ParamDef::new("Counter", usp_dm::ValueType::UnsignedInt)
            .access(usp_dm::ParamAccess::ReadWrite)
            .value_change_ignored(),
        usp_dm::ParamDef::new("Name", usp_dm::ValueType::String)
            .access(usp_dm::ParamAccess::ReadWrite),
    ];
    let schema: usp_dm::Schema = std::iter::once(object).collect();
    fx.dm
        .register(Arc::new(MemoryProvider::new("test", schema)))
        .unwrap();
    fx.subscribe("x", "ValueChange", "Device.X_Test.", &[])
        .await;
    fx.set("Device.X_Test.", "Counter", "7").await;
    assert!(fx.pump(Instant::now()).await.is_empty());
    fx.set("Device.X_Test.", "Name", "n").await;
    assert_eq!(fx.pump(Instant::now()).await.len(), 1);
}

#[tokio::test]
async fn time_to_live_deletes_the_subscription() {
    let mut fx = Fx::new(FULL).await;
    fx.subscribe(
        "ttl",
        "ValueChange",
        "Device.LocalAgent.",
        &[("TimeToLive", "10")],
    )
    .await;
    let deadline = fx.notifier.next_deadline().unwrap();
    assert!(deadline <= Instant::now() + Duration::from_secs(10));
    fx.notifier.due(&fx.dm, deadline).await;
    assert_eq!(fx.notifier.subscriptions(), 0);
    assert!(
        fx.tables
            .instances(SUBSCRIPTION_TABLE)
            .await
            .unwrap()
            .is_empty()
    );
}
