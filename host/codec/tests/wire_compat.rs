//! Wire compatibility with an independent USP codec (`rusp-lib`, quick-protobuf based): every
//! Record type and every Msg type, with every field set, is encoded by our prost types, decoded
//! and re-encoded by rusp-lib, and decoded again by us. A wrong field number, type or wire type
//! in our `.proto` files makes a field vanish or change on the way, and the test fails.

use std::collections::BTreeMap;

use usp_codec::usp_proto::Message;
use usp_codec::usp_proto::usp::{self, request::ReqType, response::RespType};
use usp_codec::usp_proto::usp_record::{self as rec, record::RecordType};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn through_rusp_msg(msg: &usp::Msg) -> usp::Msg {
    let bytes = msg.encode_to_vec();
    let theirs = rusp_lib::usp_decoder::try_decode_msg(&bytes).expect("rusp decodes our Msg");
    let back = theirs.to_vec().expect("rusp re-encodes the Msg");
    usp::Msg::decode(back.as_slice()).expect("we decode rusp's Msg")
}

fn through_rusp_record(record: &rec::Record) -> rec::Record {
    let bytes = record.encode_to_vec();
    let theirs = rusp_lib::usp_decoder::try_decode_record(&bytes).expect("rusp decodes our Record");
    let back = theirs.to_vec().expect("rusp re-encodes the Record");
    rec::Record::decode(back.as_slice()).expect("we decode rusp's Record")
}

fn request(req: ReqType) -> usp::Msg {
    usp_codec::msg::request("msg-1", req)
}

fn response(resp: RespType) -> usp::Msg {
    usp_codec::msg::response("msg-1", resp)
}

fn requests() -> Vec<usp::Msg> {
    use usp::notify::{
        Event, Notification, ObjectCreation, ObjectDeletion, OnBoardRequest, OperationComplete,
        ValueChange, operation_complete,
    };
    let notify = |notification| {
        request(ReqType::Notify(usp::Notify {
            subscription_id: "sub-1".into(),
            send_resp: true,
            notification: Some(notification),
        }))
    };
    vec![
        request(ReqType::Get(usp::Get {
            param_paths: vec![
                "Device.LocalAgent.".into(),
                "Device.DeviceInfo.UpTime".into(),
            ],
            max_depth: 2,
        })),
        request(ReqType::GetSupportedDm(usp::GetSupportedDm {
            obj_paths: vec!["Device.".into()],
            first_level_only: true,
            return_commands: true,
            return_events: true,
            return_params: true,
            return_unique_key_sets: true,
        })),
        request(ReqType::GetInstances(usp::GetInstances {
            obj_paths: vec!["Device.LocalAgent.Controller.".into()],
            first_level_only: true,
        })),
        request(ReqType::Set(usp::Set {
            allow_partial: true,
            update_objs: vec![usp::set::UpdateObject {
                obj_path: "Device.LocalAgent.Controller.1.".into(),
                param_settings: vec![usp::set::UpdateParamSetting {
                    param: "Enable".into(),
                    value: "true".into(),
                    required: true,
                }],
            }],
        })),
        request(ReqType::Add(usp::Add {
            allow_partial: true,
            create_objs: vec![usp::add::CreateObject {
                obj_path: "Device.LocalAgent.Subscription.".into(),
                param_settings: vec![usp::add::CreateParamSetting {
                    param: "ID".into(),
                    value: "s1".into(),
                    required: true,
                }],
            }],
        })),
        request(ReqType::Delete(usp::Delete {
            allow_partial: true,
            obj_paths: vec!["Device.LocalAgent.Subscription.1.".into()],
        })),
        request(ReqType::Operate(usp::Operate {
            command: "Device.Reboot()".into(),
            command_key: "key".into(),
            send_resp: true,
            input_args: map(&[("Cause", "RemoteReboot")]),
        })),
        request(ReqType::GetSupportedProtocol(usp::GetSupportedProtocol {
            controller_supported_protocol_versions: "1.3,1.4".into(),
        })),
        request(ReqType::Register(usp::Register {
            allow_partial: true,
            reg_paths: vec![usp::register::RegistrationPath {
                path: "Device.WiFi.".into(),
            }],
        })),
        request(ReqType::Deregister(usp::Deregister {
            paths: vec!["Device.WiFi.".into()],
        })),
        notify(Notification::Event(Event {
            obj_path: "Device.".into(),
            event_name: "Boot!".into(),
            params: map(&[("Cause", "LocalReboot")]),
        })),
        notify(Notification::ValueChange(ValueChange {
            param_path: "Device.Time.Enable".into(),
            param_value: "true".into(),
        })),
        notify(Notification::ObjCreation(ObjectCreation {
            obj_path: "Device.LocalAgent.Subscription.2.".into(),
            unique_keys: map(&[("Alias", "cpe-2")]),
        })),
        notify(Notification::ObjDeletion(ObjectDeletion {
            obj_path: "Device.LocalAgent.Subscription.2.".into(),
        })),
        notify(Notification::OperComplete(OperationComplete {
            obj_path: "Device.".into(),
            command_name: "ScheduleTimer()".into(),
            command_key: "k".into(),
            operation_resp: Some(operation_complete::OperationResp::ReqOutputArgs(
                operation_complete::OutputArgs {
                    output_args: map(&[("a", "b")]),
                },
            )),
        })),
        notify(Notification::OperComplete(OperationComplete {
            obj_path: "Device.".into(),
            command_name: "ScheduleTimer()".into(),
            command_key: "k".into(),
            operation_resp: Some(operation_complete::OperationResp::CmdFailure(
                operation_complete::CommandFailure {
                    err_code: 7022,
                    err_msg: "failed".into(),
                },
            )),
        })),
        notify(Notification::OnBoardReq(OnBoardRequest {
            oui: "00256D".into(),
            product_class: "gw".into(),
            serial_number: "1234".into(),
            agent_supported_protocol_versions: "1.4".into(),
        })),
    ]
}

