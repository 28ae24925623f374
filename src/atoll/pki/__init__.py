"""atoll.pki"""
