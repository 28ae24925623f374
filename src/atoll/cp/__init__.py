"""atoll.cp"""
