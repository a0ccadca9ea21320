"""The work queue: which link a worker takes next (claims with leases, fair turns per
owner) and the pacing of owners.
"""
