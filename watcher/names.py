"""The collection names the watcher keeps for itself, which no route may write into.

Their own module so that both the routes (models.py, which refuses them) and the store use them
without importing each other.
"""

DEAD_LETTERS = "dead_letters"
STATUS = "watcher_status"
FILE_LOG = "file_log"  # the shots that got files, in the order they were stored (store.log_files)
OLD_SHOT_INDEX = "shot_index"  # the layout before the buckets: one document per shot key and slot
RESERVED = {DEAD_LETTERS, STATUS, FILE_LOG}
