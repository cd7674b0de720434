"""`hive-streams replay`: the read models and the deciders' snapshots rebuilt from the log and compared, and
the scheduler replayed under another matching policy."""
