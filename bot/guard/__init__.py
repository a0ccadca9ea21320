"""What may reach the network for a page: the address rules (netguard) and the
egress proxy every capture and link-rot check goes through. Nothing here knows of
Telegram or the database.
"""
