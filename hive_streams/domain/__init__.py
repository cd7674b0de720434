"""The pure core: events, commands, aggregates and policies. Standard library only."""
