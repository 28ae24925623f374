"""atoll.xds.generate"""
