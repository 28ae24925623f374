"""atoll.api"""
