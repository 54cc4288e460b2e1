//! Membership and roles: OpenMeet memberships as room membership and power levels.
