"""The collection's features above single links: manage (tags, delete, undo), import and
export, tag suggestions, stats, link-rot rounds and the weekly digest, files made on
demand (artifacts), and a snapshot's message kept in step with its record.
"""
