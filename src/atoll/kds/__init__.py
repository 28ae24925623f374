"""atoll.kds"""
