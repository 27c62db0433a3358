"""Operator helpers: the audit trail, component status records, and the `xbot status` view."""