fn responses() -> Vec<usp::Msg> {
    use usp::get_supported_dm_resp as gsdm;
    vec![
        response(RespType::GetResp(usp::GetResp {
            req_path_results: vec![usp::get_resp::RequestedPathResult {
                requested_path: "Device.LocalAgent.".into(),
                err_code: 7026,
                err_msg: "x".into(),
                resolved_path_results: vec![usp::get_resp::ResolvedPathResult {
                    resolved_path: "Device.LocalAgent.".into(),
                    result_params: map(&[("EndpointID", "proto::agent"), ("UpTime", "5")]),
                }],
            }],
        })),
        response(RespType::GetSupportedDmResp(usp::GetSupportedDmResp {
            req_obj_results: vec![gsdm::RequestedObjectResult {
                req_obj_path: "Device.".into(),
                err_code: 7026,
                err_msg: "e".into(),
                data_model_inst_uri: "urn:broadband-forum-org:tr-181-2-19-1-usp".into(),
                supported_objs: vec![gsdm::SupportedObjectResult {
                    supported_obj_path: "Device.LocalAgent.Subscription.{i}.".into(),
                    access: gsdm::ObjAccessType::ObjAddDelete as i32,
                    is_multi_instance: true,
                    supported_commands: vec![gsdm::SupportedCommandResult {
                        command_name: "Reboot()".into(),
                        input_arg_names: vec!["Cause".into()],
                        output_arg_names: vec!["Out".into()],
                        command_type: gsdm::CmdType::CmdAsync as i32,
                    }],
                    supported_events: vec![gsdm::SupportedEventResult {
                        event_name: "Boot!".into(),
                        arg_names: vec!["Cause".into()],
                    }],
                    supported_params: vec![gsdm::SupportedParamResult {
                        param_name: "Enable".into(),
                        access: gsdm::ParamAccessType::ParamReadWrite as i32,
                        value_type: gsdm::ParamValueType::ParamBoolean as i32,
                        value_change: gsdm::ValueChangeType::ValueChangeWillIgnore as i32,
                    }],
                    divergent_paths: vec!["Device.X.1.".into()],
                    unique_key_sets: vec![gsdm::SupportedUniqueKeySet {
                        key_names: vec!["Recipient".into(), "ID".into()],
                    }],
                }],
            }],
        })),
        response(RespType::GetInstancesResp(usp::GetInstancesResp {
            req_path_results: vec![usp::get_instances_resp::RequestedPathResult {
                requested_path: "Device.LocalAgent.Controller.".into(),
                err_code: 7016,
                err_msg: "m".into(),
                curr_insts: vec![usp::get_instances_resp::CurrInstance {
                    instantiated_obj_path: "Device.LocalAgent.Controller.1.".into(),
                    unique_keys: map(&[("EndpointID", "ctl")]),
                }],
            }],
        })),
        response(RespType::SetResp(usp::SetResp {
            updated_obj_results: vec![
                set_result(usp::set_resp::updated_object_result::operation_status::OperStatus::OperSuccess(
                    usp::set_resp::updated_object_result::operation_status::OperationSuccess {
                        updated_inst_results: vec![usp::set_resp::UpdatedInstanceResult {
                            affected_path: "Device.X.1.".into(),
                            param_errs: vec![set_param_error()],
                            updated_params: map(&[("A", "1")]),
                        }],
                    },
                )),
                set_result(usp::set_resp::updated_object_result::operation_status::OperStatus::OperFailure(
                    usp::set_resp::updated_object_result::operation_status::OperationFailure {
                        err_code: 7021,
                        err_msg: "required".into(),
                        updated_inst_failures: vec![usp::set_resp::UpdatedInstanceFailure {
                            affected_path: "Device.X.1.".into(),
                            param_errs: vec![set_param_error()],
                        }],
                    },
                )),
            ],
        })),
        response(RespType::AddResp(usp::AddResp {
            created_obj_results: vec![usp::add_resp::CreatedObjectResult {
                requested_path: "Device.X.".into(),
                oper_status: Some(usp::add_resp::created_object_result::OperationStatus {
                    oper_status: Some(
                        usp::add_resp::created_object_result::operation_status::OperStatus::OperSuccess(
                            usp::add_resp::created_object_result::operation_status::OperationSuccess {
                                instantiated_path: "Device.X.3.".into(),
                                param_errs: vec![usp::add_resp::ParameterError {
                                    param: "B".into(),
                                    err_code: 7012,
                                    err_msg: "range".into(),
                                }],
                                unique_keys: map(&[("Alias", "cpe-3")]),
                            },
                        ),
                    ),
                }),
            }],
        })),
        response(RespType::DeleteResp(usp::DeleteResp {
            deleted_obj_results: vec![usp::delete_resp::DeletedObjectResult {
                requested_path: "Device.X.*.".into(),
                oper_status: Some(usp::delete_resp::deleted_object_result::OperationStatus {
                    oper_status: Some(
                        usp::delete_resp::deleted_object_result::operation_status::OperStatus::OperSuccess(
                            usp::delete_resp::deleted_object_result::operation_status::OperationSuccess {
                                affected_paths: vec!["Device.X.1.".into()],
                                unaffected_path_errs: vec![usp::delete_resp::UnaffectedPathError {
                                    unaffected_path: "Device.X.2.".into(),
                                    err_code: 7024,
                                    err_msg: "locked".into(),
                                }],
                            },
                        ),
                    ),
                }),
            }],
        })),
        response(RespType::OperateResp(usp::OperateResp {
            operation_results: vec![
                usp::operate_resp::OperationResult {
                    executed_command: "Device.Reboot()".into(),
                    operation_resp: Some(usp::operate_resp::operation_result::OperationResp::ReqObjPath(
                        "Device.LocalAgent.Request.1".into(),
                    )),
                },
                usp::operate_resp::OperationResult {
                    executed_command: "Device.Reboot()".into(),
                    operation_resp: Some(
                        usp::operate_resp::operation_result::OperationResp::ReqOutputArgs(
                            usp::operate_resp::operation_result::OutputArgs {
                                output_args: map(&[("x", "y")]),
                            },
                        ),
                    ),
                },
                usp::operate_resp::OperationResult {
                    executed_command: "Device.Reboot()".into(),
                    operation_resp: Some(usp::operate_resp::operation_result::OperationResp::CmdFailure(
                        usp::operate_resp::operation_result::CommandFailure {
                            err_code: 7022,
                            err_msg: "no".into(),
                        },
                    )),
                },
            ],
        })),
        response(RespType::NotifyResp(usp::NotifyResp { subscription_id: "sub-1".into() })),
        response(RespType::GetSupportedProtocolResp(usp::GetSupportedProtocolResp {
            agent_supported_protocol_versions: "1.0,1.1,1.2,1.3,1.4".into(),
        })),
        response(RespType::RegisterResp(usp::RegisterResp {
            registered_path_results: vec![usp::register_resp::RegisteredPathResult {
                requested_path: "Device.WiFi.".into(),
                oper_status: Some(usp::register_resp::registered_path_result::OperationStatus {
                    oper_status: Some(
                        usp::register_resp::registered_path_result::operation_status::OperStatus::OperSuccess(
                            usp::register_resp::registered_path_result::operation_status::OperationSuccess {
                                registered_path: "Device.WiFi.".into(),
                            },
                        ),
                    ),
                }),
            }],
        })),
        response(RespType::DeregisterResp(usp::DeregisterResp {
            deregistered_path_results: vec![usp::deregister_resp::DeregisteredPathResult {
                requested_path: "".into(),
                oper_status: Some(usp::deregister_resp::deregistered_path_result::OperationStatus {
                    oper_status: Some(
                        usp::deregister_resp::deregistered_path_result::operation_status::OperStatus::OperSuccess(
                            usp::deregister_resp::deregistered_path_result::operation_status::OperationSuccess {
                                deregistered_path: vec!["Device.WiFi.".into(), "Device.IP.".into()],
                            },
                        ),
                    ),
                }),
            }],
        })),
        usp_codec::msg::error(
            "msg-1",
            usp_codec::UspErrorCode::InvalidValue,
            "bad value",
            vec![usp::error::ParamError {
                param_path: "Device.X.1.A".into(),
                err_code: 7012,
                err_msg: "out of range".into(),
            }],
        ),
    ]
}

