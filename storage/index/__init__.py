"""The derived listing index: the change journal, the announcing writer's readers, the
SQLite accelerator (catalog, search, rebuild, heal, shelves, upkeep) and MongoDB's own
indexes (native), chosen by storage/index/listing.py. No SQL outside this package.
"""
