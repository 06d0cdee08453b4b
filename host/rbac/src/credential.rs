//! Roles granted by certificate (`ControllerTrust.Credential.{i}`, R-SEC.25): which
//! `Credential` a TLS peer's presented chain falls under, walking the chain from the leaf up.
//!
//! A Credential names a `Device.LocalAgent.Certificate.{i}`; it matches a certificate of the
//! chain when it *is* that certificate (same DER) or *issued* it (the certificate's issuer DN
//! equals the Credential certificate's subject DN, byte for byte, and the certificate's
//! signature verifies with the Credential certificate's public key). rustls has already checked
//! the chain against the MTP's trust store; the signature check here is what keeps a CA that
//! merely carries the same name from lending its role.
//!
//! Pure: the caller looks certificate references up (`Device.LocalAgent.Certificate.{i}` rows
//! and their DER) through a closure.

use std::str::FromStr;

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// `Credential.{i}.AllowedUses`: what a certificate the Credential names may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedUses {
    /// `MTP-only`: the certificate authenticates MTP connections; it grants no role for the
    /// USP Messages that arrive over them.
    MtpOnly,
    /// `MTP-and-USP`: it also grants the Credential's `Role` to USP Messages (R-SEC.25).
    MtpAndUsp,
    /// `MTP-and-broker`: it authenticates MTP connections and a Trusted Broker (R-SEC.4a). This
    /// agent trusts no broker to vouch for `from_id`, so such a Credential grants no role: a
    /// broker's certificate never reaches the role lookup, and a controller's gets none from it.
    MtpAndBroker,
}

impl AllowedUses {
    /// Whether a matching certificate grants the Credential's roles to USP Messages.
    pub fn grants_usp_roles(self) -> bool {
        self == AllowedUses::MtpAndUsp
    }
}

/// A value that is not one of the three `AllowedUses` enumerations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AllowedUses \"{0}\" is not MTP-only, MTP-and-USP or MTP-and-broker")]
pub struct AllowedUsesError(pub String);

impl FromStr for AllowedUses {
    type Err = AllowedUsesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "MTP-only" => Ok(AllowedUses::MtpOnly),
            "MTP-and-USP" => Ok(AllowedUses::MtpAndUsp),
            "MTP-and-broker" => Ok(AllowedUses::MtpAndBroker),
            other => Err(AllowedUsesError(other.to_string())),
        }
    }
}

/// One `ControllerTrust.Credential.{i}` row, in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `Enable`.
    pub enable: bool,
    /// `Role`: the role references granted.
    pub roles: Vec<String>,
    /// `Credential`: the `Device.LocalAgent.Certificate.{i}` reference (possibly empty).
    pub certificate: String,
    /// `AllowedUses`.
    pub allowed_uses: AllowedUses,
}

/// A `Device.LocalAgent.Certificate.{i}` row as the matching needs it.
#[derive(Debug, Clone, Copy)]
pub struct TrustedCertificate<'a> {
    /// `Enable`: a disabled certificate matches nothing.
    pub enable: bool,
    /// The certificate, DER.
    pub der: &'a [u8],
}

