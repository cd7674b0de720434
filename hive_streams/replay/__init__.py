"""`hive-streams replay`: the read models, the deciders' and the matcher's snapshots rebuilt from the log and
compared, and the scheduler replayed under another matching policy."""
