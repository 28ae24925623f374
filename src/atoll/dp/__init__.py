"""atoll.dp"""
