"""Analysis services: small results (subsets, area-mean time series, climatologies, maps) computed next to the archive.

Each operation checks access through the catalog, estimates its size before reading a byte of data (and refuses
what is too large to answer within seconds: that is a campaign's job), then reads only the box of each granule.
This package imports nothing at import time, so that worker processes of the time-series fast path start light.
"""
