//! The flow's three services, by role: the first argument of a step binary
//! and each service's `service.name`.

use serde::{Deserialize, Serialize};

/// One of the flow's services. Its name (`gateway`, `worker`, `consumer`) is
/// the role argument, the `service.name` its spans carry and its log's name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    Gateway,
    Worker,
    Consumer,
}

impl Role {
    /// The role's name, as its spans' `service.name` carries it.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray as _;

    use super::Role;

    #[test]
    fn a_role_reads_and_writes_as_its_service_name() {
        for &role in Role::VARIANTS {
            assert_eq!(role.name().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert_eq!(Role::Gateway.name(), "gateway");
        assert!("frontend".parse::<Role>().is_err());
    }
}
