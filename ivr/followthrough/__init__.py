"""Follow-through after a reply: notices, the satisfaction survey, reminders, field checks,
deadlines and escalation, and the units' scorecard. Services take a session and do not commit."""
