"""atoll.topology"""
