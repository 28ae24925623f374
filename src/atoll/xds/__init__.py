"""atoll.xds"""
