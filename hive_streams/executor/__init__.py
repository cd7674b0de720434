"""The executor runtime: node runners and the DAG driver (no Kafka in here)."""
