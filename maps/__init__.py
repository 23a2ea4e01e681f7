"""The city's map: administrative hierarchy, unit grid, and the spatial questions of dispatch
and hazard supervision, measured in a metric CRS and answered in WGS84."""
