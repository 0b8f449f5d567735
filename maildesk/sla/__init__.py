"""Service levels: business-hours calendars, policies, ticket clocks, reminders.

Pure and database-free: the store keeps each ticket's `SlaState` columns, the pipeline and
the scheduler call these functions with an explicit `now`. Reference: docs/sla.md.
"""
