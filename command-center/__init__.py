"""The command centre: the HTTP API (and later the live dashboard) over the CityOps domain.

Routes only turn requests into application commands and read-model queries.
"""