fn set_result(
    status: usp::set_resp::updated_object_result::operation_status::OperStatus,
) -> usp::set_resp::UpdatedObjectResult {
    usp::set_resp::UpdatedObjectResult {
        requested_path: "Device.X.".into(),
        oper_status: Some(usp::set_resp::updated_object_result::OperationStatus {
            oper_status: Some(status),
        }),
    }
}

fn set_param_error() -> usp::set_resp::ParameterError {
    usp::set_resp::ParameterError {
        param: "A".into(),
        err_code: 7013,
        err_msg: "ro".into(),
    }
}

#[test]
fn every_request_survives_a_round_trip_through_rusp() {
    for msg in requests() {
        assert_eq!(through_rusp_msg(&msg), msg);
    }
}

#[test]
fn every_response_and_error_survives_a_round_trip_through_rusp() {
    for msg in responses() {
        assert_eq!(through_rusp_msg(&msg), msg);
    }
}

#[test]
fn every_record_type_survives_a_round_trip_through_rusp() {
    let payload = requests()[0].encode_to_vec();
    let types = vec![
        RecordType::NoSessionContext(rec::NoSessionContextRecord {
            payload: payload.clone(),
        }),
        RecordType::SessionContext(rec::SessionContextRecord {
            session_id: 2,
            sequence_id: 3,
            expected_id: 4,
            retransmit_id: 5,
            payload_sar_state: rec::session_context_record::PayloadSarState::Begin as i32,
            payloadrec_sar_state: rec::session_context_record::PayloadSarState::Complete as i32,
            payload: vec![payload.clone(), payload],
        }),
        RecordType::WebsocketConnect(rec::WebSocketConnectRecord {}),
        RecordType::MqttConnect(rec::MqttConnectRecord {
            version: rec::mqtt_connect_record::MqttVersion::V5 as i32,
            subscribed_topic: "usp/agent".into(),
        }),
        RecordType::StompConnect(rec::StompConnectRecord {
            version: 0,
            subscribed_destination: "/queue/agent".into(),
        }),
        RecordType::Disconnect(rec::DisconnectRecord {
            reason: "bye".into(),
            reason_code: 7105,
        }),
        RecordType::UdsConnect(rec::UdsConnectRecord {}),
    ];
    for record_type in types {
        let record = rec::Record {
            version: "1.4".into(),
            to_id: "proto::agent".into(),
            from_id: "proto::controller".into(),
            payload_security: rec::record::PayloadSecurity::Tls12 as i32,
            mac_signature: vec![1, 2, 3],
            sender_cert: b"-----BEGIN CERTIFICATE-----".to_vec(),
            record_type: Some(record_type),
            ..Default::default()
        };
        assert_eq!(through_rusp_record(&record), record);
    }
}

#[test]
fn usp_1_5_routing_fields_are_skipped_by_a_1_4_decoder() {
    let record = rec::Record {
        version: "1.4".into(),
        to_id: "proto::agent".into(),
        from_id: "proto::controller".into(),
        record_type: Some(RecordType::UdsConnect(rec::UdsConnectRecord {})),
        originator_id: "proto::first-hop".into(),
        destination_id: "proto::last-hop".into(),
        ..Default::default()
    };
    let ours = rec::Record::decode(record.encode_to_vec().as_slice()).unwrap();
    assert_eq!(ours.originator_id, "proto::first-hop");
    assert_eq!(ours.destination_id, "proto::last-hop");
    let through = through_rusp_record(&record);
    assert_eq!(through.to_id, "proto::agent");
    assert_eq!(through.originator_id, "");
}
