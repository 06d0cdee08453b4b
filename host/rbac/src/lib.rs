//! Role-based access control: roles, permissions and the one check every message handler uses
