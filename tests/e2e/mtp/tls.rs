//! R-SEC.0a over a TLS WebSocket: the agent's server requires client certificates from the
//! test CA, and a Record whose `from_id` is not named by the certificate the peer presented is
//! not processed, even when that `from_id` is a trusted Controller.

use super::expect;
use super::harness::{AGENT_ID, Agent, CONTROLLER, Certs, OTHER_CONTROLLER, Setup, bounded};
use super::peer::{Link, WsLink, get_record, recv_msg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_peer_whose_certificate_does_not_name_the_from_id_is_not_served() {
    bounded(async {
        let certs = Certs::new()?;
        certs.issue("controller", &["localhost"], Some(CONTROLLER))?;
        let mut agent = Agent::start(Setup {
            ws_tls: Some(certs.ws_server()),
            ..Setup::default()
        })
        .await?;
        let path = "Device.LocalAgent.EndpointID";
        // The peer proves it is CONTROLLER, then speaks as OTHER_CONTROLLER (a Controller the
        // agent trusts), then as itself. Records of one session are handled in order.
        let mut link =
            WsLink::connect(agent.ws_port, CONTROLLER, Some(&certs.client("controller"))).await?;
        link.send(get_record(OTHER_CONTROLLER, AGENT_ID, "impostor", path))
            .await?;
        link.send(get_record(CONTROLLER, AGENT_ID, "genuine", path))
            .await?;
        let (to, answer) = recv_msg(&mut link).await?;
        assert_eq!(to, CONTROLLER);
        assert_eq!(expect::param(&answer, "genuine", "EndpointID")?, AGENT_ID);
        assert!(
            agent
                .log()
                .contains("the peer certificate does not name its from_id"),
            "{}",
            agent.log()
        );
        agent.check_running()
    })
    .await
    .unwrap();
}
