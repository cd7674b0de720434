"""A process that does nothing for ten minutes but what every fabric process does first: exit with its parent."""
import time

from hive_streams.processes import exit_with_parent

if __name__ == "__main__":
    exit_with_parent(grace=5)
    time.sleep(600)
