"""Schedules and triggers at the edge of the domain: cron slots (croniter, IANA zones) and the sweep's plan."""
