//! Server stubs, message types and (for the testkit's own tests) client stubs
//! generated (by `build.rs`) from the product's trimmed Teleport protos in
//! `../proto`.

#![allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic
)]

/// Package `proto` (AuthService, Event, Watch, ...).
pub mod proto {
    tonic::include_proto!("proto");
}
/// Package `types` (AccessRequestV3, PluginDataV3, RoleV6, SemaphoreV3, UserV2, ...).
pub mod types {
    tonic::include_proto!("types");
}
/// Package `wrappers` (LabelValues).
pub mod wrappers {
    tonic::include_proto!("wrappers");
}
/// Packages under `teleport.`.
pub mod teleport {
    /// `teleport.header.v1`.
    pub mod header {
        /// `teleport.header.v1`.
        pub mod v1 {
            tonic::include_proto!("teleport.header.v1");
        }
    }
    /// `teleport.accessmonitoringrules.v1`.
    pub mod accessmonitoringrules {
        /// `teleport.accessmonitoringrules.v1`.
        pub mod v1 {
            tonic::include_proto!("teleport.accessmonitoringrules.v1");
        }
    }
    /// `teleport.users.v1` (UsersService).
    pub mod users {
        /// `teleport.users.v1`.
        pub mod v1 {
            tonic::include_proto!("teleport.users.v1");
        }
    }
    /// `teleport.accesslist.v1` (AccessListService).
    pub mod accesslist {
        /// `teleport.accesslist.v1`.
        pub mod v1 {
            tonic::include_proto!("teleport.accesslist.v1");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn service_paths_are_teleports() {
        // Both the product's client and this server are generated from
        // `proto/`: the package and service names there must be Teleport's,
        // or both would agree on a path the real Auth Service does not serve.
        assert_eq!(
            super::proto::auth_service_server::SERVICE_NAME,
            "proto.AuthService"
        );
        assert_eq!(
            super::teleport::accessmonitoringrules::v1::access_monitoring_rules_service_server::SERVICE_NAME,
            "teleport.accessmonitoringrules.v1.AccessMonitoringRulesService"
        );
        assert_eq!(
            super::teleport::users::v1::users_service_server::SERVICE_NAME,
            "teleport.users.v1.UsersService"
        );
        assert_eq!(
            super::teleport::accesslist::v1::access_list_service_server::SERVICE_NAME,
            "teleport.accesslist.v1.AccessListService"
        );
    }
}
