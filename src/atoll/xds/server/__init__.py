"""atoll.xds.server"""