/// The roles of the first Credential that matches the presented `chain` (DER, leaf first),
/// certificate by certificate from the leaf up (R-SEC.25: the role comes from the first
/// matching CA in the chain): at each certificate, a Credential naming that very certificate
/// before one naming its issuer, and Credentials in table order among equals. Disabled
/// Credentials, Credentials whose certificate is missing, disabled or unparsable, and
/// Credentials whose `AllowedUses` grants no USP role are skipped. `certificate` resolves a
/// `Credential` reference. `None`: no Credential applies.
///
/// A peer usually stops its chain below the root, or below an intermediate the agent holds
/// itself; rustls found the rest in the trust store. So past the presented certificates the
/// walk goes on through `anchors` (the trusted certificates, DER): each step to the anchor
/// that issued the certificate before it, signature checked, until a self-issued one.
pub fn credential_roles<'c, 'd>(
    chain: &[impl AsRef<[u8]>],
    anchors: &[impl AsRef<[u8]>],
    credentials: &'c [Credential],
    certificate: impl Fn(&str) -> Option<TrustedCertificate<'d>>,
) -> Option<&'c [String]> {
    let candidates: Vec<(&Credential, X509Certificate<'d>)> = credentials
        .iter()
        .filter(|credential| credential.enable && credential.allowed_uses.grants_usp_roles())
        .filter_map(|credential| {
            let trusted = certificate(&credential.certificate).filter(|c| c.enable)?;
            let (_, parsed) = X509Certificate::from_der(trusted.der).ok()?;
            Some((credential, parsed))
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    for certificate in walk(chain, anchors) {
        // The Credential's certificate sits at this place of the chain when it is this
        // certificate, one place higher when it issued it: nearer places are looked at first.
        let found = candidates
            .iter()
            .find(|(_, trusted)| trusted.as_raw() == certificate.as_raw())
            .or_else(|| {
                candidates
                    .iter()
                    .find(|(_, trusted)| issued(trusted, &certificate))
            });
        if let Some((credential, _)) = found {
            return Some(&credential.roles);
        }
    }
    None
}

/// The certificates from the leaf up: the presented ones, then the anchors that issued the
/// last one, one after the other. A presented certificate that does not parse ends the walk
/// there: nothing above it can be related to the leaf through it.
fn walk<'a>(
    chain: &'a [impl AsRef<[u8]>],
    anchors: &'a [impl AsRef<[u8]>],
) -> Vec<X509Certificate<'a>> {
    let mut walk = Vec::new();
    for presented in chain {
        match X509Certificate::from_der(presented.as_ref()) {
            Ok((_, parsed)) => walk.push(parsed),
            Err(_) => return walk,
        }
    }
    let anchors: Vec<X509Certificate<'a>> = anchors
        .iter()
        .filter_map(|der| X509Certificate::from_der(der.as_ref()).ok())
        .map(|(_, parsed)| parsed)
        .collect();
    while let Some(last) = walk.last() {
        if last.issuer().as_raw() == last.subject().as_raw() {
            break;
        }
        let next = anchors.iter().find(|anchor| {
            !walk.iter().any(|seen| seen.as_raw() == anchor.as_raw()) && issued(anchor, last)
        });
        match next {
            Some(anchor) => walk.push(anchor.clone()),
            None => break,
        }
    }
    walk
}

