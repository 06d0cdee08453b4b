//! Permission strings: the four `rwxn` letters of one TR-181 `Permission.{i}` field
//! ([`Rights`]) and the four fields together ([`Grants`]).
//!
//! TR-181 `ControllerTrust.Role.{i}.Permission.{i}.{Param,Obj,InstantiatedObj,CommandEvent}`
//! are each a 4-character string in the fixed order `rwxn`, `-` for an absent letter.

use std::fmt;
use std::str::FromStr;

use usp_codec::UspErrorCode;

/// A permission string that is not 4 characters of `r|-`, `w|-`, `x|-`, `n|-` in that order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid permission string \"{text}\": expected 4 characters in the order rwxn, '-' for absent"
)]
pub struct RightsError {
    /// The rejected text.
    pub text: String,
}

impl RightsError {
    /// The USP error a Controller gets when it writes such a value.
    pub fn code(&self) -> UspErrorCode {
        UspErrorCode::InvalidValue
    }
}

/// One `rwxn` string as a bit set. `Default` is `----`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rights(u8);

const LETTERS: [u8; 4] = *b"rwxn";

impl Rights {
    /// `----`.
    pub const NONE: Rights = Rights(0);
    /// `r---`.
    pub const READ: Rights = Rights(1);
    /// `-w--`.
    pub const WRITE: Rights = Rights(2);
    /// `--x-`.
    pub const EXECUTE: Rights = Rights(4);
    /// `---n`.
    pub const NOTIFY: Rights = Rights(8);
    /// `rwxn`.
    pub const ALL: Rights = Rights(15);

    /// The letter-wise OR: how the rights of a Controller's several roles combine.
    pub const fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// True when every letter of `other` is present.
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// `r`.
    pub const fn read(self) -> bool {
        self.contains(Rights::READ)
    }

    /// `w`.
    pub const fn write(self) -> bool {
        self.contains(Rights::WRITE)
    }

    /// `x`.
    pub const fn execute(self) -> bool {
        self.contains(Rights::EXECUTE)
    }

    /// `n`.
    pub const fn notify(self) -> bool {
        self.contains(Rights::NOTIFY)
    }
}

impl std::ops::BitOr for Rights {
    type Output = Rights;

    fn bitor(self, other: Rights) -> Rights {
        self.union(other)
    }
}

impl std::ops::BitOrAssign for Rights {
    fn bitor_assign(&mut self, other: Rights) {
        *self = self.union(other);
    }
}

impl FromStr for Rights {
    type Err = RightsError;

    fn from_str(text: &str) -> Result<Rights, RightsError> {
        let bytes = text.as_bytes();
        if bytes.len() != LETTERS.len() {
            return Err(RightsError {
                text: text.to_string(),
            });
        }
        let mut bits = 0;
        for (index, (&byte, &letter)) in bytes.iter().zip(LETTERS.iter()).enumerate() {
            if byte == letter {
                bits |= 1 << index;
            } else if byte != b'-' {
                return Err(RightsError {
                    text: text.to_string(),
                });
            }
        }
        Ok(Rights(bits))
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, &letter) in LETTERS.iter().enumerate() {
            let shown = if self.0 & (1 << index) != 0 {
                letter
            } else {
                b'-'
            };
            write!(f, "{}", char::from(shown))?;
        }
        Ok(())
    }
}

/// The four permission fields of one `Permission.{i}` entry, or the result of resolving a path.
///
/// | field | r | w | x | n |
/// |---|---|---|---|---|
/// | `param` | Get value, GSDM meta | Set, set in Add | – | ValueChange |
/// | `obj` | resolve object paths, GSDM meta | Add | – | ObjectCreation |
/// | `instantiated_obj` | GetInstances | Delete | – | ObjectDeletion |
/// | `command_event` | GSDM meta of arguments | – | Operate | OperationComplete, Event |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Grants {
    /// `Param`.
    pub param: Rights,
    /// `Obj`.
    pub obj: Rights,
    /// `InstantiatedObj`.
    pub instantiated_obj: Rights,
    /// `CommandEvent`.
    pub command_event: Rights,
}

impl Grants {
    /// Nothing granted (all four fields `----`).
    pub const NONE: Grants = Grants::uniform(Rights::NONE);
    /// Everything granted (all four fields `rwxn`).
    pub const ALL: Grants = Grants::uniform(Rights::ALL);

    /// The same rights in all four fields.
    pub const fn uniform(rights: Rights) -> Grants {
        Grants {
            param: rights,
            obj: rights,
            instantiated_obj: rights,
            command_event: rights,
        }
    }

    /// Field-wise, letter-wise OR.
    pub const fn union(self, other: Grants) -> Grants {
        Grants {
            param: self.param.union(other.param),
            obj: self.obj.union(other.obj),
            instantiated_obj: self.instantiated_obj.union(other.instantiated_obj),
            command_event: self.command_event.union(other.command_event),
        }
    }
}

impl std::ops::BitOrAssign for Grants {
    fn bitor_assign(&mut self, other: Grants) {
        *self = self.union(other);
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[test]
    fn permission_strings_round_trip() {
        for text in [
            "----", "r---", "-w--", "--x-", "---n", "r-xn", "rwxn", "rw-n",
        ] {
            let rights: Rights = text.parse().unwrap();
            assert_eq!(rights.to_string(), text);
        }
    }

    #[test]
    fn letters_map_to_their_checks() {
        let rights: Rights = "r-xn".parse().unwrap();
        assert!(rights.read() && !rights.write() && rights.execute() && rights.notify());
    }

    #[test]
    fn malformed_permission_strings_are_invalid_values() {
        for text in [
            "",
            "rwx",
            "rwxnn",
            "wrxn",
            "R---",
            "r--N",
            "r- -",
            "rwx\u{e9}",
        ] {
            let error = text.parse::<Rights>().unwrap_err();
            assert_eq!(error.text, text);
            assert_eq!(error.code(), UspErrorCode::InvalidValue);
        }
    }

    #[test]
    fn union_is_letter_wise() {
        let a: Rights = "r---".parse().unwrap();
        let b: Rights = "---n".parse().unwrap();
        assert_eq!((a | b).to_string(), "r--n");
        assert_eq!(Grants::uniform(a).union(Grants::uniform(b)).obj, a | b);
    }
}