/// Whether `presented` names `trusted` as its issuer and carries its signature.
fn issued(trusted: &X509Certificate<'_>, presented: &X509Certificate<'_>) -> bool {
    presented.issuer().as_raw() == trusted.subject().as_raw()
        && presented
            .verify_signature(Some(trusted.public_key()))
            .is_ok()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A CA made with rcgen, able to issue.
    struct Ca {
        params: rcgen::CertificateParams,
        key: rcgen::KeyPair,
        der: Vec<u8>,
    }

    fn ca(name: &str, parent: Option<&Ca>) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = match parent {
            Some(parent) => params
                .signed_by(
                    &key,
                    &rcgen::Issuer::from_params(&parent.params, &parent.key),
                )
                .unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        Ca {
            der: cert.der().to_vec(),
            params,
            key,
        }
    }

    fn leaf(name: &str, issuer: &Ca) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![format!("{name}.example")]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        params
            .signed_by(
                &key,
                &rcgen::Issuer::from_params(&issuer.params, &issuer.key),
            )
            .unwrap()
            .der()
            .to_vec()
    }

    fn credential(certificate: &str, role: &str) -> Credential {
        Credential {
            enable: true,
            roles: vec![role.to_string()],
            certificate: certificate.to_string(),
            allowed_uses: AllowedUses::MtpAndUsp,
        }
    }

    /// `Certificate.{i}` rows by reference, with their Enable.
    type Rows = HashMap<&'static str, (bool, Vec<u8>)>;

    /// Name, presented chain, Credential table, the role expected.
    type Case<'a> = (&'a str, Vec<&'a Vec<u8>>, Vec<Credential>, Option<&'a str>);

    /// Name, presented chain, trust-store anchors, Credential table, the role expected.
    type AnchoredCase<'a> = (
        &'a str,
        Vec<&'a Vec<u8>>,
        Vec<&'a Vec<u8>>,
        Vec<Credential>,
        Option<&'a str>,
    );

    fn roles<'c>(
        chain: &[&Vec<u8>],
        anchors: &[&Vec<u8>],
        credentials: &'c [Credential],
        rows: &Rows,
    ) -> Option<&'c str> {
        credential_roles(chain, anchors, credentials, |reference| {
            rows.get(reference).map(|(enable, der)| TrustedCertificate {
                enable: *enable,
                der,
            })
        })
        .map(|roles| roles[0].as_str())
    }

    #[test]
    fn credential_matching_follows_r_sec_25() {
        let root = ca("Root A", None);
        let intermediate = ca("Intermediate A", Some(&root));
        let impostor = ca("Root A", None);
        let other = ca("Root B", None);
        let direct = leaf("direct", &root);
        let via = leaf("via", &intermediate);
        let rows: Rows = [
            ("Cert.root", (true, root.der.clone())),
            ("Cert.inter", (true, intermediate.der.clone())),
            ("Cert.impostor", (true, impostor.der.clone())),
            ("Cert.other", (true, other.der.clone())),
            ("Cert.leaf", (true, direct.clone())),
            ("Cert.off", (false, root.der.clone())),
        ]
        .into_iter()
        .collect();
        let disabled = Credential {
            enable: false,
            ..credential("Cert.root", "disabled")
        };
        let mtp_only = Credential {
            allowed_uses: AllowedUses::MtpOnly,
            ..credential("Cert.root", "mtp-only")
        };
        let broker = Credential {
            allowed_uses: AllowedUses::MtpAndBroker,
            ..credential("Cert.root", "broker")
        };
        let garbage = vec![1, 2, 3];
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("the leaf itself", vec![&direct], vec![credential("Cert.leaf", "leaf")], Some("leaf")),
            ("issued by the credential CA", vec![&direct], vec![credential("Cert.root", "a")], Some("a")),
            ("same-named impostor CA", vec![&direct], vec![credential("Cert.impostor", "x")], None),
            ("another CA", vec![&direct], vec![credential("Cert.other", "b")], None),
            ("disabled Credential", vec![&direct], vec![disabled.clone()], None),
            ("disabled Certificate", vec![&direct], vec![credential("Cert.off", "off")], None),
            ("dangling reference", vec![&direct], vec![credential("Cert.9", "gone")], None),
            ("MTP-only", vec![&direct], vec![mtp_only.clone()], None),
            ("MTP-and-broker", vec![&direct], vec![broker.clone()], None),
            ("skipped ones let a later one match",
                vec![&direct],
                vec![disabled, mtp_only, broker, credential("Cert.root", "a")],
                Some("a")),
            ("leaf match wins over its issuer's, whatever the table order",
                vec![&direct],
                vec![credential("Cert.root", "ca"), credential("Cert.leaf", "leaf")],
                Some("leaf")),
            ("table order decides within one certificate",
                vec![&direct],
                vec![credential("Cert.root", "first"), credential("Cert.root", "second")],
                Some("first")),
            ("intermediate's issuer matches higher up the chain",
                vec![&via, &intermediate.der],
                vec![credential("Cert.root", "root")],
                Some("root")),
            ("the nearer CA wins",
                vec![&via, &intermediate.der],
                vec![credential("Cert.root", "root"), credential("Cert.inter", "inter")],
                Some("inter")),
            ("the root is not the leaf's issuer without the intermediate",
                vec![&via],
                vec![credential("Cert.root", "root")],
                None),
            ("an unparsable certificate ends the walk",
                vec![&garbage, &direct],
                vec![credential("Cert.root", "a")],
                None),
            ("no chain", vec![], vec![credential("Cert.root", "a")], None),
        ];
        for (name, chain, credentials, expected) in cases {
            assert_eq!(roles(&chain, &[], &credentials, &rows), expected, "{name}");
        }
    }

    #[test]
    fn the_walk_goes_on_through_the_trust_store_where_the_presented_chain_stops() {
        let root = ca("Root A", None);
        let intermediate = ca("Intermediate A", Some(&root));
        let lookalike = ca("Intermediate A", Some(&ca("Root A", None)));
        let via = leaf("via", &intermediate);
        let rows: Rows = [
            ("Cert.root", (true, root.der.clone())),
            ("Cert.inter", (true, intermediate.der.clone())),
        ]
        .into_iter()
        .collect();
        #[rustfmt::skip]
        let cases: Vec<AnchoredCase> = vec![
            ("root reached through the held intermediate",
                vec![&via], vec![&root.der, &intermediate.der],
                vec![credential("Cert.root", "root")], Some("root")),
            ("the held intermediate is nearer than the root",
                vec![&via], vec![&intermediate.der, &root.der],
                vec![credential("Cert.root", "root"), credential("Cert.inter", "inter")],
                Some("inter")),
            ("a same-named intermediate that did not sign is no step",
                vec![&via], vec![&lookalike.der, &root.der],
                vec![credential("Cert.root", "root")], None),
            ("a self-issued root ends the walk",
                vec![&root.der], vec![&root.der],
                vec![credential("Cert.inter", "inter")], None),
        ];
        for (name, chain, anchors, credentials, expected) in cases {
            assert_eq!(
                roles(&chain, &anchors, &credentials, &rows),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn allowed_uses_parse_the_three_enumerations_only() {
        assert_eq!("MTP-only".parse(), Ok(AllowedUses::MtpOnly));
        assert_eq!("MTP-and-USP".parse(), Ok(AllowedUses::MtpAndUsp));
        assert_eq!("MTP-and-broker".parse(), Ok(AllowedUses::MtpAndBroker));
        let error = "MTP-and-usp".parse::<AllowedUses>().unwrap_err();
        assert!(error.to_string().contains("MTP-and-usp"), "{error}");
    }
}
